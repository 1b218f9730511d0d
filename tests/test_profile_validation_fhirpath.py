"""Invariants: every core invariant compiles, the native FHIRPath compiler agrees with fhirpathpy,
and the constructs the R4 invariants use evaluate as FHIRPath says."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fhir_ccm.definitions import structure_definitions
from fhir_ccm.validation.profiles import NATIVE_INVARIANTS, SKIPPED_INVARIANTS, Registry, validate
from fhir_ccm.validation.profiles.fallback import compile_fallback
from fhir_ccm.validation.profiles.fhirpath import Env, compile_native, evaluate_boolean
from fhir_ccm.validation.profiles.invariants import Invariant, compile_invariant, from_constraint
from fhir_ccm.validation.profiles.validator import Run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CCM = "http://example.org/fhir/ccm/StructureDefinition/"
RESOURCES = (
    "CarePlan Goal MedicationStatement MedicationRequest CareTeam Patient Practitioner Organization Condition "
    "Observation Provenance DetectedIssue List Bundle"
).split()


def core_constraints() -> list[tuple[str, dict[str, Any]]]:
    """(definition, constraint) for the listed resources and every datatype (primitive, complex, profiled)."""
    found = []
    for sd in structure_definitions().values():
        is_datatype = sd["kind"] in ("primitive-type", "complex-type") and sd["type"] != "Extension"
        is_listed = sd["kind"] == "resource" and sd["type"] in RESOURCES and sd.get("derivation") == "specialization"
        if (is_datatype or is_listed) and "snapshot" in sd:
            for element in sd["snapshot"]["element"]:
                for constraint in element.get("constraint", ()):
                    found.append((sd["id"], constraint))
    return found


CONSTRAINTS = core_constraints()


def test_the_scope_is_covered() -> None:
    keys = {constraint["key"] for _, constraint in CONSTRAINTS}
    assert {"cpl-3", "ctm-1", "gol-1", "con-3", "obs-7", "org-1", "pat-1", "bdl-7", "lst-2"} <= keys
    assert {"per-1", "ref-1", "rng-2", "qty-3", "sqty-1", "tim-9", "txt-1", "ext-1", "ele-1", "dom-3"} <= keys


@pytest.mark.parametrize("constraint", [c for _, c in CONSTRAINTS], ids=[f"{sd}:{c['key']}" for sd, c in CONSTRAINTS])
def test_every_core_invariant_compiles_or_is_listed(constraint: dict[str, Any]) -> None:
    invariant = from_constraint(constraint)
    if constraint["key"] in NATIVE_INVARIANTS:
        assert invariant.engine == "natively-coded"
    elif constraint["key"] in SKIPPED_INVARIANTS:
        assert invariant.engine == "skipped" and invariant.reason
    else:
        assert invariant.engine == "native", invariant.reason
        compile_fallback(constraint["expression"])  # the fallback could take it too


def test_the_skip_table_is_small_and_explained() -> None:
    assert set(SKIPPED_INVARIANTS) == {"con-3"}
    assert all(len(skip.reason) > 40 for skip in SKIPPED_INVARIANTS.values())


def test_expressions_outside_the_native_compiler_go_to_fhirpathpy() -> None:
    invariant = compile_invariant("x-1", "error", "", "telecom.select($index).count() >= 0")
    assert invariant.engine == "fhirpathpy" and "IndexInvocation" in invariant.reason
    patient = {"resourceType": "Patient", "telecom": [{"value": "1"}]}
    assert invariant.evaluate((patient, "Patient", "Patient"), env_for(patient)) is True
    assert compile_invariant("x-2", "error", "", "name.where(").engine == "skipped"


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)


def test_native_and_fhirpathpy_agree_on_every_example(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every invariant the walk evaluates natively on the examples gives fhirpathpy's answer too."""
    evaluated: dict[str, int] = {}
    disagreements: list[tuple[str, Any, Any]] = []
    original = Invariant.evaluate

    def evaluate(self: Invariant, item: Any, env: Env) -> bool | None:
        result = original(self, item, env)
        if self.native is not None:
            evaluated[self.key] = evaluated.get(self.key, 0) + 1
            try:
                other: Any = compile_fallback(self.expression)(item, env)
            except Exception as error:
                other = f"fhirpathpy failed: {error}"
            if other != result:
                disagreements.append((self.key, result, other))
        return result

    monkeypatch.setattr(Invariant, "evaluate", evaluate)
    for path in sorted(EXAMPLES.rglob("*.json")):
        validate(load(path))
    assert len(evaluated) >= 30
    # rng-2 compares two Quantities: fhirpathpy cannot ("'<=' not supported between dict and dict").
    assert {key for key, _, _ in disagreements} <= {"rng-2"}
    assert all(result is True and str(other).startswith("fhirpathpy failed") for _, result, other in disagreements)


