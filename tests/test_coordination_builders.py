"""Small builders of FHIR sources for the coordination engine's tests (and tests that they are valid FHIR)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fhir_ccm.coordination import Reconciliation, reconcile
from fhir_ccm.coordination.npi import npi_valid
from fhir_ccm.formats.json_format import parse_resource
from fhir_ccm.validation import check_issues

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

PATIENT_ID = "p1"
PATIENT = f"Patient/{PATIENT_ID}"
CLOCK = "2026-01-15T09:30:00Z"
ASSEMBLER = {"reference": "Device/fhir-ccm", "display": "fhir-ccm reconciliation engine"}
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
ORAL = {"coding": [{"system": SNOMED, "code": "26643006", "display": "Oral route"}]}


def counter_ids() -> Callable[[str], str]:
    """An id generator that depends only on call order: ``careplan-1``, ``detectedissue-2``..."""
    counters: dict[str, itertools.count[int]] = {}

    def new_id(resource_type: str) -> str:
        counter = counters.setdefault(resource_type, itertools.count(1))
        return f"{resource_type.lower()}-{next(counter)}"

    return new_id


def run(resources: list[dict[str, Any]], patient: str = PATIENT_ID, **options: Any) -> Reconciliation:
    return reconcile(resources, patient, CLOCK, counter_ids(), ASSEMBLER, **options)


def example_sources(folder: str) -> list[dict[str, Any]]:
    """One example patient's resources and the shared practitioners and organizations, as the server parses them."""
    paths = sorted((EXAMPLES / folder).glob("*.json")) + sorted((EXAMPLES / "shared").glob("*.json"))
    return [parse_resource(path.read_bytes()) for path in paths]


def with_check_digit(first_nine: str) -> str:
    """The NPI whose first nine digits are given (Luhn with prefix 80840)."""
    return next(first_nine + str(digit) for digit in range(10) if npi_valid(first_nine + str(digit)))


def patient(patient_id: str = PATIENT_ID) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": patient_id, "name": [{"family": "Doe", "given": ["Pat"]}]}


def quantity(value: Any, unit: str, comparator: str | None = None) -> dict[str, Any]:
    result: dict[str, Any] = {"value": Decimal(str(value)), "unit": unit, "system": UCUM, "code": unit}
    if comparator:
        result["comparator"] = comparator
    return result


def dosage(
    dose: tuple[Any, str] | None = (1, "{tbl}"),
    per: tuple[int, int, str] | None = (1, 1, "d"),
    code: str | None = None,
    route: dict[str, Any] | None = ORAL,
) -> dict[str, Any]:
    """A Dosage: ``dose`` (value, UCUM unit), ``per`` (frequency, period, periodUnit) or a timing ``code``."""
    result: dict[str, Any] = {"text": "as directed"}
    timing: dict[str, Any] = {}
    if per:
        timing["repeat"] = {"frequency": per[0], "period": per[1], "periodUnit": per[2]}
    if code:
        system = "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation"
        timing["code"] = {"coding": [{"system": system, "code": code}]}
    if timing:
        result["timing"] = timing
    if route:
        result["route"] = route
    if dose:
        result["doseAndRate"] = [{"doseQuantity": quantity(*dose)}]
    return result


def medication(
    resource_id: str,
    rxcui: str | None,
    display: str,
    *,
    status: str = "active",
    dose: tuple[Any, str] | None = (1, "{tbl}"),
    per: tuple[int, int, str] | None = (1, 1, "d"),
    code: str | None = None,
    route: dict[str, Any] | None = ORAL,
    date: str = "2025-01-15",
    author: str = "Practitioner/dr-a",
    request: bool = False,
    intent: str = "order",
    subject: str = PATIENT,
) -> dict[str, Any]:
    """A MedicationStatement (or with ``request`` a MedicationRequest) with one dosage."""
    concept: dict[str, Any] = {"text": display}
    if rxcui:
        concept["coding"] = [{"system": RXNORM, "code": rxcui, "display": display}]
    instructions = [dosage(dose, per, code, route)]
    if request:
        return {
            "resourceType": "MedicationRequest",
            "id": resource_id,
            "status": status,
            "intent": intent,
            "medicationCodeableConcept": concept,
            "subject": {"reference": subject},
            "authoredOn": date,
            "requester": {"reference": author},
            "dosageInstruction": instructions,
        }
    return {
        "resourceType": "MedicationStatement",
        "id": resource_id,
        "status": status,
        "medicationCodeableConcept": concept,
        "subject": {"reference": subject},
        "effectivePeriod": {"start": date},
        "dateAsserted": date,
        "informationSource": {"reference": author},
        "dosage": instructions,
    }


