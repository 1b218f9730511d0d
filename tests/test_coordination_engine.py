"""The engine's contract: what it refuses, what it produces, determinism, and runs on top of earlier runs."""

from __future__ import annotations

import copy
import json
import random

import pytest
from test_coordination_builders import (
    ASSEMBLER,
    CLOCK,
    assert_valid,
    care_plan,
    counter_ids,
    example_sources,
    medication,
    patient,
    run,
)

from fhir_ccm.coordination import (
    RECONCILIATION_SYSTEM,
    InvalidSource,
    PatientMismatch,
    Previous,
    ReconcileError,
    reconcile,
    unified_identifier,
)

HCTZ = ("310798", "hydrochlorothiazide 25 MG Oral Tablet")
GARCIA = "maria-garcia"


def garcia():
    return reconcile(example_sources(GARCIA), "ccm-garcia", CLOCK, counter_ids(), ASSEMBLER)


def canonical(value):
    return json.dumps(value, sort_keys=True, default=str)


# --- what it refuses --------------------------------------------------------------------------------


def test_a_source_about_another_patient_is_refused():
    with pytest.raises(PatientMismatch, match="Patient/someone-else"):
        run([medication("m", *HCTZ), medication("x", *HCTZ, subject="Patient/someone-else")])


def test_a_source_about_no_patient_is_refused():
    stray = medication("m", *HCTZ)
    del stray["subject"]
    with pytest.raises(PatientMismatch):
        run([stray])


def test_another_patient_resource_is_refused():
    with pytest.raises(PatientMismatch):
        run([patient("p1"), patient("p2")])


def test_refusals_are_value_errors_the_operation_answers_with_422():
    assert issubclass(PatientMismatch, ReconcileError) and issubclass(InvalidSource, ReconcileError)
    assert issubclass(ReconcileError, ValueError)


@pytest.mark.parametrize("source", [{"resourceType": "Goal"}, {"id": "x"}, "not a resource"])
def test_a_source_that_cannot_be_cited_is_refused(source):
    with pytest.raises(InvalidSource):
        run([source])


@pytest.mark.parametrize("clock", ["2026-01-15", "2026-01-15T09:30:00", "yesterday"])
def test_the_clock_must_be_an_instant(clock):
    with pytest.raises(ValueError, match="instant"):
        reconcile([], "p1", clock, counter_ids(), ASSEMBLER)


def test_the_assembler_must_be_a_device_or_an_organization():
    with pytest.raises(ValueError, match="assembler"):
        reconcile([], "p1", CLOCK, counter_ids(), {"reference": "Practitioner/x"})


@pytest.mark.parametrize("given", ["ccm-garcia", "Patient/ccm-garcia", {"resourceType": "Patient", "id": "ccm-garcia"}])
def test_the_patient_is_an_id_a_reference_or_the_resource(given):
    result = reconcile(example_sources(GARCIA), given, CLOCK, counter_ids(), ASSEMBLER)
    assert result.care_plan["subject"]["reference"] == "Patient/ccm-garcia"


# --- what it produces -------------------------------------------------------------------------------


def test_the_bundle_is_a_collection_of_one_plan_one_list_one_team_issues_and_three_provenances():
    bundle = garcia().bundle()
    assert (bundle["type"], bundle["timestamp"], bundle["id"]) == ("collection", CLOCK, "bundle-1")
    types = [entry["resource"]["resourceType"] for entry in bundle["entry"]]
    assert types[:3] == ["CarePlan", "List", "CareTeam"]
    assert types[3:] == ["DetectedIssue"] * (len(types) - 6) + ["Provenance"] * 3


def test_the_unified_care_plan():
    plan = garcia().care_plan
    assert (plan["status"], plan["intent"], plan["text"]["status"]) == ("active", "plan", "generated")
    assert plan["category"][0]["coding"][0]["code"] == "assess-plan"
    assert plan["subject"] == {"reference": "Patient/ccm-garcia", "display": "María Elena García"}
    assert [b["reference"] for b in plan["basedOn"]] == [
        "CarePlan/ccm-garcia-careplan-endocrinology",
        "CarePlan/ccm-garcia-careplan-nephrology",
        "CarePlan/ccm-garcia-careplan-primary-care",
    ]
    assert plan["careTeam"] == [{"reference": "CareTeam/careteam-1"}]
    assert all(set(activity) == {"reference"} for activity in plan["activity"])
    assert plan["identifier"] == [unified_identifier("Patient/ccm-garcia", "CarePlan")]