# --------------------------------------------------------------------------- the native compiler


class Services:
    def resolve(self, reference: str, env: Env) -> dict[str, Any] | None:
        return Run(Registry()).resolve(reference, env)

    def conforms_to(self, resource: dict[str, Any], url: str) -> bool | None:
        return None

    def member_of(self, item: Any, url: str) -> bool | None:
        return None

    def html_checks(self, div: str) -> bool:
        return True


def env_for(resource: dict[str, Any]) -> Env:
    return Env(resource, resource, Services())


def evaluate(expression: str, resource: dict[str, Any]) -> bool | None:
    item = (resource, resource["resourceType"], resource["resourceType"])
    return evaluate_boolean(compile_native(expression), item, env_for(resource))


PATIENT = {
    "resourceType": "Patient",
    "id": "p1",
    "name": [{"family": "Garcia", "given": ["Maria", "Elena"]}],
    "birthDate": "1961-04",
    "deceasedDateTime": "2024-02-29T10:30:00+01:00",
    "multipleBirthInteger": 2,
    "contained": [{"resourceType": "Practitioner", "id": "pr1"}],
    "generalPractitioner": [{"reference": "#pr1"}, {"reference": "Organization/o1"}],
    "extension": [{"url": "http://x", "valueDecimal": Decimal("2.50")}],
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("{} or true", True),
        ("{} or false", None),
        ("{} and false", False),
        ("{} and true", None),
        ("false implies {}", True),
        ("{} implies true", True),
        ("{} implies false", None),
        ("true xor false", True),
        ("name.given.count() = 2", True),
        ("name.given.first() = 'Maria' and name.given.last() = 'Elena'", True),
        ("name.given.where($this.startsWith('E')).single() = 'Elena'", True),
        ("name.select(given).count() = 2", True),
        ("name.given.all(length() > 3)", True),
        ("name.given.exists($this = 'Ana')", False),
        ("name.family.substring(1, 3) = 'arc'", True),
        ("name.family.matches('^G[a-z]+$')", True),
        ("name.family.upper() = 'GARCIA' and name.family.lower().contains('cia')", True),
        ("name.given.distinct().count() = 2 and name.given.isDistinct()", True),
        ("('a' | 'b' | 'a').count() = 2", True),
        ("'b' in ('a' | 'b')", True),
        ("('a' | 'b') contains 'c'", False),
        ("name.given.intersect('Elena' | 'Ana') = 'Elena'", True),
        ("name.given.exclude('Maria') = 'Elena'", True),
        ("iif(multipleBirth.exists(), multipleBirth > 1, false)", True),
        ("multipleBirth = 2 and multipleBirth + 1 = 3 and multipleBirth * 2 = 4 and 7 div 2 = 3 and 7 mod 2 = 1", True),
        ("-multipleBirth < 0", True),
        ("extension.value = 2.5", True),
        ("extension.value.toString() = '2.50'", True),
        ("extension('http://x').value > 2", True),
        ("birthDate < @1961-04-02", None),  # different precision: empty
        ("birthDate < @1962", True),
        ("deceased > @2024-02-29T09:00:00Z", True),
        ("deceased = @2024-02-29T09:30:00Z", True),
        ("deceased is dateTime and birthDate is date and multipleBirth is integer", True),
        ("name is HumanName and name.given.first() is string and (name as HumanName).family = 'Garcia'", True),
        ("deceased.ofType(dateTime).exists() and deceased.ofType(boolean).empty()", True),
        ("Patient.name.exists() and Observation.exists().not()", True),
        ("generalPractitioner.resolve().ofType(Practitioner).exists()", True),
        ("generalPractitioner[1].resolve() is Organization", True),
        ("%resource.contained.id = 'pr1' and %rootResource.id = 'p1'", True),
        ("descendants().where($this = 'Elena').exists()", True),
        ("children().count() > 5", True),
        ("birthDate.hasValue() and name.hasValue().not()", True),
        ("name.family.toChars().count() = 6 and 'a,b'.split(',').count() = 2", True),
        ("'1'.toInteger() + 1 = 2 and '1.5'.toDecimal() > 1 and 'x'.convertsToInteger().not()", True),
        ("%ucum = 'http://unitsofmeasure.org'", True),
        ("name.given.trace('given').count() = 2", True),
        ("5 'mg' < 6 'mg'", True),
        ("5 'mg' < 6 'g'", None),
    ],
)
def test_native_fhirpath(expression: str, expected: bool | None) -> None:
    assert evaluate(expression, PATIENT) is expected


