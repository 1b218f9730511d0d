"""FHIR JSON in and out (http://hl7.org/fhir/R4/json.html).

Decimals are read as ``decimal.Decimal`` and written back from it, so ``2.50``
stays ``2.50``: the stored JSON is the master copy and must not lose precision.

Writing goes through orjson, about ten times faster than simplejson's encoder: a
1,000-entry transaction serializes every resource it stores. A Decimal is
written as its own digits (an ``orjson.Fragment``). The few values orjson does
not write (an integer beyond 64 bits, a string holding half of a surrogate
pair) fall back to simplejson, which writes any value the parser can produce.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson
import simplejson

from fhir_ccm.errors import Invalid

# FHIR decimals carry at most 18 significant digits; an exponent beyond this
# bound is no measurement, and turning one into an integer or into positional
# digits (XML) would take time and memory without limit.
MAX_EXPONENT = 400


def _decimal(text: str) -> Decimal:
    value = Decimal(text)
    if value and abs(value.adjusted()) > MAX_EXPONENT:
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


_decoder = simplejson.JSONDecoder(
    parse_float=_decimal,
    parse_constant=lambda name: _reject_constant(name),
    object_pairs_hook=lambda pairs: _object_without_duplicates(pairs),
)
_compact = simplejson.JSONEncoder(use_decimal=True, ensure_ascii=False, separators=(",", ":"))
_pretty = simplejson.JSONEncoder(use_decimal=True, ensure_ascii=False, indent=2)
_canonical = simplejson.JSONEncoder(use_decimal=True, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise ValueError(f"duplicate property {duplicate!r}")
    return result


def parse_json(body: bytes | str) -> Any:
    """Decode a JSON document; any defect is an ``Invalid`` (400), never a crash."""
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise Invalid(f"The body is not valid UTF-8 (byte {error.start})") from None
    else:
        text = body
    if text.startswith("\ufeff"):
        text = text[1:]
    try:
        return _decoder.decode(text)
    except RecursionError:
        raise Invalid("The JSON document is nested too deeply") from None
    except (ValueError, TypeError) as error:
        raise Invalid(f"The body is not valid JSON: {error}") from None


def parse_resource(body: bytes | str) -> dict[str, Any]:
    value = parse_json(body)
    if not isinstance(value, dict):
        raise Invalid("A FHIR resource must be a JSON object")
    if not isinstance(value.get("resourceType"), str):
        raise Invalid("The resource has no resourceType", expression="resourceType")
    return value


def _fragment(value: Any) -> orjson.Fragment:
    if isinstance(value, Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON")


def _encode(value: Any, options: int, fallback: simplejson.JSONEncoder) -> str:
    try:
        return orjson.dumps(value, default=_fragment, option=options).decode("utf-8")
    except orjson.JSONEncodeError:
        return fallback.encode(value)


def dump_json(value: Any, pretty: bool = False) -> str:
    if pretty:
        return _encode(value, orjson.OPT_INDENT_2, _pretty)
    return _encode(value, 0, _compact)


def with_entries(head: dict[str, Any], entries: Sequence[str]) -> str:
    """``head`` as compact JSON text with ``entries``, JSON texts spliced in as they are, as its last member.

    A Bundle of stored resources is built from their stored text, already the
    compact JSON of each, instead of decoding and encoding every one again.
    """
    text = dump_json(head)
    if not entries:
        return text
    return text[:-1] + ',"entry":[' + ",".join(entries) + "]}"


def canonical_json(value: Any) -> str:
    """Key-sorted JSON, to compare two resources' content."""
    return _encode(value, orjson.OPT_SORT_KEYS, _canonical)
