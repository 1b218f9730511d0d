"""One test per rule the validator implements, asserting the exact issues with their messages."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fhir_ccm.validation.profiles import Registry, validate

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "validation_corpus"
CCM = "http://example.org/fhir/ccm/StructureDefinition/"
LOINC = "http://loinc.org"
XHTML = '<div xmlns="http://www.w3.org/1999/xhtml">'


@pytest.fixture(scope="module")
def registry() -> Registry:
    registry = Registry()
    registry.load_paths([CORPUS / "profiles"])
    return registry


def example(name: str) -> dict[str, Any]:
    folder = "maria-garcia"
    return json.loads((ROOT / "examples" / folder / name).read_text(), parse_float=Decimal)


def care_plan(**changes: Any) -> dict[str, Any]:
    resource = example("CarePlan-ccm-garcia-careplan-primary-care.json")
    resource.pop("meta", None)  # it claims the repository's profile, which these tests do not load
    resource.update(copy.deepcopy(changes))
    return resource


def found(resource: dict[str, Any], profiles: list[str], registry: Registry) -> list[tuple[str, str, str, str]]:
    """(severity, code, expression, message) of every issue but the narrative warning."""
    return [
        (issue.severity, issue.code, issue.expression[0], issue.diagnostics)
        for issue in validate(resource, profiles, registry)
        if not issue.diagnostics.startswith("Constraint dom-6")
    ]


# --------------------------------------------------------------------------- slicing


def test_care_plan_category_sliced_by_pattern(registry: Registry) -> None:
    assess = care_plan()["category"][0]
    profile = [CCM + "ccm-careplan"]
    assert found(care_plan(category=[{"text": "Diabetes"}, assess]), profile, registry) == []
    assert found(care_plan(category=[{"text": "Diabetes"}]), profile, registry) == [
        ("error", "required", "CarePlan.category", "The slice 'assess' needs at least 1 value(s), found 0")
    ]
    assert found(care_plan(category=[assess, assess]), profile, registry) == [
        ("error", "structure", "CarePlan.category", "The slice 'assess' allows at most 1 value(s), found 2")
    ]


def test_extension_slicing_by_url_validates_each_extension_against_its_definition(registry: Registry) -> None:
    episode = {"url": CCM + "ccm-episode", "valueReference": {"reference": "EpisodeOfCare/e1"}}
    review = {
        "url": CCM + "ccm-review",
        "extension": [{"url": "reviewer", "valueReference": {"reference": "Practitioner/x"}}],
    }
    profile = [CCM + "ccm-careplan"]
    assert found(care_plan(extension=[episode, review]), profile, registry) == []
    wrong = care_plan(
        extension=[
            {**episode, "valueReference": {"reference": "Encounter/e1"}},
            {"url": CCM + "ccm-review", "extension": [{"url": "reviewer", "valueString": "Dr. Who"}]},
        ]
    )
    assert found(wrong, profile, registry) == [
        (
            "error",
            "structure",
            "CarePlan.extension[0].valueReference.reference",
            "A reference to an Encounter is not allowed here by the profile; it must be to EpisodeOfCare",
        ),
        (
            "error",
            "structure",
            "CarePlan.extension[1].extension[0].valueString",
            "The type string is not allowed here by the profile (allowed: Reference)",
        ),
    ]


def blood_pressure() -> dict[str, Any]:
    return json.loads(
        (CORPUS / "slicing-component-code" / "valid-blood-pressure.json").read_text(), parse_float=Decimal
    )


def test_observation_component_sliced_by_code_pattern(registry: Registry) -> None:
    profile = [CCM + "ccm-blood-pressure"]
    assert found(blood_pressure(), profile, registry) == []
    swapped = blood_pressure()
    swapped["component"].reverse()  # the slicing is not ordered
    assert found(swapped, profile, registry) == []
    kpa = blood_pressure()
    kpa["component"][1]["valueQuantity"]["code"] = "kPa"
    assert found(kpa, profile, registry) == [
        (
            "error",
            "value",
            "Observation.component[1].valueQuantity.code",
            'The value must be exactly "mm[Hg]" (fixed by the profile)',
        )
    ]


def test_closed_slicing_refuses_values_of_no_slice(registry: Registry) -> None:
    extra = blood_pressure()
    extra["component"].append({"code": {"coding": [{"system": LOINC, "code": "8478-0"}]}})
    assert found(extra, [CCM + "ccm-blood-pressure"], registry) == [
        (
            "error",
            "structure",
            "Observation.component[2]",
            "The value matches no slice of Observation.component, and the slicing is closed",
        )
    ]


def test_ordered_slicing(registry: Registry) -> None:
    patient = json.loads((CORPUS / "slicing-ordered" / "invalid-patient.json").read_text())
    assert found(patient, [CCM + "ccm-patient"], registry) == [
        (
            "error",
            "structure",
            "Patient.identifier[1]",
            "The slices of Patient.identifier must appear in the order the profile defines",
        )
    ]
    patient["identifier"].reverse()
    assert found(patient, [CCM + "ccm-patient"], registry) == []


# --------------------------------------------------------------------------- values and types


def test_fixed_and_pattern_values(registry: Registry) -> None:
    profile = [CCM + "ccm-careplan"]
    assert found(care_plan(intent="order"), profile, registry) == [
        ("error", "value", "CarePlan.intent", 'The value must be exactly "plan" (fixed by the profile)')
    ]
    loinc_with_extra_coding = blood_pressure()
    loinc_with_extra_coding["code"]["coding"].append({"system": "http://snomed.info/sct", "code": "75367002"})
    assert found(loinc_with_extra_coding, [CCM + "ccm-blood-pressure"], registry) == []  # a pattern is a subset
    other = blood_pressure()
    other["code"] = {"coding": [{"system": LOINC, "code": "55284-4"}]}
    [(severity, code, expression, message)] = found(other, [CCM + "ccm-blood-pressure"], registry)
    assert (severity, code, expression) == ("error", "value", "Observation.code")
    assert message.startswith("The value must match the pattern")


def test_target_profile_narrowing(registry: Registry) -> None:
    profile = [CCM + "ccm-careplan"]
    assert found(care_plan(author={"reference": "Organization/o1"}), profile, registry) == [
        (
            "error",
            "structure",
            "CarePlan.author.reference",
            "A reference to an Organization is not allowed here by the profile; it must be to Practitioner",
        )
    ]
    patient = {"resourceType": "Patient", "id": "p1", "gender": "female"}  # no identifier, no name
    contained = care_plan(contained=[patient], subject={"reference": "#p1"})
    assert found(contained, profile, registry) == [
        (
            "error",
            "structure",
            "CarePlan.subject.reference",
            f"The referenced resource does not conform to {CCM}ccm-patient",
        )
    ]
    patient.update(identifier=[{"value": "1"}], name=[{"family": "Garcia"}])
    assert found(care_plan(contained=[patient], subject={"reference": "#p1"}), profile, registry) == []


def test_base_reference_target_types() -> None:
    assert found(care_plan(subject={"reference": "Practitioner/x"}), [], Registry()) == [
        (
            "error",
            "structure",
            "CarePlan.subject.reference",
            "A reference to a Practitioner is not allowed here; it must be to Group or Patient",
        )
    ]


# --------------------------------------------------------------------------- invariants


def test_cpl_3() -> None:
    activity = {"reference": {"reference": "ServiceRequest/s1"}, "detail": {"status": "scheduled"}}
    assert found(care_plan(activity=[activity]), [], Registry()) == [
        (
            "error",
            "invariant",
            "CarePlan.activity[0]",
            "Constraint cpl-3 failed: Provide a reference or detail, not both",
        )
    ]


def test_dom_3() -> None:
    goal = {"resourceType": "Goal", "id": "g1", "lifecycleStatus": "active", "description": {"text": "x"}}
    goal["subject"] = {"reference": "Patient/p1"}
    [(severity, code, expression, message)] = found(care_plan(contained=[goal]), [], Registry())
    assert (severity, code, expression) == ("error", "invariant", "CarePlan.contained[0]")
    assert message.startswith("Constraint dom-3 failed")
    assert found(care_plan(contained=[goal], goal=[{"reference": "#g1"}]), [], Registry()) == []


def test_ref_1() -> None:
    assert found(care_plan(goal=[{"reference": "#nowhere"}]), [], Registry()) == [
        (
            "error",
            "invariant",
            "CarePlan.goal[0]",
            "Constraint ref-1 failed: SHALL have a contained resource if a local reference is provided",
        )
    ]


def test_ele_1() -> None:
    message = "Constraint ele-1 failed: All FHIR elements must have a @value or children"
    resource = care_plan(period={}, _title={"id": "t"})
    del resource["title"]  # an id alone is no value
    assert found(resource, [], Registry()) == [
        ("error", "invariant", "CarePlan.period", message),
        ("error", "invariant", "CarePlan.title", message),
    ]


def test_invariants_of_datatypes_deep_in_a_resource() -> None:
    resource = care_plan()
    resource["activity"][1]["detail"]["scheduledTiming"]["repeat"]["periodMax"] = 2
    del resource["activity"][1]["detail"]["scheduledTiming"]["repeat"]["period"]
    resource["activity"][1]["detail"]["scheduledTiming"]["repeat"]["periodUnit"] = "mo"
    assert found(resource, [], Registry()) == [
        (
            "error",
            "invariant",
            "CarePlan.activity[1].detail.scheduledTiming.repeat",
            "Constraint tim-6 failed: If there's a periodMax, there must be a period",
        )
    ]


# --------------------------------------------------------------------------- narrative


@pytest.mark.parametrize(
    ("div", "message"),
    [
        (
            XHTML + "<p>ok</p><script>alert(1)</script></div>",
            "Constraint txt-1 failed: Scripts are not allowed in the narrative",
        ),
        (
            XHTML + '<p onmouseover="x()">ok</p></div>',
            "Constraint txt-1 failed: The event attribute 'onmouseover' on <p> is not allowed in the narrative",
        ),
        (
            XHTML + '<a href=" JavaScript:x()">ok</a></div>',
            "Constraint txt-1 failed: The href of <a> must not be a script URL",
        ),
        (
            XHTML + "<form><input/></form>ok</div>",
            "Constraint txt-1 failed: The element <form> is not allowed in the narrative",
        ),
        (
            XHTML + '<p xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="x">ok</p></div>',
            "Constraint txt-1 failed: The namespaced attribute {http://www.w3.org/1999/xlink}href on <p> is not "
            "allowed in the narrative",
        ),
        (
            "<div>ok</div>",
            "Constraint txt-1 failed: The narrative must be a <div> in the XHTML namespace http://www.w3.org/1999/xhtml",
        ),
        (XHTML + " </div>", "Constraint txt-2 failed: The narrative must have some non-whitespace content"),
        (
            '<!DOCTYPE div><div xmlns="http://www.w3.org/1999/xhtml">x</div>',
            "The narrative must not contain a DOCTYPE or entity declarations",
        ),
    ],
)
def test_narrative_rules(div: str, message: str) -> None:
    issues = found(care_plan(text={"status": "generated", "div": div}), [], Registry())
    assert [(i[1], i[2], i[3]) for i in issues if i[3] == message] == [
        ("value" if message.startswith("The narrative must not") else "invariant", "CarePlan.text.div", message)
    ]


def test_a_rich_narrative_is_fine() -> None:
    div = (
        XHTML + '<h2 id="t">Plan</h2><table class="grid" style="width:100%"><tbody><tr><td colspan="2">A &amp; B'
        '</td></tr></tbody></table><ul><li><b>x</b> <i>y</i> <span lang="es">z</span></li></ul><img src="#i" alt="i"/>'
        '<a href="https://example.org/plan">more</a><br/></div>'
    )
    assert found(care_plan(text={"status": "generated", "div": div}), [], Registry()) == []