def test_native_fhirpath_errors_on_a_collection_where_one_value_is_needed() -> None:
    from fhir_ccm.validation.profiles.values import EvaluationError

    with pytest.raises(EvaluationError):
        evaluate("name.given = 'Maria' or name.given.startsWith('M')", PATIENT)


# --------------------------------------------------------------------------- FHIR functions through a registry


def test_member_of_and_conforms_to_use_the_registry() -> None:
    registry = Registry()
    registry.load_paths([ROOT / "tests" / "validation_corpus" / "profiles"])
    registry.add(
        {
            "resourceType": "StructureDefinition",
            "url": CCM + "ccm-careplan-functions",
            "name": "Functions",
            "status": "draft",
            "kind": "resource",
            "abstract": False,
            "type": "CarePlan",
            "baseDefinition": "http://hl7.org/fhir/StructureDefinition/CarePlan",
            "derivation": "constraint",
            "differential": {
                "element": [
                    {
                        "id": "CarePlan",
                        "path": "CarePlan",
                        "constraint": [
                            {
                                "key": "fn-1",
                                "severity": "error",
                                "human": "Activity codes come from the CCM ValueSet",
                                "expression": "activity.detail.code.all("
                                "memberOf('http://example.org/fhir/ccm/ValueSet/ccm-activity-codes'))",
                            },
                            {
                                "key": "fn-2",
                                "severity": "error",
                                "human": "The subject is a CCM patient",
                                "expression": f"subject.resolve().conformsTo('{CCM}ccm-patient')",
                            },
                        ],
                    }
                ]
            },
        }
    )
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "identifier": [{"system": "urn:x", "value": "1"}],
        "name": [{"family": "Garcia"}],
        "gender": "female",
    }
    care_plan = {
        "resourceType": "CarePlan",
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Plan</div>'},
        "contained": [patient],
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "#p1"},
        "activity": [
            {
                "detail": {
                    "status": "scheduled",
                    "code": {"coding": [{"system": "http://snomed.info/sct", "code": "226234005"}]},
                }
            }
        ],
    }
    url = CCM + "ccm-careplan-functions"
    assert validate(care_plan, [url], registry) == []
    care_plan["activity"][0]["detail"]["code"]["coding"][0]["code"] = "1"
    care_plan["contained"] = [{key: value for key, value in patient.items() if key != "name"}]
    assert sorted(i.diagnostics[:22] for i in validate(care_plan, [url], registry)) == [
        "Constraint fn-1 failed",
        "Constraint fn-2 failed",
    ]


def test_fhirpathpy_gets_the_fhir_functions_through_its_user_function_hook() -> None:
    registry = Registry()
    registry.load_paths([ROOT / "tests" / "validation_corpus" / "profiles"])
    patient = {
        **PATIENT,
        "identifier": [{"value": "1"}],
        "gender": "female",
        "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Maria</div>'},
        "maritalStatus": {"coding": [{"system": "urn:x", "code": "M"}]},
    }
    env = Env(patient, patient, Run(registry))
    item = (patient, "Patient", "Patient")
    cases = {
        "generalPractitioner.resolve().ofType(Practitioner).id = 'pr1'": True,
        "(generalPractitioner[1].resolve() is Organization)": True,
        "birthDate.hasValue() and name.hasValue().not()": True,
        "text.`div`.htmlChecks()": True,
        f"%resource.conformsTo('{CCM}ccm-patient')": True,
        f"%resource.conformsTo('{CCM}ccm-practitioner')": False,
        "gender.memberOf('http://hl7.org/fhir/ValueSet/administrative-gender')": True,
        "maritalStatus.memberOf('http://hl7.org/fhir/ValueSet/administrative-gender')": False,
        "name.given.trace('given', $this).count() = 2": True,
    }
    for expression, expected in cases.items():
        assert compile_fallback(expression)(item, env) is expected, expression
        assert evaluate_boolean(compile_native(expression), item, env) is expected, expression