def test_only_active_and_on_hold_plans_are_sources_and_inline_activities_are_not_carried():
    result = run(
        [
            care_plan("active", activities=["ServiceRequest/a"]),
            care_plan("held", status="on-hold", activities=["ServiceRequest/b", "ServiceRequest/a"]),
            care_plan("done", status="completed", activities=["ServiceRequest/c"]),
            {**care_plan("inline"), "activity": [{"detail": {"kind": "Task", "status": "scheduled"}}]},
        ]
    )
    plan = result.care_plan
    assert [b["reference"] for b in plan["basedOn"]] == ["CarePlan/active", "CarePlan/held", "CarePlan/inline"]
    assert plan["activity"] == [
        {"reference": {"reference": "ServiceRequest/a"}},
        {"reference": {"reference": "ServiceRequest/b"}},
    ]
    assert "1 activities described inline" in plan["text"]["div"]


def test_the_medication_list():
    medications = garcia().medication_list
    assert (medications["status"], medications["mode"], medications["date"]) == ("current", "snapshot", CLOCK)
    assert medications["code"]["coding"][0] == {
        "system": "http://loinc.org",
        "code": "10160-0",
        "display": "History of Medication use Narrative",
    }
    assert all(
        e["item"]["reference"].startswith(("MedicationStatement/", "MedicationRequest/")) for e in medications["entry"]
    )


def test_an_empty_reconciliation_is_still_valid():
    result = run([patient()])
    assert result.medication_list["emptyReason"]["coding"][0]["code"] == "nilknown"
    assert result.conflicts == ()
    assert_valid(result)


def test_detected_issues():
    issues = {issue["detail"].split(":")[0]: issue for issue in garcia().detected_issues}
    metformin = issues["metformin"]
    assert (metformin["status"], metformin["severity"], metformin["patient"]["reference"]) == (
        "preliminary",
        "moderate",
        "Patient/ccm-garcia",
    )
    assert metformin["code"]["coding"] == [
        {"system": "http://fhir-ccm.org/CodeSystem/conflict-type", "code": "dose-conflict", "display": "Dose conflict"},
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "DOSE", "display": "Dosage problem"},
    ]
    assert [ref["reference"] for ref in metformin["implicated"]] == [
        "MedicationRequest/ccm-garcia-medreq-endocrinology-metformin",
        "MedicationStatement/ccm-garcia-medstmt-endocrinology-metformin",
        "MedicationStatement/ccm-garcia-medstmt-nephrology-metformin",
        "MedicationStatement/ccm-garcia-medstmt-primary-care-metformin",
    ]
    for source, date in (("primary-care-metformin", "2025-01-15"), ("endocrinology-metformin", "2025-03-04")):
        assert f"MedicationStatement/ccm-garcia-medstmt-{source} (" in metformin["detail"]
        assert date in metformin["detail"]
    assert metformin["author"] == ASSEMBLER
    assert metformin["identifier"][0]["system"] == RECONCILIATION_SYSTEM


def test_provenance_of_each_unified_resource():
    result = garcia()
    targets = [p["target"][0]["reference"] for p in result.provenances]
    assert targets == ["CarePlan/careplan-1", "List/list-1", "CareTeam/careteam-1"]
    for provenance in result.provenances:
        assert provenance["recorded"] == CLOCK
        (agent,) = provenance["agent"]
        assert agent["who"] == ASSEMBLER and agent["type"]["coding"][0]["code"] == "assembler"
        assert {entity["role"] for entity in provenance["entity"]} == {"source"}
    list_sources = {e["what"]["reference"] for e in result.provenances[1]["entity"]}
    assert len(list_sources) == 10 and "MedicationRequest/ccm-garcia-medreq-endocrinology-metformin" in list_sources
    team_sources = {e["what"]["reference"] for e in result.provenances[2]["entity"]}
    assert "CareTeam/ccm-garcia-careteam-nephrology" in team_sources and "Practitioner/ccm-prac-desai" in team_sources


