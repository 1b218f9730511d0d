from decimal import Decimal

import pytest

from fhir_ccm.errors import Invalid
from fhir_ccm.formats.json_format import canonical_json, dump_json, parse_json, parse_resource


def test_decimals_round_trip_textually():
    text = '{"a":2.50,"b":[0.10,100,1.0E+2],"c":-0.0}'
    value = parse_json(text)
    assert value["a"] == Decimal("2.50")
    assert dump_json(value) == text


def test_canonical_json_sorts_keys_and_keeps_precision():
    assert canonical_json({"b": Decimal("2.50"), "a": 1}) == '{"a":1,"b":2.50}'


def test_non_ascii_is_kept():
    assert dump_json(parse_json('{"name":"Jos\u00e9 \u4e2d"}')) == '{"name":"Jos\u00e9 \u4e2d"}'


def test_byte_order_mark_is_ignored():
    assert parse_json(b"\xef\xbb\xbf{}") == {}


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b'{"a":1,"a":2}',
        b"\xff\xfe",
        b"[NaN]",
        b"[Infinity]",
        b'{"a":"\x00"}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["truncated", "duplicate-key", "not-utf8", "nan", "infinity", "raw-nul", "deep"],
)
def test_malformed_json_is_invalid(body):
    with pytest.raises(Invalid):
        parse_json(body)


def test_parse_resource_needs_an_object_with_resource_type():
    with pytest.raises(Invalid):
        parse_resource(b"[]")
    with pytest.raises(Invalid):
        parse_resource(b'{"id":"x"}')


@pytest.mark.parametrize(
    "text",
    [
        '{"big":123456789012345678901234567890,"d":2.50}',  # beyond 64 bits
        '{"half":"\\ud800","d":2.50}',  # half of a surrogate pair, as JSON can escape it
    ],
    ids=["integer-beyond-64-bits", "lone-surrogate"],
)
def test_values_the_fast_encoder_refuses_are_still_written(text):
    value = parse_json(text)
    assert parse_json(dump_json(value)) == value
    assert parse_json(dump_json(value, pretty=True)) == value
    assert parse_json(canonical_json(value)) == value


def test_pretty_json_is_indented_by_two_and_keeps_precision():
    assert dump_json({"a": [Decimal("2.50")], "b": {}}, pretty=True) == '{\n  "a": [\n    2.50\n  ],\n  "b": {}\n}'


def test_a_value_that_is_no_json_is_refused():
    with pytest.raises(TypeError):
        dump_json({"a": object()})
