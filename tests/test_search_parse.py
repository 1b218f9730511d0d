"""``parse_search`` as a pure function: escaping, values, criteria, result parameters and errors.

No store and no HTTP: each row is a query string's pairs and what they parse to,
or the text the error must contain (which always names the parameter).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from fhir_ccm.errors import Invalid
from fhir_ccm.search.parse import (
    DEFAULT_COUNT,
    MAX_COUNT,
    CodeSetValue,
    CompositeValue,
    Criterion,
    Include,
    MissingValue,
    OfTypeValue,
    PrefixedValue,
    ReferenceValue,
    SearchQuery,
    SortKey,
    StringValue,
    TextValue,
    TokenValue,
    UnknownParameter,
    UriValue,
    parse_search,
    split_values,
)
from fhir_ccm.search.sql import uri_parents
from fhir_ccm.search.values import Range, date_range, number_range, split_prefix

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def ms(text: str) -> int:
    """Epoch milliseconds of an ISO instant."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).timestamp() * 1000)


def parse(resource_type: str, query: str, **options: Any) -> SearchQuery:
    pairs = [tuple(pair.split("=", 1)) for pair in query.split("&")] if query else []
    return parse_search((resource_type,), pairs, **options)  # type: ignore[arg-type]


def only(resource_type: str, query: str) -> Criterion:
    (criterion,) = parse(resource_type, query).criteria
    return criterion


# -- escaping ----------------------------------------------------------------------------------

SPLIT_CASES = [
    ("a,b", ",", ["a", "b"]),
    ("a\\,b", ",", ["a,b"]),
    ("a\\\\,b", ",", ["a\\", "b"]),  # an escaped backslash does not escape the comma
    ("a\\|b|c", "|", ["a|b", "c"]),
    ("a\\$b$c", "$", ["a$b", "c"]),
    ("a,", ",", ["a", ""]),
    ("", ",", [""]),
    ("a\\", ",", ["a\\"]),  # a trailing backslash stays
]


@pytest.mark.parametrize(("text", "separator", "expected"), SPLIT_CASES)
def test_split_values(text: str, separator: str, expected: list[str]) -> None:
    assert split_values(text, separator) == expected


ESCAPE_CASES = [
    # (type, query, the values of its one criterion)
    ("Patient", "name=a\\,b", (StringValue("a,b", "a,b"),)),
    ("Patient", "name=a,b", (StringValue("a", "a"), StringValue("b", "b"))),
    ("Patient", "name=A\\\\,B", (StringValue("a\\", "A\\"), StringValue("b", "B"))),
    ("Patient", "name=O\\$Brien", (StringValue("o$brien", "O$Brien"),)),
    ("Patient", "identifier=urn:x|a\\|b", (TokenValue("urn:x", "a|b", any_system=False),)),
    ("Patient", "identifier=urn:x\\|a", (TokenValue(None, "urn:x|a", any_system=True),)),
    ("Patient", "identifier=a\\,b,c", (TokenValue(None, "a,b", True), TokenValue(None, "c", True))),
    ("Patient", "identifier=urn:x\\,y|1", (TokenValue("urn:x,y", "1", False),)),
    ("CarePlan", "instantiates-uri=http://x.org/a\\,b", (UriValue("http://x.org/a,b"),)),
    (
        "Observation",
        "value-quantity=5||mg\\|x",
        (PrefixedValue("eq", number_range(Decimal(5)), Decimal(5), None, "mg|x"),),
    ),
    (
        "Observation",
        "code-value-string=a\\$b$c\\$d",
        (CompositeValue((TokenValue(None, "a$b", True), StringValue("c$d", "c$d")), ("token", "string")),),
    ),
    (
        "Observation",
        "code-value-string=x$a\\,b,y$c",
        (
            CompositeValue((TokenValue(None, "x", True), StringValue("a,b", "a,b")), ("token", "string")),
            CompositeValue((TokenValue(None, "y", True), StringValue("c", "c")), ("token", "string")),
        ),
    ),
    (
        "Observation",
        "code-value-quantity=http://loinc.org|8480-6$gt5.4|http://unitsofmeasure.org|mm[Hg]",
        (
            CompositeValue(
                (
                    TokenValue(LOINC, "8480-6", False),
                    PrefixedValue("gt", number_range(Decimal("5.4")), Decimal("5.4"), UCUM, "mm[Hg]"),
                ),
                ("token", "quantity"),
            ),
        ),
    ),
]


