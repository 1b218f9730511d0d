"""G1 and G2: goals on one measure, compared after unit conversion at reporting precision."""

from __future__ import annotations

from fractions import Fraction

import pytest
from test_coordination_builders import assert_valid, goal, quantity, run, target

from fhir_ccm.coordination.targets import HBA1C, Bound, measured_targets


def cited(result):
    return [ref["reference"].split("/")[1] for ref in result.care_plan.get("goal", [])]


def found(result):
    return {(c.rule, c.severity, tuple(k.split("/")[1] for k in c.keys)) for c in result.conflicts}


@pytest.mark.parametrize(
    ("value", "unit", "mmol_per_mol"),
    [("7.0", "%", 53), ("8.0", "%", 64), ("6.5", "%", 48), ("53", "mmol/mol", 53), ("52.6", "mmol/mol", 53)],
)
def test_hba1c_is_compared_in_whole_mmol_per_mol(value, unit, mmol_per_mol):
    (found_target,) = measured_targets(target("4548-4", value, unit))
    assert found_target.measure == HBA1C
    assert found_target.target.high == Bound(Fraction(mmol_per_mol), False)


def test_g1_equal_hba1c_targets_in_percent_and_mmol_per_mol_merge():
    result = run(
        [
            goal("pcp", [target("4548-4", "7.0", "%")], date="2025-01-15"),
            goal("endo", [target("59261-8", 53, "mmol/mol")], date="2025-03-04"),
            goal("lab", [target("17856-6", "7.0", "%")], date="2025-02-01"),
        ]
    )
    assert result.conflicts == ()
    assert cited(result) == ["endo"]  # the most recent of the agreeing goals
    assert [e["what"]["reference"] for e in result.provenances[0]["entity"]] == ["Goal/endo", "Goal/lab", "Goal/pcp"]
    assert_valid(result)


def test_g1_a_blood_pressure_panel_equals_its_components():
    panel = target("85354-9", comparator=None, detailString="<130/80 mm[Hg]")
    parts = [target("8480-6", 130, "mm[Hg]"), target("8462-4", 80, "mm[Hg]")]
    result = run([goal("panel", [panel]), goal("parts", parts)])
    assert result.conflicts == ()
    assert len(cited(result)) == 1


def test_g1_blood_pressure_in_kilopascal_is_converted_and_rounded():
    result = run([goal("kpa", [target("8480-6", "17.3", "kPa")]), goal("mmhg", [target("8480-6", 130, "mm[Hg]")])])
    assert result.conflicts == ()


def test_g2_overlapping_targets_are_a_low_goal_conflict():
    result = run([goal("pcp", [target("4548-4", "8.0", "%")]), goal("endo", [target("4548-4", "7.0", "%")])])
    (conflict,) = result.conflicts
    assert (conflict.rule, conflict.type, conflict.severity, conflict.act_code) == ("G2", "goal-conflict", "low", None)
    assert "HbA1c < 8.0 % (= < 64 mmol/mol)" in conflict.detail()
    assert sorted(cited(result)) == ["endo", "pcp"]  # flag, never pick


def test_g2_disjoint_targets_are_a_moderate_goal_conflict():
    ranged = target("4548-4", comparator=None, detailRange={"low": quantity("7.0", "%"), "high": quantity("8.0", "%")})
    result = run([goal("older-adult", [ranged]), goal("tight", [target("4548-4", "6.5", "%")])])
    assert found(result) == {("G2", "moderate", ("older-adult", "tight"))}


def test_g2_one_disjoint_measure_makes_the_conflict_moderate():
    first = [target("8480-6", 130, "mm[Hg]"), target("8462-4", 80, "mm[Hg]")]
    second = [target("8480-6", 140, "mm[Hg]", ">="), target("8462-4", 80, "mm[Hg]")]
    assert found(run([goal("a", first), goal("b", second)])) == {("G2", "moderate", ("a", "b"))}


def test_g2_three_blood_pressure_goals_give_one_issue_per_pair():
    ranged = {"low": quantity(110, "mm[Hg]"), "high": quantity(130, "mm[Hg]")}
    result = run(
        [
            goal("pcp", [target("8480-6", 140, "mm[Hg]"), target("8462-4", 90, "mm[Hg]")]),
            goal("renal", [target("8480-6", 130, "mm[Hg]"), target("8462-4", 80, "mm[Hg]")]),
            goal("cardio", [target("8480-6", comparator=None, detailRange=ranged), target("8462-4", 80, "mm[Hg]")]),
        ]
    )
    assert found(result) == {
        ("G2", "low", ("cardio", "pcp")),
        ("G2", "low", ("cardio", "renal")),
        ("G2", "low", ("pcp", "renal")),
    }


def test_g2_needs_both_goals_active():
    result = run(
        [goal("old", [target("4548-4", "8.0", "%")], status="completed"), goal("new", [target("4548-4", "7.0", "%")])]
    )
    assert result.conflicts == ()
    assert sorted(cited(result)) == ["new", "old"]


def test_goals_on_different_measures_do_not_conflict():
    ldl = target("2089-1", 70, "mg/dL")
    total = target("2093-3", 200, "mg/dL")
    assert run([goal("ldl", [ldl]), goal("total", [total])]).conflicts == ()


def test_other_measures_compare_in_their_own_units():
    assert (
        run([goal("a", [target("2089-1", 70, "mg/dL")]), goal("b", [target("2089-1", "0.7", "g/L")])]).conflicts == ()
    )
    scores = run([goal("a", [target("44261-6", 10, "{score}")]), goal("b", [target("44261-6", 5, "{score}")])])
    assert found(scores) == {("G2", "low", ("a", "b"))}


def test_goals_without_a_comparable_target_are_kept_and_never_compared():
    result = run([goal("walk", []), goal("work", [])])
    assert result.conflicts == () and cited(result) == ["walk", "work"]


def test_cancelled_and_rejected_goals_are_not_part_of_the_plan():
    result = run([goal("gone", [target("4548-4", "8.0", "%")], status="cancelled"), goal("kept", [])])
    assert cited(result) == ["kept"]


def test_targets_touching_at_an_excluded_bound_do_not_overlap():
    below = measured_targets(target("4548-4", "7.0", "%"))[0].target
    at_or_above = measured_targets(target("4548-4", "7.0", "%", ">="))[0].target
    at_most = measured_targets(target("4548-4", "7.0", "%", "<="))[0].target
    assert below.disjoint(at_or_above)
    assert at_most.overlaps(at_or_above)


def test_a_blood_pressure_panel_as_a_ratio_or_with_a_component_code():
    ratio = target(
        "85354-9",
        comparator=None,
        detailRatio={"numerator": quantity(130, "mm[Hg]", "<"), "denominator": quantity(80, "mm[Hg]", "<")},
    )
    systolic = target("85354-9", 130, "mm[Hg]")
    systolic["measure"]["coding"].append({"system": "http://loinc.org", "code": "8480-6"})
    diastolic = target("8462-4", 80, "mm[Hg]")
    result = run([goal("ratio", [ratio]), goal("coded", [systolic, diastolic])])
    assert result.conflicts == () and len(cited(result)) == 1
