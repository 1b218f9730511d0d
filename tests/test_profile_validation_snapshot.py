"""Snapshot generation from a differential (profiling.html#snapshot)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhir_ccm.definitions import structure_definitions
from fhir_ccm.validation.profiles import Registry, SnapshotError, generate_snapshot, validate

CORPUS = Path(__file__).resolve().parent / "validation_corpus"
CCM = "http://example.org/fhir/ccm/StructureDefinition/"
CORE = "http://hl7.org/fhir/StructureDefinition/"


def definition(name: str) -> dict[str, Any]:
    return json.loads((CORPUS / "profiles" / f"StructureDefinition-{name}.json").read_text())


def lookup(url: str) -> dict[str, Any] | None:
    return structure_definitions().get(url)


def snapshot(sd: dict[str, Any], find: Any = lookup) -> dict[str, dict[str, Any]]:
    return {element["id"]: element for element in generate_snapshot(sd, find)["snapshot"]["element"]}


def test_unchanged_elements_come_from_the_base_and_changed_ones_merge_the_differential() -> None:
    elements = snapshot(definition("ccm-careplan"))
    base = {e["id"]: e for e in structure_definitions()[CORE + "CarePlan"]["snapshot"]["element"]}
    assert elements["CarePlan.status"] == base["CarePlan.status"]
    assert elements["CarePlan.title"]["min"] == 1 and elements["CarePlan.title"]["mustSupport"] is True
    assert elements["CarePlan.title"]["max"] == "1" and elements["CarePlan.title"]["type"] == [{"code": "string"}]
    assert elements["CarePlan.intent"]["fixedCode"] == "plan"
    assert [c["key"] for c in elements["CarePlan"]["constraint"]] == [
        "dom-2",
        "dom-3",
        "dom-4",
        "dom-5",
        "dom-6",
        "ccm-1",
    ]
    assert elements["CarePlan.subject"]["type"] == [{"code": "Reference", "targetProfile": [CCM + "ccm-patient"]}]
    assert set(base) <= set(elements)


def test_slices_follow_the_sliced_element_in_order() -> None:
    ids = list(snapshot(definition("ccm-careplan")))
    at = ids.index("CarePlan.category")
    assert ids[at : at + 2] == ["CarePlan.category", "CarePlan.category:assess"]
    at = ids.index("CarePlan.extension")
    assert ids[at : at + 3] == ["CarePlan.extension", "CarePlan.extension:episode", "CarePlan.extension:review"]
    elements = snapshot(definition("ccm-careplan"))
    assert elements["CarePlan.category:assess"]["sliceName"] == "assess"
    assert elements["CarePlan.category:assess"]["patternCodeableConcept"]["coding"][0]["code"] == "assess-plan"
    assert "slicing" not in elements["CarePlan.category:assess"]


def test_extensions_get_the_standard_slicing_by_url() -> None:
    sd = definition("ccm-careplan")
    sd["differential"]["element"] = [e for e in sd["differential"]["element"] if e["id"] != "CarePlan.extension"]
    elements = snapshot(sd)
    assert elements["CarePlan.extension"]["slicing"] == {
        "discriminator": [{"type": "value", "path": "url"}],
        "rules": "open",
    }


def test_datatype_children_are_unfolded_below_a_slice() -> None:
    ids = list(snapshot(definition("ccm-patient")))
    at = ids.index("Patient.identifier:mrn")
    assert ids[at : at + 8] == [
        "Patient.identifier:mrn",
        "Patient.identifier:mrn.id",
        "Patient.identifier:mrn.extension",
        "Patient.identifier:mrn.use",
        "Patient.identifier:mrn.type",
        "Patient.identifier:mrn.system",
        "Patient.identifier:mrn.value",
        "Patient.identifier:mrn.period",
    ]
    system = snapshot(definition("ccm-patient"))["Patient.identifier:mrn.system"]
    assert system["path"] == "Patient.identifier.system"
    assert system["fixedUri"] == "urn:oid:2.16.840.1.113883.19.5" and system["min"] == 1


def test_backbone_slices_copy_their_children_and_renamed_choices_narrow_the_type() -> None:
    elements = snapshot(definition("ccm-blood-pressure"))
    value = elements["Observation.component:systolic.value[x]"]
    assert value["type"] == [{"code": "Quantity"}] and value["min"] == 1
    assert elements["Observation.component:systolic.value[x].code"]["fixedCode"] == "mm[Hg]"
    assert elements["Observation.component:diastolic.code"]["patternCodeableConcept"]["coding"][0]["code"] == "8462-4"
    assert elements["Observation.component:diastolic.interpretation"]["path"] == "Observation.component.interpretation"
    assert elements["Observation.value[x]"]["max"] == "0"


def test_complex_extension_parts() -> None:
    elements = snapshot(definition("ccm-review"))
    assert elements["Extension.extension:reviewer.url"]["fixedUri"] == "reviewer"
    assert elements["Extension.extension:reviewer.value[x]"]["type"][0]["code"] == "Reference"
    assert elements["Extension.extension:date.value[x]"]["type"] == [{"code": "date"}]
    assert elements["Extension.extension:date.extension"]["max"] == "0"
    assert elements["Extension.value[x]"]["max"] == "0"


def test_elements_without_ids_follow_the_slice_before_them() -> None:
    sd = definition("ccm-patient")
    sd["differential"]["element"] = [{k: v for k, v in e.items() if k != "id"} for e in sd["differential"]["element"]]
    elements = snapshot(sd)
    assert elements["Patient.identifier:ssn.system"]["fixedUri"] == "http://hl7.org/fhir/sid/us-ssn"
    assert elements["Patient.identifier:mrn.system"]["fixedUri"] == "urn:oid:2.16.840.1.113883.19.5"


def test_every_element_follows_its_parent() -> None:
    for name in ("ccm-careplan", "ccm-patient", "ccm-blood-pressure", "ccm-review", "ccm-practitioner"):
        seen: set[str] = set()
        for element_id in snapshot(definition(name)):
            parent = element_id.rpartition(".")[0]
            assert not parent or parent in seen, (name, element_id)
            seen.add(element_id)


def test_a_profile_on_a_profile_uses_the_generated_base() -> None:
    registry = Registry()
    registry.load_paths([CORPUS / "profiles"])
    derived = definition("ccm-careplan-closed")
    derived.update(url=CCM + "ccm-careplan-derived", baseDefinition=CCM + "ccm-careplan")
    derived["differential"]["element"] = [
        {"id": "CarePlan.description", "path": "CarePlan.description", "min": 1},
    ]
    registry.add(derived)
    elements = {e["id"]: e for e in registry.structure_definition(CCM + "ccm-careplan-derived")["snapshot"]["element"]}
    assert elements["CarePlan.title"]["min"] == 1  # from ccm-careplan
    assert elements["CarePlan.description"]["min"] == 1
    care_plan = json.loads((CORPUS / "profile-cardinality" / "valid-careplan.json").read_text())
    assert [(i.code, i.expression) for i in validate(care_plan, [CCM + "ccm-careplan-derived"], registry)] == [
        ("invariant", ("CarePlan",)),  # dom-6: the corpus file has no narrative
        ("required", ("CarePlan.description",)),
    ]


def test_a_snapshot_is_generated_when_the_definition_is_added() -> None:
    registry = Registry([definition("ccm-episode")])
    assert "snapshot" in registry.structure_definition(CCM + "ccm-episode")
    assert registry.problems == {}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"baseDefinition": CORE + "Nothing"}, "is not known"),
        ({"differential": {"element": []}}, "neither a snapshot nor a differential"),
        ({"differential": {"element": [{"id": "CarePlan.nothing", "path": "CarePlan.nothing"}]}}, "not an element"),
        (
            {
                "differential": {
                    "element": [{"id": "CarePlan.category:a/b", "path": "CarePlan.category", "sliceName": "a/b"}]
                }
            },
            "reslicing",
        ),
    ],
)
def test_impossible_snapshots_say_why(change: dict[str, Any], message: str) -> None:
    with pytest.raises(SnapshotError, match=message):
        generate_snapshot({**definition("ccm-careplan"), **change}, lookup)
    registry = Registry([{**definition("ccm-careplan"), **change}])
    assert registry.profile(CCM + "ccm-careplan") is None
    assert message in (registry.problem(CCM + "ccm-careplan") or "")


def test_the_snapshot_fixture_matches_what_the_generator_makes() -> None:
    """``ccm-goal`` is stored as a snapshot only; regenerating it from its differential gives the same elements."""
    stored = definition("ccm-goal")
    assert "differential" not in stored
    differential = [
        {"id": "Goal", "path": "Goal", "constraint": stored["snapshot"]["element"][0]["constraint"][-1:]},
        {"id": "Goal.description.text", "path": "Goal.description.text", "min": 1},
        {"id": "Goal.target", "path": "Goal.target", "min": 1, "max": "1", "mustSupport": True},
        {"id": "Goal.target.measure", "path": "Goal.target.measure", "min": 1, "mustSupport": True},
        {"id": "Goal.target.due[x]", "path": "Goal.target.due[x]", "type": [{"code": "date"}]},
    ]
    generated = generate_snapshot({**stored, "differential": {"element": differential}}, lookup)
    assert generated["snapshot"] == stored["snapshot"]
