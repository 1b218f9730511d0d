"""M1-M7: each medication rule, on the smallest sources that show it."""

from __future__ import annotations

from itertools import combinations

import pytest
from test_coordination_builders import assert_valid, medication, patient, run

from fhir_ccm.coordination.medication_rules import RULES

LISINOPRIL_10 = ("314076", "lisinopril 10 MG Oral Tablet")
ZESTRIL_10 = ("104377", "lisinopril 10 MG Oral Tablet [Zestril]")
METFORMIN_500 = ("861007", "metformin hydrochloride 500 MG Oral Tablet")
METFORMIN_ER_500 = ("860975", "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet")
FUROSEMIDE_20 = ("310429", "furosemide 20 MG Oral Tablet")
HCTZ_25 = ("310798", "hydrochlorothiazide 25 MG Oral Tablet")
LOSARTAN_50 = ("979492", "losartan potassium 50 MG Oral Tablet")
LOSARTAN_HCTZ = ("979468", "hydrochlorothiazide 12.5 MG / losartan potassium 50 MG Oral Tablet")
SEMAGLUTIDE_ORAL = ("2200656", "semaglutide 7 MG Oral Tablet")
SEMAGLUTIDE_PEN = ("1991316", "1 MG Dose 1.5 ML semaglutide 1.34 MG/ML Pen Injector")
SUBCUTANEOUS = {"coding": [{"system": "http://snomed.info/sct", "code": "34206005", "display": "Subcutaneous route"}]}
TRAZODONE_50 = ("856377", "trazodone hydrochloride 50 MG Oral Tablet")
MIRTAZAPINE_15 = ("311725", "mirtazapine 15 MG Oral Tablet")
ATORVASTATIN_40 = ("617311", "atorvastatin 40 MG Oral Tablet")
SIMVASTATIN_20 = ("312961", "simvastatin 20 MG Oral Tablet")


def found(reconciliation):
    """(rule, implicated ids) of every conflict."""
    return {(c.rule, tuple(key.split("/")[1] for key in c.keys)) for c in reconciliation.conflicts}


def entries(reconciliation):
    return [
        (entry["item"]["reference"].split("/")[1], entry.get("flag", {}).get("text"))
        for entry in reconciliation.medication_list["entry"]
    ]


# --- M1 ---------------------------------------------------------------------------------------------


def test_m1_brand_and_generic_of_one_product_are_one_entry_without_issue():
    result = run(
        [
            patient(),
            medication("generic", *LISINOPRIL_10, date="2025-01-15"),
            medication("brand", *ZESTRIL_10, date="2025-02-20"),
            medication("order", *LISINOPRIL_10, request=True, dose=(10, "mg"), date="2025-02-01"),
        ]
    )
    assert result.conflicts == ()
    assert entries(result) == [("brand", None)]
    assert_valid(result)


def test_m1_the_list_cites_the_most_recent_source_and_provenance_all_of_them():
    result = run([medication("old", *LISINOPRIL_10, date="2024-05-01"), medication("new", *ZESTRIL_10)])
    assert entries(result) == [("new", None)]
    list_provenance = result.provenances[1]
    assert [e["what"]["reference"] for e in list_provenance["entity"]] == [
        "MedicationStatement/new",
        "MedicationStatement/old",
    ]


def test_m1_a_request_that_is_only_a_proposal_is_not_a_source():
    result = run(
        [
            medication("taken", *LISINOPRIL_10),
            medication("idea", *LISINOPRIL_10, request=True, intent="proposal", dose=(20, "mg")),
        ]
    )
    assert result.conflicts == ()
    assert [e["what"]["reference"] for e in result.provenances[1]["entity"]] == ["MedicationStatement/taken"]


# --- M2 ---------------------------------------------------------------------------------------------


def test_m2_a_different_total_daily_dose_is_a_dose_conflict():
    result = run(
        [
            medication("pcp", *METFORMIN_500, dose=(500, "mg"), per=(2, 1, "d")),
            medication("endo", *METFORMIN_500, dose=(2, "{tbl}"), per=(2, 1, "d"), date="2025-03-04"),
        ]
    )
    (conflict,) = result.conflicts
    assert (conflict.rule, conflict.type, conflict.act_code, conflict.severity) == (
        "M2",
        "dose-conflict",
        "DOSE",
        "moderate",
    )
    assert "1000 mg per day" in conflict.detail() and "2000 mg per day" in conflict.detail()
    assert len(result.medication_list["entry"]) == 1
    assert_valid(result)


def test_m2_sources_that_agree_are_implicated_together_in_one_issue():
    result = run(
        [
            medication("a", *METFORMIN_500, per=(2, 1, "d")),
            medication("b", *METFORMIN_500, dose=(500, "mg"), per=(2, 1, "d")),
            medication("c", *METFORMIN_500, dose=(1000, "mg"), per=(2, 1, "d")),
        ]
    )
    assert found(result) == {("M2", ("a", "b", "c"))}


