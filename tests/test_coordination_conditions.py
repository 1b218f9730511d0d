"""C1: one problem per condition code in the unified plan's ``addresses``."""

from __future__ import annotations

from test_coordination_builders import SNOMED, assert_valid, care_plan, condition, run

ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"


def addresses(result):
    return [(a.get("reference"), a.get("display")) for a in result.care_plan.get("addresses", [])]


def test_c1_conditions_with_the_same_code_are_one_entry():
    result = run(
        [
            condition("htn-pcp", (SNOMED, "38341003"), (ICD10, "I10"), text="Essential hypertension"),
            condition("htn-renal", (SNOMED, "38341003"), text="Hypertension"),
            condition("ckd", (SNOMED, "433144002"), text="CKD stage 3"),
            care_plan("pcp", addresses=["Condition/htn-pcp", "Condition/ckd"]),
            care_plan("renal", addresses=["Condition/htn-renal", "Condition/ckd"]),
        ]
    )
    assert addresses(result) == [("Condition/ckd", "CKD stage 3"), ("Condition/htn-pcp", "Essential hypertension")]
    entities = [e["what"]["reference"] for e in result.provenances[0]["entity"]]
    assert {"Condition/htn-pcp", "Condition/htn-renal", "Condition/ckd"} <= set(entities)
    assert_valid(result)


def test_c1_any_shared_coding_makes_conditions_one_problem():
    result = run(
        [
            condition("a", (ICD10, "E11.9")),
            condition("b", (SNOMED, "44054006"), (ICD10, "E11.9")),
            condition("c", (SNOMED, "44054006")),
            care_plan("p", addresses=["Condition/a", "Condition/b", "Condition/c"]),
        ]
    )
    assert [ref for ref, _ in addresses(result)] == ["Condition/a"]


def test_c1_different_codes_stay_apart_and_unresolved_references_are_kept_once():
    result = run(
        [
            condition("a", (SNOMED, "38341003")),
            condition("b", (SNOMED, "13645005")),
            care_plan("p1", addresses=["Condition/a", "Condition/b", "Condition/elsewhere"]),
            care_plan("p2", addresses=["Condition/elsewhere"]),
        ]
    )
    assert [ref for ref, _ in addresses(result)] == ["Condition/a", "Condition/b", "Condition/elsewhere"]