@pytest.mark.parametrize(("resource_type", "query", "values"), ESCAPE_CASES)
def test_escaping(resource_type: str, query: str, values: tuple[Any, ...]) -> None:
    assert only(resource_type, query).values == values


# -- values ------------------------------------------------------------------------------------

VALUE_CASES = [
    ("Patient", "name=José  MÜLLER", (StringValue("jose muller", "José  MÜLLER"),)),
    ("Patient", "name:exact=José", (StringValue("jose", "José"),)),
    ("Patient", "gender=male", (TokenValue(None, "male", True),)),
    ("Patient", "gender=|male", (TokenValue(None, "male", False),)),
    ("Patient", "identifier=urn:mrn|", (TokenValue("urn:mrn", None, False),)),
    ("Patient", "identifier:text=Medical  Record", (TextValue("medical record"),)),
    ("Patient", "identifier:of-type=urn:t|MR|1", (OfTypeValue("urn:t", "MR", "1"),)),
    ("Patient", "gender:missing=true", (MissingValue(True),)),
    ("Patient", "gender:missing=false", (MissingValue(False),)),
    ("Patient", "name:missing=true", (MissingValue(True),)),  # a missing value is never split at commas
    ("Observation", "subject=Patient/1", (ReferenceValue("Patient", "1"),)),
    ("Observation", "subject=1", (ReferenceValue(None, "1"),)),
    ("Observation", "subject:Patient=1", (ReferenceValue("Patient", "1"),)),
    ("Observation", "subject:Patient=Patient/1", (ReferenceValue("Patient", "1"),)),
    ("Observation", "subject=Patient/1/_history/2", (ReferenceValue("Patient", "1"),)),
    (
        "Observation",
        "subject=http://x.org/fhir/Patient/1",
        (ReferenceValue("Patient", "1", url="http://x.org/fhir/Patient/1"),),
    ),
    (
        "Observation",
        "subject=http://x.org/fhir/Patient/1/_history/2",
        (ReferenceValue("Patient", "1", url="http://x.org/fhir/Patient/1"),),
    ),
    ("Observation", "subject=urn:uuid:1234", (ReferenceValue(None, None, url="urn:uuid:1234"),)),
    ("Observation", "subject:identifier=urn:mrn|1", (TokenValue("urn:mrn", "1", False),)),
    (
        "CarePlan",
        "instantiates-canonical=http://x.org/PlanDefinition/p|2.0",
        (ReferenceValue("PlanDefinition", "p", url="http://x.org/PlanDefinition/p"),),
    ),
    ("CarePlan", "instantiates-uri:below=http://x.org", (UriValue("http://x.org"),)),
    ("RiskAssessment", "probability=gt-5", (PrefixedValue("gt", number_range(Decimal(-5)), Decimal(-5)),)),
    ("RiskAssessment", "probability=0.25", (PrefixedValue("eq", Range(0.245, 0.255), Decimal("0.25")),)),
    ("Observation", "value-quantity=ap5||kg", (PrefixedValue("ap", Range(4.5, 5.5), Decimal(5), None, "kg"),)),
]


@pytest.mark.parametrize(("resource_type", "query", "values"), VALUE_CASES)
def test_values(resource_type: str, query: str, values: tuple[Any, ...]) -> None:
    assert only(resource_type, query).values == values