def test_m2_three_different_doses_give_one_issue_per_pair():
    result = run(
        [
            medication("a", *METFORMIN_500, dose=(500, "mg")),
            medication("b", *METFORMIN_500, dose=(1000, "mg")),
            medication("c", *METFORMIN_500, dose=(1500, "mg")),
        ]
    )
    assert found(result) == {("M2", ("a", "b")), ("M2", ("a", "c")), ("M2", ("b", "c"))}


def test_m2_a_dose_range_counts_as_its_range():
    ranged = medication("range", *METFORMIN_500, dose=None)
    ranged["dosage"][0]["doseAndRate"] = [
        {"doseRange": {"low": {"value": 1, "code": "{tbl}"}, "high": {"value": 2, "code": "{tbl}"}}}
    ]
    assert found(run([ranged, medication("fixed", *METFORMIN_500)])) == {("M2", ("fixed", "range"))}


# --- M3 ---------------------------------------------------------------------------------------------


def test_m3_the_same_daily_dose_at_another_interval_is_a_dose_interval_conflict():
    result = run(
        [
            medication("once", *FUROSEMIDE_20, dose=(2, "{tbl}"), per=None, code="QD"),
            medication("twice", *FUROSEMIDE_20, dose=(1, "{tbl}"), per=None, code="BID"),
        ]
    )
    (conflict,) = result.conflicts
    assert (conflict.rule, conflict.type, conflict.act_code, conflict.severity) == (
        "M3",
        "dose-conflict",
        "DOSEIVL",
        "low",
    )
    assert len(result.medication_list["entry"]) == 1


def test_m3_twice_daily_and_every_twelve_hours_are_the_same_interval():
    result = run(
        [
            medication("bid", *FUROSEMIDE_20, per=None, code="BID"),
            medication("q12h", *FUROSEMIDE_20, per=(1, 12, "h")),
        ]
    )
    assert result.conflicts == ()


# --- M4 ---------------------------------------------------------------------------------------------


def test_m4_the_same_ingredient_by_another_route_is_a_duplicate_generic_in_two_entries():
    result = run(
        [
            medication("tablet", *SEMAGLUTIDE_ORAL),
            medication("pen", *SEMAGLUTIDE_PEN, dose=(1, "mg"), per=(1, 1, "wk"), route=SUBCUTANEOUS),
        ]
    )
    (conflict,) = result.conflicts
    assert (conflict.rule, conflict.type, conflict.act_code, conflict.severity) == (
        "M4",
        "duplicate-therapy",
        "DUPTHPGEN",
        "moderate",
    )
    assert len(result.medication_list["entry"]) == 2


def test_m4_the_same_ingredient_in_another_form_shares_the_entry():
    result = run([medication("ir", *METFORMIN_500), medication("er", *METFORMIN_ER_500)])
    assert found(result) == {("M4", ("er", "ir"))}
    assert len(result.medication_list["entry"]) == 1


def test_m4_an_ingredient_taken_in_two_products_is_a_duplicate_generic():
    result = run([medication("plain", *LOSARTAN_50), medication("combo", *LOSARTAN_HCTZ)])
    assert found(result) == {("M4", ("combo", "plain"))}


# --- M5 and M5b -------------------------------------------------------------------------------------


def test_m5_two_ingredients_of_one_therapeutic_class_are_a_duplicate_class():
    result = run([medication("a", *TRAZODONE_50), medication("b", *MIRTAZAPINE_15)])
    (conflict,) = result.conflicts
    assert (conflict.rule, conflict.act_code, conflict.severity) == ("M5", "DUPTHPCLS", "moderate")
    assert "Other antidepressants" in conflict.detail()


def test_m5b_a_listed_pair_is_a_high_severity_duplicate_therapy():
    result = run([medication("acei", *LISINOPRIL_10), medication("arb", *LOSARTAN_50)])
    (conflict,) = result.conflicts
    assert (conflict.rule, conflict.type, conflict.act_code, conflict.severity) == (
        "M5b",
        "duplicate-therapy",
        "DUPTHPY",
        "high",
    )
    assert "ARB" in conflict.detail()


def test_m5b_wins_over_m5_for_a_listed_pair_of_one_class():
    result = run([medication("a", *ATORVASTATIN_40), medication("b", *SIMVASTATIN_20)])
    assert found(result) == {("M5b", ("a", "b"))}


def test_m5_and_m5b_need_both_sources_active():
    result = run([medication("acei", *LISINOPRIL_10, status="stopped"), medication("arb", *LOSARTAN_50)])
    assert result.conflicts == ()


