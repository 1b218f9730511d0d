"""The CCM profiles in ``profiles/``: valid definitions, met by the examples, and each CCM requirement enforced."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fhir_ccm.errors import Issue
from fhir_ccm.validation.profiles import Registry, must_support_report, validate

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "profiles"
EXAMPLES = ROOT / "examples"
PATIENT_FOLDERS = ("maria-garcia", "robert-johnson", "linda-thompson", "james-washington")
CCM = "http://fhir-ccm.org/StructureDefinition/"
CAREPLAN, GOAL, MEDICATION, CARETEAM = (
    CCM + "ccm-careplan",
    CCM + "ccm-goal",
    CCM + "ccm-medicationstatement",
    CCM + "ccm-careteam",
)
DOM_6 = "Constraint dom-6 failed"


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)


@pytest.fixture(scope="module")
def registry() -> Registry:
    registry = Registry()
    registry.load_paths([PROFILES])
    return registry


def errors(issues: list[Issue]) -> list[tuple[str, str, str]]:
    return [(i.code, i.expression[0] if i.expression else "", i.diagnostics) for i in issues if i.severity == "error"]


# --------------------------------------------------------------------------- the definitions

DEFINITIONS = sorted(PROFILES.glob("*.json"))


@pytest.mark.parametrize("path", DEFINITIONS, ids=lambda p: p.name)
def test_each_definition_is_a_valid_r4_resource(path: Path) -> None:
    """Validated with the engine against the base R4 StructureDefinition (and ValueSet): no issue at all."""
    assert validate(load(path)) == []


def test_the_four_ccm_profiles_are_differentials_with_snapshots_generated(registry: Registry) -> None:
    expected = {CAREPLAN: "CarePlan", GOAL: "Goal", MEDICATION: "MedicationStatement", CARETEAM: "CareTeam"}
    for url, resource_type in expected.items():
        definition = load(PROFILES / f"StructureDefinition-{url.rsplit('/', 1)[1]}.json")
        assert definition["url"] == url and "snapshot" not in definition
        assert definition["baseDefinition"] == f"http://hl7.org/fhir/StructureDefinition/{resource_type}"
        profile = registry.profile(url)
        assert profile is not None and profile.type == resource_type and not profile.is_core
    assert registry.problems == {}


# --------------------------------------------------------------------------- the examples

EXAMPLE_FILES = sorted(path for folder in PATIENT_FOLDERS for path in (EXAMPLES / folder).glob("*.json"))
CLAIMING = [path for path in EXAMPLE_FILES if load(path).get("meta", {}).get("profile")]


def test_the_ccm_resources_of_the_four_patients_claim_their_profile() -> None:
    claims = {path.name: load(path)["meta"]["profile"] for path in CLAIMING}
    for path in EXAMPLE_FILES:
        kind = path.name.split("-", 1)[0]
        if kind == "Goal":
            assert claims[path.name] == [GOAL]
        elif kind == "MedicationStatement":
            assert claims[path.name] == [MEDICATION]
        elif kind == "CareTeam":
            assert claims[path.name] == [CARETEAM]
        elif kind == "CarePlan" and path.name.endswith("-primary-care.json"):
            assert claims[path.name] == [CAREPLAN]  # the comprehensive CCM plan of each patient
        else:
            assert path.name not in claims  # specialists' plans are not comprehensive CCM plans
    assert len(claims) == 4 + 21 + 35 + 12


@pytest.mark.parametrize("path", CLAIMING, ids=lambda p: p.name)
def test_each_example_passes_the_profiles_it_claims(registry: Registry, path: Path) -> None:
    issues = validate(load(path), (), registry)
    assert [i for i in issues if not i.diagnostics.startswith(DOM_6)] == []


def test_the_primary_care_plans_populate_every_must_support_element(registry: Registry) -> None:
    for path in sorted(EXAMPLES.glob("*/CarePlan-*-primary-care.json")):
        report = must_support_report(load(path), CAREPLAN, registry)
        missing = {entry.element for entry in report if not entry.populated}
        assert missing <= {"CarePlan.activity.reference", "CarePlan.activity.detail.status"}, (path.name, missing)


# --------------------------------------------------------------------------- each requirement

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(resource: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = resource
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is None:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return mutate


def _keep_first(key: str, count: int = 1) -> Mutation:
    def mutate(resource: dict[str, Any]) -> None:
        resource[key] = resource[key][:count]

    return mutate


def _inline_activity_without_performer(plan: dict[str, Any]) -> None:
    plan["activity"] = [{"detail": {"kind": "Task", "status": "scheduled", "description": "Call the patient"}}]


PLAN = EXAMPLES / "maria-garcia" / "CarePlan-ccm-garcia-careplan-primary-care.json"
GOAL_FILE = EXAMPLES / "maria-garcia" / "Goal-ccm-garcia-goal-primary-care-a1c.json"
MED_FILE = EXAMPLES / "maria-garcia" / "MedicationStatement-ccm-garcia-medstmt-primary-care-metformin.json"
TEAM_FILE = EXAMPLES / "maria-garcia" / "CareTeam-ccm-garcia-careteam-nephrology.json"

# (requirement, file, mutation, expected (code, expression, words in the message)) - one row per CCM rule
REQUIREMENTS: list[tuple[str, Path, Mutation, tuple[str, str, str]]] = [
    ("problem list of 2+ conditions", PLAN, _keep_first("addresses"), ("required", "CarePlan.addresses", "at least 2")),
    (
        "problems are Conditions",
        PLAN,
        _set("addresses.1", {"reference": "Observation/x"}),
        ("structure", "CarePlan.addresses[1].reference", "Condition"),
    ),
    ("measurable goals", PLAN, _set("goal", None), ("required", "CarePlan.goal", "at least 1")),
    ("planned interventions", PLAN, _set("activity", None), ("required", "CarePlan.activity", "at least 1")),
    (
        "who is responsible",
        PLAN,
        _inline_activity_without_performer,
        ("invariant", "CarePlan.activity[0]", "ccm-careplan-3"),
    ),
    ("medication management", PLAN, _set("supportingInfo", None), ("invariant", "CarePlan", "ccm-careplan-1")),
    ("outside providers", PLAN, _keep_first("careTeam"), ("invariant", "CarePlan", "ccm-careplan-2")),
    ("periodic review", PLAN, _set("period.end", None), ("required", "CarePlan.period.end", "at least 1")),
    ("a period at all", PLAN, _set("period", None), ("required", "CarePlan.period", "at least 1")),
    ("narrative", PLAN, _set("text", None), ("required", "CarePlan.text", "at least 1")),
    (
        "narrative status (US Core)",
        PLAN,
        _set("text.status", "extensions"),
        ("code-invalid", "CarePlan.text.status", "ccm-narrative-status"),
    ),
    (
        "assess-plan category (US Core)",
        PLAN,
        _set("category", [{"text": "Care plan"}]),
        ("required", "CarePlan.category", "AssessPlan"),
    ),
    (
        "subject is a Patient (US Core)",
        PLAN,
        _set("subject", {"reference": "Group/g1"}),
        ("structure", "CarePlan.subject.reference", "Patient"),
    ),
    ("goal target", GOAL_FILE, _set("target", None), ("required", "Goal.target", "at least 1")),
    ("target measure", GOAL_FILE, _set("target.0.measure", None), ("required", "Goal.target[0].measure", "measure")),
    (
        "target value",
        GOAL_FILE,
        _set("target.0.detailQuantity", None),
        ("required", "Goal.target[0].detail[x]", "detail"),
    ),
    ("target due (US Core)", GOAL_FILE, _set("target.0.dueDate", None), ("required", "Goal.target[0].due[x]", "due")),
    (
        "goal of a Patient (US Core)",
        GOAL_FILE,
        _set("subject", {"reference": "Organization/o1"}),
        ("structure", "Goal.subject.reference", "Patient"),
    ),
    (
        "who reported the medication",
        MED_FILE,
        _set("informationSource", None),
        ("required", "MedicationStatement.informationSource", "informationSource"),
    ),
    (
        "since when",
        MED_FILE,
        _set("effectivePeriod", None),
        ("required", "MedicationStatement.effective[x]", "effective"),
    ),
    (
        "when it was reported",
        MED_FILE,
        _set("dateAsserted", None),
        ("required", "MedicationStatement.dateAsserted", "dateAsserted"),
    ),
    ("how it is taken", MED_FILE, _set("dosage", None), ("invariant", "MedicationStatement", "ccm-medstmt-2")),
    (
        "what medication",
        MED_FILE,
        _set("medicationCodeableConcept", {"extension": [{"url": "http://example.org/x", "valueString": "?"}]}),
        ("invariant", "MedicationStatement", "ccm-medstmt-1"),
    ),
    ("team status (US Core)", TEAM_FILE, _set("status", None), ("required", "CareTeam.status", "status")),
    ("team subject (US Core)", TEAM_FILE, _set("subject", None), ("required", "CareTeam.subject", "subject")),
    (
        "participant role (US Core)",
        TEAM_FILE,
        _set("participant.0.role", None),
        ("required", "CareTeam.participant[0].role", "role"),
    ),
    (
        "participant member (US Core)",
        TEAM_FILE,
        _set("participant.0.member", None),
        ("required", "CareTeam.participant[0].member", "member"),
    ),
    (
        "a practitioner's organization",
        TEAM_FILE,
        _set("participant.0.onBehalfOf", None),
        ("invariant", "CareTeam", "ccm-careteam-1"),
    ),
]


@pytest.mark.parametrize(
    ("requirement", "path", "mutate", "expected"), REQUIREMENTS, ids=[row[0] for row in REQUIREMENTS]
)
def test_each_ccm_requirement_is_enforced(
    registry: Registry, requirement: str, path: Path, mutate: Mutation, expected: tuple[str, str, str]
) -> None:
    resource = copy.deepcopy(load(path))
    assert errors(validate(resource, (), registry)) == []
    mutate(resource)
    code, expression, words = expected
    found = errors(validate(resource, (), registry))
    assert any(c == code and e == expression and words in message for c, e, message in found), found


def test_a_practitioner_needs_an_organization_but_the_patient_does_not(registry: Registry) -> None:
    team = load(TEAM_FILE)
    patient_index = next(
        i for i, p in enumerate(team["participant"]) if p["member"]["reference"].startswith("Patient/")
    )
    assert "onBehalfOf" not in team["participant"][patient_index]
    assert errors(validate(team, (), registry)) == []


def test_a_stopped_medication_needs_no_dosage_but_an_active_one_does(registry: Registry) -> None:
    medication = copy.deepcopy(load(MED_FILE))
    del medication["dosage"]
    medication["status"] = "stopped"
    assert errors(validate(medication, (), registry)) == []
    medication["status"] = "active"
    assert [e[2].split(":")[0] for e in errors(validate(medication, (), registry))] == [
        "Constraint ccm-medstmt-2 failed"
    ]


def test_a_medication_named_only_in_text_is_accepted(registry: Registry) -> None:
    """Planted disagreement 4: an over-the-counter product without RxNorm code."""
    vitamin = load(EXAMPLES / "maria-garcia" / "MedicationStatement-ccm-garcia-medstmt-primary-care-vitamin-d.json")
    assert "coding" not in vitamin["medicationCodeableConcept"]
    assert errors(validate(vitamin, (), registry)) == []


def test_a_specialist_plan_is_not_a_comprehensive_ccm_plan(registry: Registry) -> None:
    plan = load(EXAMPLES / "james-washington" / "CarePlan-ccm-washington-careplan-endocrinology.json")
    found = {(code, expression) for code, expression, _ in errors(validate(plan, [CAREPLAN], registry))}
    assert ("required", "CarePlan.addresses") in found  # one condition only
    assert ("invariant", "CarePlan") in found