DATE_RANGES = [
    # (search value, first instant, last instant) in UTC
    ("2026", "2026-01-01T00:00:00.000Z", "2026-12-31T23:59:59.999Z"),
    ("2024-02", "2024-02-01T00:00:00.000Z", "2024-02-29T23:59:59.999Z"),  # a leap year
    ("2026-02", "2026-02-01T00:00:00.000Z", "2026-02-28T23:59:59.999Z"),
    ("2026-03-04", "2026-03-04T00:00:00.000Z", "2026-03-04T23:59:59.999Z"),
    ("2026-03-04T10:15Z", "2026-03-04T10:15:00.000Z", "2026-03-04T10:15:59.999Z"),
    ("2026-03-04T10:15:30Z", "2026-03-04T10:15:30.000Z", "2026-03-04T10:15:30.999Z"),
    ("2026-03-04T10:15:30+10:00", "2026-03-04T00:15:30.000Z", "2026-03-04T00:15:30.999Z"),
    ("2026-03-04T00:15:30-05:30", "2026-03-04T05:45:30.000Z", "2026-03-04T05:45:30.999Z"),
    ("2026-03-04T10:15:30.2Z", "2026-03-04T10:15:30.200Z", "2026-03-04T10:15:30.299Z"),
    ("2026-03-04T10:15:30.25Z", "2026-03-04T10:15:30.250Z", "2026-03-04T10:15:30.259Z"),
    ("2026-03-04T10:15:30.250Z", "2026-03-04T10:15:30.250Z", "2026-03-04T10:15:30.250Z"),
    ("2026-03-04T10:15:30.2501Z", "2026-03-04T10:15:30.250Z", "2026-03-04T10:15:30.250Z"),
    ("2026-03-04T10:15:30", "2026-03-04T10:15:30.000Z", "2026-03-04T10:15:30.999Z"),  # no zone: UTC
]


@pytest.mark.parametrize(("text", "low", "high"), DATE_RANGES)
def test_date_ranges_follow_precision(text: str, low: str, high: str) -> None:
    assert date_range(text) == Range(ms(low), ms(high))
    (value,) = only("Patient", f"birthdate=le{text}").values
    assert value == PrefixedValue("le", Range(ms(low), ms(high)))


NUMBER_RANGES = [
    ("100", 99.5, 100.5),
    ("100.00", 99.995, 100.005),
    ("0.25", 0.245, 0.255),
    ("-3", -3.5, -2.5),
    ("1.5e1", 14.5, 15.5),
]


@pytest.mark.parametrize(("text", "low", "high"), NUMBER_RANGES)
def test_number_ranges_follow_precision(text: str, low: float, high: float) -> None:
    found = number_range(Decimal(text))
    assert found.low == pytest.approx(low) and found.high == pytest.approx(high)


PREFIX_CASES = [
    ("ge2026", ("ge", "2026")),
    ("2026", ("eq", "2026")),
    ("ap-5", ("ap", "-5")),
    ("eb.5", ("eb", ".5")),
    ("ne", ("eq", "ne")),  # too short to carry a prefix
    ("gtx", ("eq", "gtx")),
    ("xx2026", ("eq", "xx2026")),
]


@pytest.mark.parametrize(("text", "expected"), PREFIX_CASES)
def test_split_prefix(text: str, expected: tuple[str, str]) -> None:
    assert split_prefix(text) == expected


URI_PARENTS = [
    (
        "http://x.org/a/b",
        ["http://x.org/a/b", "http://x.org/a/b/", "http://x.org/a", "http://x.org/a/", "http://x.org", "http://x.org/"],
    ),
    ("http://x.org/a/", ["http://x.org/a/", "http://x.org/a", "http://x.org", "http://x.org/"]),
    ("http://x.org", ["http://x.org", "http://x.org/"]),
    ("urn:oid:1.2.3", ["urn:oid:1.2.3"]),
]


@pytest.mark.parametrize(("uri", "parents"), URI_PARENTS)
def test_uri_parents_for_above(uri: str, parents: list[str]) -> None:
    assert uri_parents(uri) == parents