# --- M6 ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("inactive", ["stopped", "completed", "not-taken"])
def test_m6_active_against_no_longer_taken_is_a_status_conflict(inactive):
    result = run([medication("pcp", *HCTZ_25), medication("renal", *HCTZ_25, status=inactive, date="2025-02-20")])
    (conflict,) = result.conflicts
    assert (conflict.rule, conflict.type, conflict.act_code, conflict.severity) == (
        "M6",
        "status-conflict",
        None,
        "moderate",
    )
    assert entries(result) == [("renal", None)]
    issue = result.detected_issues[0]
    assert [c["system"] for c in issue["code"]["coding"]] == ["http://fhir-ccm.org/CodeSystem/conflict-type"]


def test_m6_an_intended_statement_against_a_completed_order():
    result = run(
        [
            medication("plan", *HCTZ_25, status="intended"),
            medication("order", *HCTZ_25, status="completed", request=True),
        ]
    )
    assert found(result) == {("M6", ("order", "plan"))}


def test_m6_and_m2_together_give_one_issue_per_disagreeing_pair():
    result = run(
        [
            medication("low", *HCTZ_25),
            medication("high", *HCTZ_25, dose=(2, "{tbl}")),
            medication("stopped", *HCTZ_25, status="stopped"),
        ]
    )
    assert found(result) == {("M2", ("high", "low")), ("M6", ("high", "stopped")), ("M6", ("low", "stopped"))}


def test_sources_on_hold_or_entered_in_error_take_part_in_no_rule():
    result = run(
        [
            medication("active", *HCTZ_25),
            medication("held", *HCTZ_25, status="on-hold", dose=(2, "{tbl}")),
            medication("error", *HCTZ_25, status="entered-in-error", dose=(3, "{tbl}")),
        ]
    )
    assert result.conflicts == ()
    assert len(result.provenances[1]["entity"]) == 2


# --- M7 ---------------------------------------------------------------------------------------------


def test_m7_a_medication_without_rxnorm_coding_is_kept_apart_and_flagged():
    ndc = medication("ndc", None, "metformin 500 mg tablet")
    ndc["medicationCodeableConcept"]["coding"] = [{"system": "http://hl7.org/fhir/sid/ndc", "code": "0093-1048-01"}]
    result = run(
        [
            medication("coded", *METFORMIN_500),
            ndc,
            medication("fish-1", None, "Fish oil 1000 mg capsule"),
            medication("fish-2", None, "Fish oil 1000 mg capsule", dose=(2, "{capsule}")),
        ]
    )
    assert result.conflicts == ()
    assert sorted(entries(result)) == [
        ("coded", None),
        ("fish-1", "unverified"),
        ("fish-2", "unverified"),
        ("ndc", "unverified"),
    ]
    assert_valid(result)


def test_an_rxnorm_code_missing_from_the_table_is_still_verified():
    result = run(
        [
            medication("a", "999999999", "some new product"),
            medication("b", "999999999", "some new product", dose=(2, "{tbl}")),
        ]
    )
    assert entries(result) == [("a", None)]
    assert found(result) == {("M2", ("a", "b"))}  # one tablet against two of the same product


def test_route_synonyms_share_an_entry():
    by_mouth = medication("text", *LISINOPRIL_10, route={"text": "by mouth"})
    assert len(run([by_mouth, medication("coded", *LISINOPRIL_10)]).medication_list["entry"]) == 1


# --- the table --------------------------------------------------------------------------------------


def test_rules_are_a_table_in_precedence_order():
    assert [rule.name for rule, _ in RULES] == ["M5b", "M5", "M4", "M2", "M3", "M6"]


def test_a_pair_of_disagreeing_sources_gets_at_most_one_issue():
    result = run(
        [
            medication("a", *LISINOPRIL_10),
            medication("b", *LISINOPRIL_10, dose=(2, "{tbl}")),
            medication("c", *LISINOPRIL_10, status="stopped"),
            medication("d", *LOSARTAN_50),
            medication("e", *LOSARTAN_HCTZ),
            medication("f", *ATORVASTATIN_40),
            medication("g", *SIMVASTATIN_20, dose=(2, "{tbl}")),
        ]
    )
    counts: dict[tuple[str, str], int] = {}
    for conflict in result.conflicts:
        for pair in combinations(conflict.keys, 2):
            counts[pair] = counts.get(pair, 0) + 1
    assert counts and max(counts.values()) == 1


def test_a_medication_reference_is_resolved_from_the_sources_or_contained():
    product = {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": HCTZ_25[0]}]}
    shared = {"resourceType": "Medication", "id": "hctz", "code": product}
    by_reference = medication("by-reference", None, "ignored")
    del by_reference["medicationCodeableConcept"]
    by_reference["medicationReference"] = {"reference": "Medication/hctz"}
    contained = medication("contained", None, "ignored", status="stopped")
    del contained["medicationCodeableConcept"]
    contained["contained"] = [{"resourceType": "Medication", "id": "m", "code": product}]
    contained["medicationReference"] = {"reference": "#m"}
    result = run([shared, by_reference, contained])
    assert found(result) == {("M6", ("by-reference", "contained"))}
    assert_valid(result)