def test_on_behalf_of_is_given_to_a_device_agent():
    organization = {"reference": "Organization/operator"}
    result = reconcile([], "p1", CLOCK, counter_ids(), ASSEMBLER, on_behalf_of=organization)
    assert all(p["agent"][0]["onBehalfOf"] == organization for p in result.provenances)


def test_an_organization_assembler_is_no_issue_author():
    organization = {"reference": "Organization/operator"}
    result = reconcile(example_sources(GARCIA), "ccm-garcia", CLOCK, counter_ids(), organization)
    assert all("author" not in issue for issue in result.detected_issues)
    assert result.provenances[0]["agent"][0]["who"] == organization


def test_bundle_entries_get_full_urls_from_a_base():
    bundle = garcia().bundle("http://example.org/fhir/")
    assert bundle["entry"][0]["fullUrl"] == "http://example.org/fhir/CarePlan/careplan-1"


@pytest.mark.parametrize("folder", ["maria-garcia", "robert-johnson", "linda-thompson", "james-washington"])
def test_every_output_is_valid_fhir(folder):
    assert_valid(reconcile(example_sources(folder), f"ccm-{folder.split('-')[1]}", CLOCK, counter_ids(), ASSEMBLER))


# --- determinism ------------------------------------------------------------------------------------


def test_any_input_order_gives_the_same_bundle():
    sources = example_sources("robert-johnson")
    expected = canonical(reconcile(sources, "ccm-johnson", CLOCK, counter_ids(), ASSEMBLER).bundle())
    shuffler = random.Random(20260115)
    for _ in range(5):
        shuffled = sources[:]
        shuffler.shuffle(shuffled)
        assert canonical(reconcile(shuffled, "ccm-johnson", CLOCK, counter_ids(), ASSEMBLER).bundle()) == expected


def test_ids_come_only_from_the_generator():
    asked = []

    def new_id(resource_type):
        asked.append(resource_type)
        return f"id{len(asked)}"

    result = reconcile(example_sources(GARCIA), "ccm-garcia", CLOCK, new_id, ASSEMBLER)
    issues = len(result.detected_issues)
    assert asked == ["CarePlan", "List", "CareTeam", *["DetectedIssue"] * issues, *["Provenance"] * 3, "Bundle"]


def test_float_and_decimal_numbers_give_the_same_output():
    sources = example_sources("james-washington")
    as_floats = json.loads(json.dumps(sources, default=float))
    first = reconcile(sources, "ccm-washington", CLOCK, counter_ids(), ASSEMBLER).bundle()
    second = reconcile(as_floats, "ccm-washington", CLOCK, counter_ids(), ASSEMBLER).bundle()
    assert canonical(first) == canonical(second)


def test_the_newest_copy_of_a_source_given_twice_counts():
    old = {**medication("m", *HCTZ), "meta": {"versionId": "1"}}
    new = {**medication("m", *HCTZ, status="stopped"), "meta": {"versionId": "2"}}
    other = medication("n", *HCTZ)
    for order in ([old, new, other], [new, old, other]):
        (conflict,) = run(order).conflicts
        assert [s.versioned for s in conflict.implicated] == [
            "MedicationStatement/m/_history/2",
            "MedicationStatement/n",
        ]


# --- on top of earlier runs -------------------------------------------------------------------------


def versioned(sources, version="1"):
    return [{**copy.deepcopy(s), "meta": {"versionId": version}} for s in sources]