def test_in_uses_the_value_set_resolver() -> None:
    codes = frozenset({("urn:s", "1")})
    resolver = {"http://x.org/vs": codes}.get
    query = parse("Observation", "code:in=http://x.org/vs|1.0", value_sets=resolver)  # the version is dropped
    assert query.criteria[0].values == (CodeSetValue("http://x.org/vs|1.0", codes),)
    with pytest.raises(Invalid, match="http://x.org/other"):
        parse("Observation", "code:in=http://x.org/other", value_sets=resolver)


def test_in_knows_the_r4_value_sets() -> None:
    (value,) = only("Patient", "gender:in=http://hl7.org/fhir/ValueSet/administrative-gender").values
    assert isinstance(value, CodeSetValue)
    assert ("http://hl7.org/fhir/administrative-gender", "male") in value.codes


# -- criteria ----------------------------------------------------------------------------------


def test_or_within_a_parameter_and_between_parameters() -> None:
    query = parse("Patient", "name=a,b&name=c&gender=male")
    assert [(c.code, len(c.values)) for c in query.criteria] == [("name", 2), ("name", 1), ("gender", 1)]
    assert query.used == (("name", "a,b"), ("name", "c"), ("gender", "male"))


def test_reference_targets() -> None:
    assert only("Observation", "subject=1").target_types == ("Group", "Device", "Patient", "Location")
    assert only("Observation", "subject:Patient=1").target_types == ("Patient",)


def test_chain() -> None:
    criterion = only("Goal", "subject:Patient.general-practitioner:Practitioner.name=x")
    assert (criterion.code, criterion.target_types) == ("subject", ("Patient",))
    assert criterion.chain is not None
    assert (criterion.chain.code, criterion.chain.target_types) == ("general-practitioner", ("Practitioner",))
    assert criterion.chain.chain == Criterion("name", "string", None, (StringValue("x", "x"),))


def test_chain_without_a_type_keeps_the_targets_having_the_parameter() -> None:
    criterion = only("Observation", "subject.name=x")
    assert set(criterion.target_types) == {"Group", "Patient", "Location", "Device"} - {"Group", "Device"}
    criterion = only("Observation", "subject.identifier=x")
    assert set(criterion.target_types) == {"Group", "Device", "Patient", "Location"}


def test_has_and_nested_has() -> None:
    criterion = only("Practitioner", "_has:Patient:general-practitioner:_has:Observation:subject:code=1")
    assert criterion.has is not None
    assert (criterion.has.source_type, criterion.has.reference_code) == ("Patient", "general-practitioner")
    inner = criterion.has.criterion.has
    assert inner is not None and (inner.source_type, inner.reference_code) == ("Observation", "subject")
    assert inner.criterion == Criterion("code", "token", None, (TokenValue(None, "1", True),))


def test_has_with_a_chain() -> None:
    criterion = only("Practitioner", "_has:CareTeam:participant:subject:Patient.name=x")
    assert criterion.has is not None and criterion.has.criterion.chain is not None


def test_system_search_takes_parameters_every_type_has() -> None:
    query = parse_search(("Patient", "Observation"), [("_id", "1"), ("_lastUpdated", "gt2026")])
    assert [c.code for c in query.criteria] == ["_id", "_lastUpdated"]
    with pytest.raises(UnknownParameter, match="'name'"):
        parse_search(("Patient", "Observation"), [("name", "x")])


# -- result parameters ---------------------------------------------------------------------------