def target(code: str, value: Any = None, unit: str = "", comparator: str | None = "<", **detail: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"measure": {"coding": [{"system": LOINC, "code": code}]}, "dueDate": "2026-06-30"}
    if value is not None:
        result["detailQuantity"] = quantity(value, unit, comparator)
    result.update(detail)
    return result


def goal(
    resource_id: str, targets: list[dict[str, Any]], *, status: str = "active", date: str = "2025-01-15"
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Goal",
        "id": resource_id,
        "lifecycleStatus": status,
        "description": {"text": f"Goal {resource_id}"},
        "subject": {"reference": PATIENT},
        "startDate": date,
    }
    if targets:
        resource["target"] = targets
    return resource


def practitioner(resource_id: str, npi: str | None, family: str, given: str = "Alex") -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Practitioner",
        "id": resource_id,
        "name": [{"use": "official", "family": family, "given": [given]}],
    }
    if npi:
        resource["identifier"] = [{"system": "http://hl7.org/fhir/sid/us-npi", "value": npi}]
    return resource


def participant(member: str, organization: str | None = None, role: str = "309343006") -> dict[str, Any]:
    result: dict[str, Any] = {
        "role": [{"coding": [{"system": SNOMED, "code": role}]}],
        "member": {"reference": member},
    }
    if organization:
        result["onBehalfOf"] = {"reference": organization}
    return result


def care_team(resource_id: str, participants: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "CareTeam",
        "id": resource_id,
        "status": "active",
        "subject": {"reference": PATIENT},
        "participant": participants,
        **extra,
    }


def condition(resource_id: str, *codes: tuple[str, str], text: str | None = None) -> dict[str, Any]:
    code: dict[str, Any] = {"coding": [{"system": system, "code": value} for system, value in codes]}
    if text:
        code["text"] = text
    return {"resourceType": "Condition", "id": resource_id, "code": code, "subject": {"reference": PATIENT}}


def care_plan(
    resource_id: str,
    *,
    addresses: Sequence[str] = (),
    goals: Sequence[str] = (),
    activities: Sequence[str] = (),
    status: str = "active",
    author: str = "Practitioner/dr-a",
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": resource_id,
        "status": status,
        "intent": "plan",
        "title": f"Plan {resource_id}",
        "subject": {"reference": PATIENT},
        "author": {"reference": author},
    }
    if addresses:
        resource["addresses"] = [{"reference": a} for a in addresses]
    if goals:
        resource["goal"] = [{"reference": g} for g in goals]
    if activities:
        resource["activity"] = [{"reference": {"reference": a}} for a in activities]
    return resource


def assert_valid(reconciliation: Reconciliation) -> None:
    """Every output resource, and the Bundle, is valid FHIR R4."""
    bundle = reconciliation.bundle()
    problems = {
        f"{entry['resource']['resourceType']}/{entry['resource']['id']}": check_issues(entry["resource"])
        for entry in bundle["entry"]
    }
    assert {key: issues for key, issues in problems.items() if issues} == {}
    assert check_issues(bundle) == []


# --- the builders themselves -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "resource",
    [
        patient(),
        medication("m1", "314076", "lisinopril 10 MG Oral Tablet"),
        medication("m2", "314076", "lisinopril 10 MG Oral Tablet", request=True),
        medication("m3", None, "Fish oil", code="BID", per=None),
        goal("g1", [target("4548-4", "7.0", "%")]),
        practitioner("dr-a", with_check_digit("123456789"), "Smith"),
        care_team("t1", [participant("Practitioner/dr-a", "Organization/o1")]),
        condition("c1", (SNOMED, "38341003")),
        care_plan("cp1", addresses=["Condition/c1"], goals=["Goal/g1"], activities=["ServiceRequest/s1"]),
    ],
    ids=lambda resource: resource["resourceType"],
)
def test_builders_make_valid_fhir(resource):
    assert check_issues(resource) == []


def test_with_check_digit_gives_a_valid_npi():
    assert with_check_digit("162249617") == "1622496176"
    assert npi_valid(with_check_digit("287654321"))