def test_a_later_run_reuses_the_unified_ids():
    first = garcia()
    previous = Previous.from_resources(first.resources(), "ccm-garcia")
    assert previous.care_plan is first.care_plan and len(previous.detected_issues) == len(first.detected_issues)
    second = reconcile(example_sources(GARCIA), "ccm-garcia", CLOCK, lambda t: f"new-{t}", ASSEMBLER, previous)
    assert (second.care_plan["id"], second.medication_list["id"], second.care_team["id"]) == (
        "careplan-1",
        "list-1",
        "careteam-1",
    )
    assert [i["id"] for i in second.detected_issues] == [i["id"] for i in first.detected_issues]
    assert second.provenances[0]["activity"]["coding"][0]["code"] == "UPDATE"
    assert second.withdrawn_issues == ()


def resolve(issue):
    return {
        **issue,
        "status": "final",
        "mitigation": [{"action": {"text": "Reviewed with the patient"}, "date": "2026-01-20"}],
    }


def test_a_resolved_issue_stays_resolved_while_its_sources_are_unchanged():
    sources = versioned([medication("a", *HCTZ), medication("b", *HCTZ, status="stopped")])
    first = run(sources)
    resolved = resolve(first.detected_issues[0])
    again = run(sources, previous=Previous(detected_issues=(resolved,)))
    assert again.detected_issues == (resolved,)


def test_a_resolved_issue_opens_again_when_a_source_changes():
    sources = versioned([medication("a", *HCTZ), medication("b", *HCTZ, status="stopped")])
    resolved = resolve(run(sources).detected_issues[0])
    changed = [sources[0], {**sources[1], "meta": {"versionId": "2"}}]
    (issue,) = run(changed, previous=Previous(detected_issues=(resolved,))).detected_issues
    assert (issue["id"], issue["status"], "mitigation" in issue) == (resolved["id"], "preliminary", False)
    assert {"reference": "MedicationStatement/b/_history/2"} in issue["implicated"]


def test_an_open_issue_keeps_its_first_identification_date():
    sources = [medication("a", *HCTZ), medication("b", *HCTZ, status="stopped")]
    earlier = {**run(sources).detected_issues[0], "identifiedDateTime": "2025-12-01T08:00:00Z"}
    (issue,) = run(sources, previous=Previous(detected_issues=(earlier,))).detected_issues
    assert issue["identifiedDateTime"] == "2025-12-01T08:00:00Z"


def test_an_open_issue_no_longer_found_is_withdrawn():
    earlier = run([medication("a", *HCTZ), medication("b", *HCTZ, status="stopped")]).detected_issues[0]
    result = run([medication("a", *HCTZ)], previous=Previous(detected_issues=(earlier,)))
    assert result.detected_issues == ()
    assert [(i["id"], i["status"]) for i in result.withdrawn_issues] == [(earlier["id"], "cancelled")]


def test_previous_from_resources_keeps_only_this_patients_reconciliation_resources():
    first = garcia()
    stranger = {**first.care_plan, "identifier": [unified_identifier("Patient/other", "CarePlan")]}
    other_issue = {**first.detected_issues[0], "patient": {"reference": "Patient/other"}}
    previous = Previous.from_resources([stranger, other_issue, *first.resources()[1:]], "ccm-garcia")
    assert previous.care_plan is None and previous.medication_list is first.medication_list
    assert len(previous.detected_issues) == len(first.detected_issues)


def test_bundle_entries_have_no_full_url_without_a_base():
    assert all(set(entry) == {"resource"} for entry in garcia().bundle()["entry"])


def test_an_earlier_runs_output_is_never_a_source():
    first = garcia()
    again = reconcile([*example_sources(GARCIA), *first.resources()], "ccm-garcia", CLOCK, counter_ids(), ASSEMBLER)
    assert canonical(again.bundle()) == canonical(first.bundle())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dosage": {"text": "not an array"}}, "dosage must be an array"),
        ({"dosage": [{"route": "oral"}]}, r"dosage\[0\].route must be an object"),
        ({"medicationCodeableConcept": {"coding": [{"code": 314076}]}}, r"coding\[0\].code must be a string"),
        ({"informationSource": ["Practitioner/x"]}, "informationSource must be an object"),
    ],
)
def test_a_source_the_engine_cannot_read_is_refused_naming_the_element(change, message):
    with pytest.raises(InvalidSource, match=message):
        run([{**medication("m", *HCTZ), **change}])