RESULT_CASES = [
    ("", {"count": DEFAULT_COUNT, "total": "accurate", "sort": (), "summary": None, "offset": 0}),
    ("_count=5", {"count": 5, "used": (("_count", "5"),)}),
    ("_count=0", {"count": 0}),
    ("_count=5000", {"count": MAX_COUNT, "used": (("_count", str(MAX_COUNT)),)}),
    ("_count=" + "9" * 5000, {"count": MAX_COUNT}),
    ("_total=none", {"total": "none"}),
    ("_summary=count", {"summary": "count"}),
    (
        "_sort=-birthdate,name,_id",
        {
            "sort": (
                SortKey("birthdate", "date", True),
                SortKey("name", "string", False),
                SortKey("_id", "token", False),
            )
        },
    ),
    ("_snapshot=abc&_offset=20&_count=10", {"snapshot": "abc", "offset": 20, "used": (("_count", "10"),)}),
    ("_elements=name", {"used": (("_elements", "name"),)}),
    ("_format=json&_pretty=true&name=x", {"used": (("name", "x"),)}),
    (
        "_include=Patient:general-practitioner",
        {"includes": (Include("Patient", "general-practitioner", None, False, False),)},
    ),
    (
        "_include:iterate=Practitioner:*&_include=*",
        {"includes": (Include("Practitioner", None, None, True, False), Include("Patient", None, None, False, False))},
    ),
    ("_include=Patient:link:Patient", {"includes": (Include("Patient", "link", "Patient", False, False),)}),
    (
        "_revinclude=Observation:subject&_revinclude:iterate=Provenance:target",
        {
            "revincludes": (
                Include("Observation", "subject", None, False, True),
                Include("Provenance", "target", None, True, True),
            )
        },
    ),
    ("_revinclude=*", {"revincludes": (Include("*", None, None, False, True),)}),
    ("_revinclude=Provenance:*", {"revincludes": (Include("Provenance", None, None, False, True),)}),
]


@pytest.mark.parametrize(("query", "expected"), RESULT_CASES)
def test_result_parameters(query: str, expected: dict[str, Any]) -> None:
    parsed = parse("Patient", query)
    for name, value in expected.items():
        assert getattr(parsed, name) == value


def test_extra_result_parameters_are_left_to_the_caller() -> None:
    assert parse_search(("Patient",), [("_type", "x"), ("name", "a")], extra_result_parameters=("_type",)).used == (
        ("name", "a"),
    )


# -- lenient handling ------------------------------------------------------------------------------

LENIENT_CASES = [
    ("Patient", "bogus=1&name=x", ("bogus",), (("name", "x"),)),
    ("Patient", "bogus:exact=1", ("bogus:exact",), ()),
    ("Observation", "subject:Patient.bogus=1&code=1", ("subject:Patient.bogus",), (("code", "1"),)),
    ("Patient", "_has:Observation:subject:bogus=1", ("_has:Observation:subject:bogus",), ()),
]


@pytest.mark.parametrize(("resource_type", "query", "ignored", "used"), LENIENT_CASES)
def test_lenient_sets_unknown_parameters_aside(
    resource_type: str, query: str, ignored: tuple[str, ...], used: tuple[Any, ...]
) -> None:
    with pytest.raises(UnknownParameter):
        parse(resource_type, query)
    parsed = parse(resource_type, query, lenient=True)
    assert parsed.ignored == ignored and parsed.used == used


# -- errors name the parameter ---------------------------------------------------------------------

