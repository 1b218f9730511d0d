"""Search parameter extraction: typed FHIRPath evaluation and the index rows of each kind."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fhir_ccm.definitions import resource_types
from fhir_ccm.formats.json_format import parse_json
from fhir_ccm.search import extract
from fhir_ccm.search import fhirpath as fp
from fhir_ccm.search.coverage import stored_codes, subtract_narrower
from fhir_ccm.search.extract import date_range, extract_rows, normalize, rows_for
from fhir_ccm.search.parameters import parameters_for, split_union
from fhir_ccm.search.rows import (
    DATE_MAX,
    DATE_MIN,
    CompositeRow,
    DateRow,
    NumberRow,
    QuantityRow,
    ReferenceRow,
    StringRow,
    TokenRow,
    UriRow,
)

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*/*.json"))
LISTED_TYPES = (
    "CarePlan Goal MedicationStatement MedicationRequest CareTeam Patient Practitioner Organization Condition "
    "Observation Provenance DetectedIssue List"
).split()
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, millis: int = 0) -> int:
    """Epoch milliseconds of a UTC wall-clock time."""
    moment = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    return (moment - EPOCH) // timedelta(milliseconds=1) + millis


def param(resource_type: str, code: str):
    return parameters_for(resource_type)[code]


def rows(resource_type: str, code: str, resource: dict[str, Any]) -> list[Any]:
    return rows_for(param(resource_type, code), {"resourceType": resource_type, **resource})


BP_OBSERVATION: dict[str, Any] = {
    "resourceType": "Observation",
    "id": "bp",
    "status": "final",
    "code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}]},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2026-03-04T10:15:00+10:00",
    "valueQuantity": {"value": Decimal("1.50"), "unit": "score", "system": UCUM, "code": "{score}"},
    "component": [
        {
            "code": {"coding": [{"system": LOINC, "code": "8480-6"}]},
            "valueQuantity": {"value": Decimal("120.5"), "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
        },
        {
            "code": {"coding": [{"system": LOINC, "code": "8462-4"}, {"system": "urn:x", "code": "dia"}]},
            "valueQuantity": {"value": 80, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
        },
        {"code": {"text": "Comment"}, "valueString": "seated"},
    ],
}

# Resources exercising shapes the examples lack, for the hand path / fhirpathpy comparison.
SYNTHETIC: list[dict[str, Any]] = [
    BP_OBSERVATION,
    {
        "resourceType": "Observation",
        "status": "final",
        "_status": {"extension": [{"url": "urn:x", "valueString": "x"}]},
        "code": {"text": "Mood"},
        "valueCodeableConcept": {"coding": [{"system": "urn:m", "code": "good"}], "text": "Good"},
        "effectivePeriod": {"start": "2026-01-01", "end": "2026-02"},
        "subject": {"type": "Patient", "identifier": {"system": "urn:mrn", "value": "42"}},
        "performer": [{"reference": "#p"}, {"reference": "https://other.example/fhir/Practitioner/9/_history/1"}],
        "extension": [
            {"url": "http://hl7.org/fhir/StructureDefinition/observation-geneticsGene", "valueCodeableConcept": {}},
            {"url": "http://hl7.org/fhir/StructureDefinition/observation-geneticsDnaVariant", "valueString": "c.1A>G"},
        ],
        "meta": {
            "lastUpdated": "2026-03-04T05:06:07.123Z",
            "profile": ["http://example.org/p"],
            "tag": [{"code": "t"}],
        },
    },
    {
        "resourceType": "Patient",
        "id": "pat",
        "deceasedDateTime": "2020-05",
        "telecom": [{"system": "email", "value": "a@b.c"}, {"system": "phone", "value": "555"}, {"value": "x"}],
        "name": [{"family": "Müller", "given": ["José", None], "_given": [None, {"extension": []}]}],
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-extensions-Patient-mothersMaidenName",
                "valueString": "Núñez",
            }
        ],
    },
    {"resourceType": "Patient", "deceasedBoolean": False, "active": True, "gender": "other"},
    {"resourceType": "Patient", "deceasedBoolean": True},
    {
        "resourceType": "Condition",
        "subject": {"reference": "Group/g"},
        "onsetAge": {"value": 40, "unit": "a", "system": UCUM, "code": "a"},
        "abatementRange": {"low": {"value": 50, "unit": "a"}},
        "recordedDate": "2026",
    },
    {"resourceType": "Condition", "onsetString": "childhood", "abatementPeriod": {"end": "2020-01-01"}},
    {"resourceType": "Condition", "onsetPeriod": {"start": "2019"}, "abatementDateTime": "2021-02-03"},
    {
        "resourceType": "Bundle",
        "type": "document",
        "entry": [{"resource": {"resourceType": "Composition", "id": "c1"}}, {"resource": {"resourceType": "Patient"}}],
    },
    {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "item": [
            {
                "linkId": "1",
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/questionnaireresponse-isSubject",
                        "valueBoolean": True,
                    }
                ],
                "answer": [{"valueReference": {"reference": "Patient/q"}}, {"valueString": "no"}],
            }
        ],
    },
    {
        "resourceType": "Composition",
        "relatesTo": [
            {"code": "replaces", "targetReference": {"reference": "Composition/old"}},
            {"code": "appends", "targetIdentifier": {"system": "urn:s", "value": "v"}},
        ],
    },
    {"resourceType": "RiskAssessment", "prediction": [{"probabilityDecimal": 0.25}, {"probabilityRange": {}}]},
    {"resourceType": "ChargeItem", "priceOverride": {"value": Decimal("12.30"), "currency": "EUR"}},
    {
        "resourceType": "MolecularSequence",
        "referenceSeq": {"chromosome": {"coding": [{"code": "1"}]}},
        "variant": [{"start": 10, "end": 12}, {"start": 20}],
    },
    {
        "resourceType": "Library",
        "relatedArtifact": [
            {"type": "composed-of", "resource": "http://example.org/Library/a|1.0"},
            {"type": "depends-on", "resource": "http://example.org/Library/b"},
        ],
        "useContext": [
            {"code": {"code": "age"}, "valueRange": {"low": {"value": 18}}},
            {"code": {"code": "focus"}, "valueCodeableConcept": {"text": "x"}},
        ],
    },
    {
        "resourceType": "MedicationRequest",
        "medicationReference": {"reference": "Medication/m"},
        "dosageInstruction": [{"timing": {"event": ["2026-01-02", "2026-01-05T08:00:00Z"]}}],
    },
]


def load(path: Path) -> dict[str, Any]:
    return parse_json(path.read_text(encoding="utf-8"))


def comparable(items: list[fp.Item]) -> list[tuple[Any, ...]]:
    """Values, types and (for codes) bindings, ignoring which definition path gave them."""
    result = []
    for value, type_code, _node, prop in items:
        binding = (prop.binding_strength, prop.value_set) if prop is not None and type_code == "code" else None
        result.append((fp._value_key(value), type_code, binding))
    return result


# --------------------------------------------------------------------------- the two evaluation paths


def test_examples_exist() -> None:
    assert len(EXAMPLE_FILES) > 100


@pytest.mark.parametrize(
    "resource",
    [load(path) for path in EXAMPLE_FILES] + SYNTHETIC,
    ids=[path.stem for path in EXAMPLE_FILES] + [f"synthetic-{i}" for i in range(len(SYNTHETIC))],
)
def test_hand_path_and_fhirpathpy_agree(resource: dict[str, Any]) -> None:
    for search_param in parameters_for(resource["resourceType"]).values():
        expression = search_param.expression
        assert fp.uses_hand_path(expression), expression
        hand = fp.evaluate_items(expression, resource)
        fallback = fp._evaluate_fallback(expression, resource)
        assert comparable(hand) == comparable(fallback), (search_param.code, expression)
        if search_param.type != "composite":
            continue
        for element in hand:
            for _url, component in search_param.components:
                assert fp.uses_hand_path(component, element[2], resource["resourceType"]), component
                hand_values = fp.evaluate_items(component, resource, element)
                fallback_values = fp._evaluate_fallback(component, resource, element)
                assert comparable(hand_values) == comparable(fallback_values), (search_param.code, component)


@pytest.mark.parametrize("resource", [load(path) for path in EXAMPLE_FILES[::7]] + SYNTHETIC)
def test_rows_are_the_same_through_fhirpathpy(resource: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    expected = extract_rows(resource)
    monkeypatch.setattr(extract, "evaluate_items", fp._evaluate_fallback)
    assert extract_rows(resource) == expected


@pytest.mark.parametrize(
    "resource",
    [load(path) for path in EXAMPLE_FILES] + SYNTHETIC,
    ids=[path.stem for path in EXAMPLE_FILES] + [f"synthetic-{i}" for i in range(len(SYNTHETIC))],
)
def test_skipping_parameters_by_top_level_names_loses_no_row(resource: dict[str, Any]) -> None:
    every_parameter = {
        code: rows
        for code, param in parameters_for(resource["resourceType"]).items()
        if (rows := rows_for(param, resource))
    }
    subtract_narrower(resource["resourceType"], every_parameter)
    assert extract_rows(resource) == list(dict.fromkeys(row for rows in every_parameter.values() for row in rows))


OVERLAPPING_PARTS: list[dict[str, Any]] = [
    {
        "resourceType": "Patient",
        "name": [{"family": "Lee", "given": ["Lee", "Ann"], "text": "Ann Lee"}, {"family": "Lee", "prefix": ["Dr"]}],
        "address": [{"line": ["Springfield"], "city": "Springfield", "district": "Essex", "country": "US"}],
        "telecom": [
            {"system": "phone", "value": "555"},
            {"system": "fax", "value": "555"},
            {"system": "email", "value": "a@b.c"},
            {"value": "x"},
        ],
    },
    {"resourceType": "Organization", "name": "Acme", "alias": ["Acme", "ACME Health"]},
    {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": {"reference": "Group/g1"}},
    {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": "1"}]},
        "component": [{"code": {"coding": [{"system": LOINC, "code": "1"}]}}, {"code": {"text": "only here"}}],
    },
]


@pytest.mark.parametrize("resource", [load(path) for path in EXAMPLE_FILES] + SYNTHETIC + OVERLAPPING_PARTS)
def test_a_parameter_reads_back_every_value_it_yields(resource: dict[str, Any]) -> None:
    """The rows stored under a code and its narrower codes hold exactly the values the code yields."""
    stored = extract_rows(resource)
    for code, search_param in parameters_for(resource["resourceType"]).items():
        codes = stored_codes(code)
        read_back = {_value(row) for row in stored if row.param in codes}
        assert read_back == {_value(row) for row in rows_for(search_param, resource)}, code


def _value(row: Any) -> tuple[Any, ...]:
    return (type(row), *tuple(vars(row).values())[1:])


def test_a_value_a_narrower_parameter_holds_is_stored_once() -> None:
    patient = {"resourceType": "Patient", "name": [{"family": "Lee", "given": ["Ann"]}], "address": [{"city": "Rome"}]}
    found = extract_rows(patient)
    assert [row.param for row in found if isinstance(row, StringRow)] == ["address-city", "family", "given"]
    plan = {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": {"reference": "Patient/p"}}
    assert [row for row in extract_rows(plan) if isinstance(row, ReferenceRow)] == [
        ReferenceRow("patient", "Patient", "p")
    ]


def test_top_level_names_a_parameter_needs() -> None:
    assert fp.compiled("MedicationStatement.effective", "MedicationStatement").first_keys == {
        "effectiveDateTime",
        "effectivePeriod",
    }
    assert fp.compiled("Resource.meta.profile", "CarePlan").first_keys == {"meta"}
    # a value whatever the resource holds: deceased is false when absent
    assert fp.compiled("Patient.deceased.exists() and Patient.deceased != false", "Patient").first_keys is None
    assert fp.compiled("Patient.extension('http://x').value", "Patient").first_keys is None


def test_every_r4_term_is_hand_path_or_compiles_with_fhirpathpy() -> None:
    terms = hand = 0
    for resource_type in sorted(resource_types()):
        for search_param in parameters_for(resource_type).values():
            for term in split_union(search_param.expression):
                terms += 1
                if fp.uses_hand_path(term):
                    hand += 1
                else:
                    assert fp.compiles_with_fhirpathpy(term, resource_type), term
            nodes = fp.result_nodes(search_param.expression) or frozenset()
            for _url, component in search_param.components:
                for node in nodes:
                    assert fp.uses_hand_path(component, node, resource_type) or fp.compiles_with_fhirpathpy(
                        component, resource_type
                    ), component
    assert terms > 2000
    assert hand / terms > 0.95


@pytest.mark.parametrize("resource_type", LISTED_TYPES)
def test_hand_path_covers_the_ccm_types(resource_type: str) -> None:
    for search_param in parameters_for(resource_type).values():
        assert fp.uses_hand_path(search_param.expression), search_param.expression
        for _url, component in search_param.components:
            for node in fp.result_nodes(search_param.expression) or ():
                assert fp.uses_hand_path(component, node, resource_type), component


def test_unknown_expressions_go_to_fhirpathpy() -> None:
    patient = {"resourceType": "Patient", "name": [{"given": ["A", "B"]}]}
    assert not fp.uses_hand_path("Patient.name.given.first()")
    assert fp.evaluate("Patient.name.given.first()", patient) == [("A", "string")]
    assert not fp.uses_hand_path("Patient.nonsense")
    assert fp.evaluate("Patient.nonsense", patient) == []


# --------------------------------------------------------------------------- typed evaluation


@pytest.mark.parametrize(
    ("expression", "resource", "expected"),
    [
        ("Observation.effective", BP_OBSERVATION, [("2026-03-04T10:15:00+10:00", "dateTime")]),
        ("Observation.effective", {"resourceType": "Observation", "effectivePeriod": {}}, [({}, "Period")]),
        ("(Observation.value as Quantity).unit", BP_OBSERVATION, [("score", "string")]),
        ("Observation.value.as(Quantity).value", BP_OBSERVATION, [(Decimal("1.50"), "decimal")]),
        ("Observation.component.value.ofType(string)", BP_OBSERVATION, [("seated", "string")]),
        ("(Observation.value as CodeableConcept)", BP_OBSERVATION, []),
        (
            "Observation.component.code.coding.code",
            BP_OBSERVATION,
            [("8480-6", "code"), ("8462-4", "code"), ("dia", "code")],
        ),
        ("Observation.subject.where(resolve() is Patient).reference", BP_OBSERVATION, [("Patient/p1", "string")]),
        ("Observation.subject.where(resolve() is Group)", BP_OBSERVATION, []),
        ("Resource.id", BP_OBSERVATION, [("bp", "string")]),
        ("Patient.id", BP_OBSERVATION, []),
        ("Resource.meta.lastUpdated", SYNTHETIC[1], [("2026-03-04T05:06:07.123Z", "instant")]),
        ("Patient.telecom.where(system='email').value", SYNTHETIC[2], [("a@b.c", "string")]),
        ("Patient.name.given", SYNTHETIC[2], [("José", "string")]),
        ("Patient.deceased.exists() and Patient.deceased != false", SYNTHETIC[2], [(True, "boolean")]),
        ("Patient.deceased.exists() and Patient.deceased != false", SYNTHETIC[3], [(False, "boolean")]),
        ("Patient.deceased.exists() and Patient.deceased != false", SYNTHETIC[4], [(True, "boolean")]),
        ("Patient.deceased.exists() and Patient.deceased != false", {"resourceType": "Patient"}, [(False, "boolean")]),
        ("Condition.onset.as(Quantity).value", SYNTHETIC[5], [(40, "decimal")]),
        ("Bundle.entry[0].resource", SYNTHETIC[8], [({"resourceType": "Composition", "id": "c1"}, "Composition")]),
        (
            "Library.relatedArtifact.where(type='depends-on').resource",
            SYNTHETIC[14],
            [("http://example.org/Library/b", "canonical")],
        ),
        ("Patient.name.family | Patient.name.family", SYNTHETIC[2], [("Müller", "string")]),
    ],
)
def test_evaluate(expression: str, resource: dict[str, Any], expected: list[tuple[Any, str]]) -> None:
    assert fp.evaluate(expression, resource) == expected


def test_relative_expressions_evaluate_at_an_element() -> None:
    components = fp.evaluate_items("Observation.component", BP_OBSERVATION)
    assert [item[2] for item in components] == ["Observation.component"] * 3
    values = [fp.evaluate_items("value.as(Quantity).value", BP_OBSERVATION, item) for item in components]
    assert [[value for value, *_ in found] for found in values] == [[Decimal("120.5")], [80], []]
    sequence = SYNTHETIC[13]
    variant = fp.evaluate_items("MolecularSequence.variant", sequence)[0]
    assert fp.evaluate_items("%resource.referenceSeq.chromosome", sequence, variant)[0][1] == "CodeableConcept"


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Patient/123", ("Patient", "123", None, None)),
        ("Patient/123/_history/2", ("Patient", "123", "2", None)),
        ("http://host/fhir/Patient/123", ("Patient", "123", None, "http://host/fhir/Patient/123")),
        ("http://host/fhir/Patient/123/_history/4", ("Patient", "123", "4", "http://host/fhir/Patient/123")),
        (
            "urn:uuid:0c9a8f8e-9c2a-4f7e-a5d2-1f6b6d9e3b11",
            (None, None, None, "urn:uuid:0c9a8f8e-9c2a-4f7e-a5d2-1f6b6d9e3b11"),
        ),
        ("http://host/other/thing", (None, None, None, "http://host/other/thing")),
        ("#contained", None),
        ("NotAType/1", None),
        ("Patient", None),
        ("", None),
    ],
)
def test_parse_reference(reference: str, expected: Any) -> None:
    assert fp.parse_reference(reference) == expected


# --------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("2026", ms(2026, 1, 1), ms(2027, 1, 1) - 1),
        ("2026-02", ms(2026, 2, 1), ms(2026, 3, 1) - 1),
        ("2024-02", ms(2024, 2, 1), ms(2024, 3, 1) - 1),
        ("2026-12", ms(2026, 12, 1), ms(2027, 1, 1) - 1),
        ("2026-03-04", ms(2026, 3, 4), ms(2026, 3, 5) - 1),
        ("2026-03-04T10:15:30Z", ms(2026, 3, 4, 10, 15, 30), ms(2026, 3, 4, 10, 15, 30) + 999),
        ("2026-03-04T10:15:30.123Z", ms(2026, 3, 4, 10, 15, 30, 123), ms(2026, 3, 4, 10, 15, 30, 123)),
        ("2026-03-04T10:15:30.123456Z", ms(2026, 3, 4, 10, 15, 30, 123), ms(2026, 3, 4, 10, 15, 30, 123)),
        ("2026-03-04T10:15:30.5Z", ms(2026, 3, 4, 10, 15, 30, 500), ms(2026, 3, 4, 10, 15, 30, 599)),
        ("2026-03-04T10:15:30+10:00", ms(2026, 3, 4, 0, 15, 30), ms(2026, 3, 4, 0, 15, 30) + 999),
        ("2026-03-04T02:00:00+10:00", ms(2026, 3, 3, 16), ms(2026, 3, 3, 16) + 999),
        ("2026-03-04T22:30:00-05:30", ms(2026, 3, 5, 4), ms(2026, 3, 5, 4) + 999),
        ("2026-03-04T10:15:30", ms(2026, 3, 4, 10, 15, 30), ms(2026, 3, 4, 10, 15, 30) + 999),
        ("1958-03-12", ms(1958, 3, 12), ms(1958, 3, 13) - 1),
        ("0001", DATE_MIN, ms(2, 1, 1) - 1),
        ("9999", ms(9999, 1, 1), DATE_MAX),
    ],
)
def test_date_precision(text: str, low: int, high: int) -> None:
    assert date_range(text) == (low, high)


@pytest.mark.parametrize("text", ["2026-13", "2026-02-30", "2026-03-04T25:00:00Z", "yesterday", "26-01-01", "", "0000"])
def test_unusable_dates(text: str) -> None:
    assert date_range(text) is None


@pytest.mark.parametrize(
    ("resource_type", "code", "resource", "expected"),
    [
        ("Patient", "birthdate", {"birthDate": "1958-03"}, [(ms(1958, 3, 1), ms(1958, 4, 1) - 1)]),
        (
            "CarePlan",
            "date",
            {"period": {"start": "2025-01-15", "end": "2026-01-15"}},
            [(ms(2025, 1, 15), ms(2026, 1, 16) - 1)],
        ),
        ("CarePlan", "date", {"period": {"start": "2025-01-15"}}, [(ms(2025, 1, 15), DATE_MAX)]),
        ("CarePlan", "date", {"period": {"end": "2025"}}, [(DATE_MIN, ms(2026, 1, 1) - 1)]),
        ("CarePlan", "date", {"period": {}}, []),
        ("CarePlan", "date", {"period": {"start": "garbage"}}, []),
        (
            "MedicationRequest",
            "date",
            {"dosageInstruction": [{"timing": {"event": ["2026-01-05T08:00:00Z", "2026-01-02"]}}]},
            [(ms(2026, 1, 5, 8), ms(2026, 1, 5, 8) + 999), (ms(2026, 1, 2), ms(2026, 1, 3) - 1)],
        ),
        (
            "CarePlan",
            "activity-date",
            {
                "activity": [
                    {"detail": {"status": "scheduled", "scheduledTiming": {"event": ["2026-01-05", "2026-01-02"]}}}
                ]
            },
            [(ms(2026, 1, 2), ms(2026, 1, 6) - 1)],
        ),
        (
            "CarePlan",
            "activity-date",
            {
                "activity": [
                    {
                        "detail": {
                            "status": "scheduled",
                            "scheduledTiming": {"repeat": {"boundsPeriod": {"start": "2026-02"}}},
                        }
                    },
                    {"detail": {"status": "scheduled", "scheduledTiming": {"repeat": {"frequency": 1, "period": 1}}}},
                    {"detail": {"status": "scheduled", "scheduledString": "2026-01-01"}},
                    {"detail": {"status": "scheduled", "scheduledPeriod": {"end": "2026-03-01T00:00:00Z"}}},
                ]
            },
            [(ms(2026, 2, 1), DATE_MAX), (DATE_MIN, ms(2026, 3, 1) + 999)],
        ),
        (
            "Observation",
            "date",
            {"effectiveInstant": "2026-03-04T05:06:07.891+01:00"},
            [(ms(2026, 3, 4, 4, 6, 7, 891),) * 2],
        ),
        ("Condition", "onset-date", {"onsetDateTime": "2020"}, [(ms(2020, 1, 1), ms(2021, 1, 1) - 1)]),
        ("Condition", "onset-date", {"onsetAge": {"value": 4}}, []),
        ("Patient", "death-date", {"deceasedBoolean": True}, []),
        (
            "CarePlan",
            "_lastUpdated",
            {"meta": {"lastUpdated": "2026-03-04T05:06:07.123Z"}},
            [(ms(2026, 3, 4, 5, 6, 7, 123),) * 2],
        ),
    ],
)
def test_date_rows(resource_type: str, code: str, resource: dict[str, Any], expected: list[tuple[int, int]]) -> None:
    assert rows(resource_type, code, resource) == [DateRow(code, low, high) for low, high in expected]


# --------------------------------------------------------------------------- tokens

MR = {"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR", "display": "Medical record number"}


@pytest.mark.parametrize(
    ("resource_type", "code", "resource", "expected"),
    [
        (
            "Condition",
            "code",
            {
                "code": {
                    "coding": [
                        {"system": "http://snomed.info/sct", "code": "44054006", "display": "Diabetes  Mellitus"}
                    ]
                }
            },
            [TokenRow("code", "http://snomed.info/sct", "44054006", "diabetes mellitus")],
        ),
        (
            "Condition",
            "code",
            {"code": {"coding": [{"system": "urn:a", "code": "1"}, {"code": "2"}], "text": "Diabète sucré"}},
            [
                TokenRow("code", "urn:a", "1"),
                TokenRow("code", None, "2"),
                TokenRow("code", None, None, "diabete sucre"),
            ],
        ),
        ("Condition", "code", {"code": {"text": "  Only   text "}}, [TokenRow("code", None, None, "only text")]),
        ("Condition", "code", {"code": {}}, []),
        (
            "Patient",
            "identifier",
            {"identifier": [{"system": "urn:mrn", "value": "42", "type": {"coding": [MR], "text": "MRN"}}]},
            [TokenRow("identifier", "urn:mrn", "42", "mrn", MR["system"], "MR")],
        ),
        (
            "Patient",
            "identifier",
            {
                "identifier": [
                    {"system": "urn:mrn", "value": "42", "type": {"coding": [MR, {"system": "urn:t", "code": "x"}]}},
                    {"value": "no-system"},
                    {"type": {"coding": [MR]}},
                ]
            },
            [
                TokenRow("identifier", "urn:mrn", "42", None, MR["system"], "MR"),
                TokenRow("identifier", "urn:mrn", "42", None, "urn:t", "x"),
                TokenRow("identifier", None, "no-system"),
            ],
        ),
        (
            "Patient",
            "telecom",
            {"telecom": [{"system": "phone", "value": "+1 555 0100"}, {"system": "email"}]},
            [TokenRow("telecom", None, "+1 555 0100")],
        ),
        (
            "Patient",
            "email",
            {"telecom": [{"system": "phone", "value": "555"}, {"system": "email", "value": "jose@example.org"}]},
            [TokenRow("email", None, "jose@example.org")],
        ),
        (
            "Patient",
            "gender",
            {"gender": "female"},
            [TokenRow("gender", "http://hl7.org/fhir/administrative-gender", "female")],
        ),
        (
            "CarePlan",
            "status",
            {"status": "active"},
            [TokenRow("status", "http://hl7.org/fhir/request-status", "active")],
        ),
        ("Patient", "active", {"active": False}, [TokenRow("active", None, "false")]),
        ("Patient", "deceased", {}, [TokenRow("deceased", None, "false")]),
        ("Patient", "deceased", {"deceasedDateTime": "2020"}, [TokenRow("deceased", None, "true")]),
        ("Patient", "_id", {"id": "abc"}, [TokenRow("_id", None, "abc")]),
        (
            "Patient",
            "_security",
            {"meta": {"security": [{"system": "urn:s", "code": "R"}]}},
            [TokenRow("_security", "urn:s", "R")],
        ),
        (
            "Patient",
            "language",
            {"communication": [{"language": {"coding": [{"code": "es"}]}}]},
            [TokenRow("language", None, "es")],
        ),
        (
            "Observation",
            "gene-identifier",
            {
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/observation-geneticsGene",
                        "valueCodeableConcept": {"coding": [{"code": "BRCA1"}]},
                    }
                ]
            },
            [TokenRow("gene-identifier", None, "BRCA1")],
        ),
        ("Observation", "status", {"_status": {"extension": [{"url": "urn:x", "valueCode": "x"}]}}, []),
    ],
)
def test_token_rows(resource_type: str, code: str, resource: dict[str, Any], expected: list[TokenRow]) -> None:
    assert rows(resource_type, code, resource) == expected


# --------------------------------------------------------------------------- strings


@pytest.mark.parametrize(
    ("text", "expected"),
    [("  José   MÜLLER ", "jose muller"), ("Straße", "strasse"), ("ﬁne Ｆｕｌｌ", "fine full"), ("Ab\tC\n", "ab c")],
)
def test_normalize(text: str, expected: str) -> None:
    from fhir_ccm.search.values import normalize_text  # what searches normalize their values with

    assert normalize(text) == expected == normalize_text(text)


@pytest.mark.parametrize(
    ("resource_type", "code", "resource", "expected"),
    [
        (
            "Patient",
            "name",
            {
                "name": [
                    {
                        "family": "Müller",
                        "given": ["José", "María Elena"],
                        "prefix": ["Dr."],
                        "suffix": ["Jr."],
                        "text": "Dr. José Müller",
                    }
                ]
            },
            [
                ("muller", "Müller"),
                ("jose", "José"),
                ("maria elena", "María Elena"),
                ("dr.", "Dr."),
                ("jr.", "Jr."),
                ("dr. jose muller", "Dr. José Müller"),
            ],
        ),
        (
            "Patient",
            "family",
            {"name": [{"family": "Müller"}, {"family": "Mueller"}]},
            [("muller", "Müller"), ("mueller", "Mueller")],
        ),
        ("Patient", "given", {"name": [{"given": ["José", "  "]}]}, [("jose", "José")]),
        (
            "Patient",
            "address",
            {
                "address": [
                    {
                        "line": ["Calle José 1", "Piso 2"],
                        "city": "Málaga",
                        "district": "Centro",
                        "state": "AN",
                        "postalCode": "29001",
                        "country": "España",
                        "text": "x",
                    }
                ]
            },
            [
                ("calle jose 1", "Calle José 1"),
                ("piso 2", "Piso 2"),
                ("malaga", "Málaga"),
                ("centro", "Centro"),
                ("an", "AN"),
                ("29001", "29001"),
                ("espana", "España"),
                ("x", "x"),
            ],
        ),
        ("Patient", "address-city", {"address": [{"city": "Zürich"}]}, [("zurich", "Zürich")]),
        (
            "Organization",
            "name",
            {"name": "Acme", "alias": ["ACME Corp", "Acme"]},
            [("acme", "Acme"), ("acme corp", "ACME Corp")],
        ),
        ("List", "notes", {"note": [{"text": "Ünïcode note"}]}, [("unicode note", "Ünïcode note")]),
        (
            "Patient",
            "mothersMaidenName",
            {
                "extension": [
                    {
                        "url": "http://hl7.org/fhir/StructureDefinition/patient-extensions-Patient-mothersMaidenName",
                        "valueString": "Núñez",
                    }
                ]
            },
            [("nunez", "Núñez")],
        ),
        ("Condition", "onset-info", {"onsetString": "Childhood"}, [("childhood", "Childhood")]),
    ],
)
def test_string_rows(resource_type: str, code: str, resource: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert rows(resource_type, code, resource) == [StringRow(code, normalized, exact) for normalized, exact in expected]


# --------------------------------------------------------------------------- references


@pytest.mark.parametrize(
    ("resource_type", "code", "resource", "expected"),
    [
        ("CarePlan", "subject", {"subject": {"reference": "Patient/123"}}, [ReferenceRow("subject", "Patient", "123")]),
        (
            "CarePlan",
            "subject",
            {"subject": {"reference": "Patient/123/_history/2"}},
            [ReferenceRow("subject", "Patient", "123", "2")],
        ),
        (
            "CarePlan",
            "subject",
            {"subject": {"reference": "http://host/fhir/Patient/123"}},
            [ReferenceRow("subject", "Patient", "123", url="http://host/fhir/Patient/123")],
        ),
        ("CarePlan", "subject", {"subject": {"reference": "#p1"}}, []),
        ("CarePlan", "subject", {"subject": {"display": "Someone"}}, []),
        (
            "CarePlan",
            "subject",
            {"subject": {"reference": "#p1", "identifier": {"system": "urn:mrn", "value": "42"}}},
            [ReferenceRow("subject", None, None, identifier_system="urn:mrn", identifier_value="42")],
        ),
        (
            "CarePlan",
            "subject",
            {"subject": {"reference": "Patient/1", "identifier": {"value": "42"}}},
            [ReferenceRow("subject", "Patient", "1", identifier_value="42")],
        ),
        (
            "CarePlan",
            "instantiates-canonical",
            {
                "instantiatesCanonical": [
                    "http://example.org/PlanDefinition/x|2.0",
                    "http://example.org/PlanDefinition/y",
                ]
            },
            [
                ReferenceRow("instantiates-canonical", None, None, url="http://example.org/PlanDefinition/x"),
                ReferenceRow("instantiates-canonical", None, None, url="http://example.org/PlanDefinition/y"),
            ],
        ),
        ("CarePlan", "patient", {"subject": {"reference": "Group/1"}}, []),
        (
            "CarePlan",
            "patient",
            {"subject": {"reference": "http://h/fhir/Patient/1"}},
            [ReferenceRow("patient", "Patient", "1", url="http://h/fhir/Patient/1")],
        ),
        (
            "CarePlan",
            "patient",
            {"subject": {"type": "Patient", "identifier": {"system": "urn:mrn", "value": "7"}}},
            [ReferenceRow("patient", None, None, identifier_system="urn:mrn", identifier_value="7")],
        ),
        (
            "Bundle",
            "composition",
            {"entry": [{"resource": {"resourceType": "Composition", "id": "c"}}]},
            [ReferenceRow("composition", "Composition", "c")],
        ),
        (
            "MedicationStatement",
            "medication",
            {"medicationReference": {"reference": "Medication/m"}, "medicationCodeableConcept": {"text": "not both"}},
            [ReferenceRow("medication", "Medication", "m")],
        ),
    ],
)
def test_reference_rows(resource_type: str, code: str, resource: dict[str, Any], expected: list[ReferenceRow]) -> None:
    assert rows(resource_type, code, resource) == expected


# --------------------------------------------------------------------------- quantity, number, uri


@pytest.mark.parametrize(
    ("resource_type", "code", "resource", "expected"),
    [
        (
            "Observation",
            "value-quantity",
            {"valueQuantity": {"value": Decimal("5.40"), "unit": "mmol/L", "system": UCUM, "code": "mmol/L"}},
            [QuantityRow("value-quantity", 5.4, 5.4, UCUM, "mmol/L", "mmol/L")],
        ),
        ("Observation", "value-quantity", {"valueQuantity": {"unit": "mmol/L"}}, []),
        (
            "Observation",
            "value-quantity",
            {"valueSampledData": {"origin": {"value": 1}, "period": 1, "dimensions": 1}},
            [],
        ),
        (
            "Condition",
            "onset-age",
            {"onsetAge": {"value": 40, "unit": "yr", "system": UCUM, "code": "a"}},
            [QuantityRow("onset-age", 40.0, 40.0, UCUM, "a", "yr")],
        ),
        (
            "Condition",
            "onset-age",
            {
                "onsetRange": {
                    "low": {"value": 10, "unit": "yr", "system": UCUM, "code": "a"},
                    "high": {"value": 20, "system": UCUM, "code": "a"},
                }
            },
            [QuantityRow("onset-age", 10.0, 20.0, UCUM, "a", "yr")],
        ),
        (
            "Condition",
            "onset-age",
            {"onsetRange": {"low": {"value": 10, "code": "a"}}},
            [QuantityRow("onset-age", 10.0, math.inf, None, "a", None)],
        ),
        (
            "Condition",
            "onset-age",
            {"onsetRange": {"high": {"value": 3, "code": "a"}}},
            [QuantityRow("onset-age", -math.inf, 3.0, None, "a", None)],
        ),
        ("Condition", "onset-age", {"onsetRange": {}}, []),
        (
            "ChargeItem",
            "price-override",
            {"priceOverride": {"value": Decimal("12.30"), "currency": "EUR"}},
            [QuantityRow("price-override", 12.3, 12.3, extract.CURRENCY_SYSTEM, "EUR", None)],
        ),
    ],
)
def test_quantity_rows(resource_type: str, code: str, resource: dict[str, Any], expected: list[QuantityRow]) -> None:
    assert rows(resource_type, code, resource) == expected


def test_number_and_uri_rows() -> None:
    assessment = {
        "prediction": [
            {"probabilityDecimal": Decimal("0.25")},
            {"probabilityRange": {"low": {"value": 0}, "high": {"value": 1}}},
        ]
    }
    assert rows("RiskAssessment", "probability", assessment) == [
        NumberRow("probability", 0.25, 0.25),
        NumberRow("probability", 0.0, 1.0),
    ]
    plan = {"instantiatesUri": ["http://example.org/protocol", ""], "meta": {"profile": ["http://example.org/sd|1"]}}
    assert rows("CarePlan", "instantiates-uri", plan) == [UriRow("instantiates-uri", "http://example.org/protocol")]
    assert rows("CarePlan", "_profile", plan) == [UriRow("_profile", "http://example.org/sd|1")]


# --------------------------------------------------------------------------- composites


def test_code_value_quantity() -> None:
    found = rows_for(param("Observation", "code-value-quantity"), BP_OBSERVATION)
    assert found == [
        CompositeRow(
            "code-value-quantity",
            (
                TokenRow("code", LOINC, "85354-9", "blood pressure panel"),
                QuantityRow("value-quantity", 1.5, 1.5, UCUM, "{score}", "score"),
            ),
        )
    ]


def test_combo_code_value_quantity_pairs_within_each_element() -> None:
    found = rows_for(param("Observation", "combo-code-value-quantity"), BP_OBSERVATION)
    quantity = "combo-value-quantity"
    assert found == [
        CompositeRow(
            "combo-code-value-quantity",
            (
                TokenRow("combo-code", LOINC, "85354-9", "blood pressure panel"),
                QuantityRow(quantity, 1.5, 1.5, UCUM, "{score}", "score"),
            ),
        ),
        CompositeRow(
            "combo-code-value-quantity",
            (TokenRow("combo-code", LOINC, "8480-6"), QuantityRow(quantity, 120.5, 120.5, UCUM, "mm[Hg]", "mmHg")),
        ),
        CompositeRow(
            "combo-code-value-quantity",
            (TokenRow("combo-code", LOINC, "8462-4"), QuantityRow(quantity, 80.0, 80.0, UCUM, "mm[Hg]", "mmHg")),
        ),
        CompositeRow(
            "combo-code-value-quantity",
            (TokenRow("combo-code", "urn:x", "dia"), QuantityRow(quantity, 80.0, 80.0, UCUM, "mm[Hg]", "mmHg")),
        ),
    ]
    component_rows = rows_for(param("Observation", "component-code-value-quantity"), BP_OBSERVATION)
    assert len(component_rows) == 3  # the root's code is not a component's


def test_composite_with_dates_and_strings() -> None:
    observation = {key: value for key, value in BP_OBSERVATION.items() if key != "valueQuantity"}
    observation["valuePeriod"] = {"start": "2026"}
    assert rows_for(param("Observation", "code-value-date"), observation) == [
        CompositeRow(
            "code-value-date",
            (
                TokenRow("code", LOINC, "85354-9", "blood pressure panel"),
                DateRow("value-date", ms(2026, 1, 1), DATE_MAX),
            ),
        )
    ]
    observation = {"resourceType": "Observation", "code": {"text": "Position"}, "valueString": "Seated"}
    assert rows_for(param("Observation", "code-value-string"), observation) == [
        CompositeRow(
            "code-value-string",
            (TokenRow("code", None, None, "position"), StringRow("value-string", "seated", "Seated")),
        )
    ]


def test_composite_needs_every_component() -> None:
    observation = {"resourceType": "Observation", "component": [{"code": {"text": "x"}}]}
    assert rows_for(param("Observation", "component-code-value-quantity"), observation) == []


def test_molecular_sequence_composite_uses_the_resource() -> None:
    found = rows_for(param("MolecularSequence", "chromosome-variant-coordinate"), SYNTHETIC[13])
    # the second variant has no end, so no combination
    assert found == [
        CompositeRow(
            "chromosome-variant-coordinate",
            (
                TokenRow("chromosome", None, "1"),
                NumberRow("variant-start", 10.0, 10.0),
                NumberRow("variant-end", 12.0, 12.0),
            ),
        )
    ]


# --------------------------------------------------------------------------- the whole resource


def test_extract_rows_deduplicates_and_covers_all_parameters() -> None:
    observation = {**BP_OBSERVATION, "category": [{"coding": [{"code": "vital"}]}, {"coding": [{"code": "vital"}]}]}
    found = extract_rows(observation)
    assert len(found) == len(set(found))
    assert found.count(TokenRow("category", None, "vital")) == 1
    assert {row.param for row in found} >= {"code", "combo-code-value-quantity", "patient", "date", "status"}
    assert ReferenceRow("patient", "Patient", "p1") in found  # and not again as a subject: see test_search_coverage


def test_extract_rows_for_an_example_careplan() -> None:
    plan = load(next(EXAMPLES.glob("maria-garcia/CarePlan-*primary-care.json")))
    found = extract_rows(plan)
    assert TokenRow("status", "http://hl7.org/fhir/request-status", "active") in found
    assert ReferenceRow("patient", "Patient", "ccm-garcia") in found
    assert any(isinstance(row, DateRow) and row.param == "date" for row in found)


@pytest.mark.parametrize(
    "resource",
    [
        {},
        {"resourceType": 5},
        {"resourceType": "NotAType"},
        {"resourceType": "Patient", "name": "not a list", "birthDate": 19580312, "telecom": [None, 3, "x"]},
        {"resourceType": "Patient", "identifier": [{"system": 1, "value": ["x"], "type": "MR"}], "gender": {"x": 1}},
        {"resourceType": "Observation", "valueQuantity": {"value": "NaN"}, "effectivePeriod": "2020", "component": "x"},
        {"resourceType": "Observation", "subject": {"reference": 12}, "code": {"coding": "x", "text": 3}},
        {
            "resourceType": "CarePlan",
            "period": {"start": "2026-99-99"},
            "activity": [{"detail": {"scheduledTiming": {"event": "2020"}}}],
        },
        {"resourceType": "Condition", "onsetRange": {"low": {"value": Decimal("Infinity")}}, "onsetAge": []},
    ],
)
def test_odd_content_never_raises(resource: dict[str, Any]) -> None:
    extract_rows(resource)