ERROR_CASES = [
    # (type, query, texts the message must contain)
    ("Patient", "bogus=1", ["'bogus'"]),
    ("Patient", "name:bogus=x", ["name", ":bogus"]),
    ("Patient", "name:text=x", ["name", ":text"]),
    ("Patient", "birthdate:exact=1970", ["birthdate", ":exact"]),
    ("Patient", "name=", ["'name'", "empty"]),
    ("Patient", "birthdate=2026-13", ["'birthdate'", "2026-13"]),
    ("Patient", "birthdate=2026-02-30", ["'birthdate'", "2026-02-30"]),
    ("Patient", "birthdate=26", ["'birthdate'"]),
    ("Patient", "birthdate=2026-03-04T10:00:00 10:00", ["'birthdate'", "%2B"]),
    ("Patient", "gender:missing=yes", ["'gender:missing'", "yes"]),
    ("Patient", "identifier=a|b|c", ["'identifier'", "a|b|c"]),
    ("Patient", "identifier=|", ["'identifier'"]),
    ("Patient", "identifier:of-type=MR|1", ["'identifier:of-type'", "MR|1"]),
    ("Patient", "identifier:of-type=urn:t||1", ["'identifier:of-type'"]),
    ("Patient", "gender:in=http://x.org/unknown", ["'gender:in'", "http://x.org/unknown"]),
    ("RiskAssessment", "probability=1|2|3", ["'probability'", "1|2|3"]),
    ("RiskAssessment", "probability=Infinity", ["'probability'", "Infinity"]),
    ("Observation", "value-quantity=1|kg", ["'value-quantity'", "1|kg"]),
    ("Observation", "value-quantity=lots", ["'value-quantity'", "lots"]),
    ("Observation", "code-value-quantity=1$2$3", ["code-value-quantity", "1$2$3"]),
    ("Observation", "code-value-quantity=1$x", ["'code-value-quantity'", "x"]),
    ("Observation", "subject:Practitioner=1", ["'subject:Practitioner'", "Practitioner"]),
    ("Observation", "subject:Patient=Group/1", ["'subject:Patient'", "Group/1"]),
    ("Observation", "subject=Nonsense/1", ["'subject'", "Nonsense/1"]),
    ("Observation", "code.name=x", ["'code.name'", "code"]),
    ("Observation", "subject:Bogus.name=x", ["'subject:Bogus.name'", "Bogus"]),
    ("Observation", "subject:Patient.bogus=x", ["'bogus'"]),
    ("Observation", "subject:Patient.birthdate=x", ["'subject:Patient.birthdate'", "'x'"]),
    ("Patient", "_has:Observation:subject=1", ["'_has:Observation:subject'"]),
    ("Patient", "_has:Bogus:subject:code=1", ["_has:Bogus:subject:code", "Bogus"]),
    ("Patient", "_has:Observation:code:code=1", ["_has:Observation:code:code", "'code'"]),
    ("Patient", "_has:CarePlan:care-team:status=x", ["_has:CarePlan:care-team:status", "care-team"]),
    ("Patient", "_has:Observation:subject:date=x", ["_has:Observation:subject:date", "'x'"]),
    ("Patient", "_sort=bogus", ["_sort", "'bogus'"]),
    ("Patient", "_sort=-", ["_sort", "''"]),
    ("Patient", "_sort=a&_sort=b", ["_sort"]),
    ("Patient", "_count=x", ["_count", "'x'"]),
    ("Patient", "_count=1.5", ["_count", "1.5"]),
    ("Patient", "_count=1&_count=2", ["'_count'", "once"]),
    ("Patient", "_total=maybe", ["_total", "maybe"]),
    ("Patient", "_summary=all", ["_summary", "all"]),
    ("Patient", "_offset=-1", ["_offset", "-1"]),
    ("Patient", "_count=²", ["_count", "²"]),
    ("Patient", "_snapshot=x&_offset=١", ["_offset", "١"]),
    ("Patient", "_snapshot=x&_offset=99999999999999999999", ["_offset", "too large"]),
    ("Patient", "birthdate=２０２６", ["'birthdate'", "２０２６"]),
    ("Patient", "birthdate=9999-12-31T23:59:59-14:00", ["'birthdate'", "range"]),
    ("RiskAssessment", "probability=١٠", ["'probability'", "١٠"]),
    ("Patient", "_offset=10", ["_offset", "_snapshot"]),
    ("Patient", "_include=Patient", ["'_include'", "Patient"]),
    ("Patient", "_include=Patient:name", ["'_include'", "'name'"]),
    ("Patient", "_include=Patient:link:Observation", ["'_include'", "Observation"]),
    ("Patient", "_include=Observation:subject", ["_include", "Observation:subject"]),
    ("Patient", "_include:deep=Patient:link", ["_include:deep"]),
    ("Patient", "_revinclude=Bogus:subject", ["'_revinclude'", "Bogus:subject"]),
]


@pytest.mark.parametrize(("resource_type", "query", "texts"), ERROR_CASES)
def test_errors_name_the_parameter(resource_type: str, query: str, texts: list[str]) -> None:
    with pytest.raises(Invalid) as raised:
        parse(resource_type, query)
    for text in texts:
        assert text in raised.value.message
