"""The engine finds every disagreement planted in examples/ (examples/README.md, "Planted disagreements")."""

from __future__ import annotations

import pytest
from test_coordination_builders import ASSEMBLER, CLOCK, counter_ids, example_sources

from fhir_ccm.coordination import reconcile

PATIENTS = {
    "maria-garcia": "ccm-garcia",
    "robert-johnson": "ccm-johnson",
    "linda-thompson": "ccm-thompson",
    "james-washington": "ccm-washington",
}

# Every conflict the engine reports per example patient: (README row, rule, severity, implicated ids),
# ids without their ``ccm-<patient>-`` prefix (Practitioners keep theirs).
EXPECTED = {
    "maria-garcia": {
        (
            1,
            "M2",
            "moderate",
            (
                "medreq-endocrinology-metformin",
                "medstmt-endocrinology-metformin",
                "medstmt-nephrology-metformin",
                "medstmt-primary-care-metformin",
            ),
        ),
        (2, "M6", "moderate", ("medstmt-nephrology-hydrochlorothiazide", "medstmt-primary-care-hydrochlorothiazide")),
        (5, "G2", "low", ("goal-endocrinology-a1c", "goal-primary-care-a1c")),
        (6, "G2", "low", ("goal-nephrology-bp", "goal-primary-care-bp")),
    },
    "robert-johnson": {
        (
            8,
            "M2",
            "moderate",
            ("medstmt-cardiology-furosemide", "medstmt-nephrology-furosemide", "medstmt-primary-care-furosemide"),
        ),
        (9, "M5b", "high", ("medstmt-cardiology-sacubitril-valsartan", "medstmt-primary-care-lisinopril")),
        (9, "M6", "moderate", ("medstmt-cardiology-lisinopril", "medstmt-primary-care-lisinopril")),
        (10, "M5b", "high", ("medstmt-cardiology-carvedilol", "medstmt-primary-care-metoprolol")),
        (11, "M6", "moderate", ("medstmt-cardiology-spironolactone", "medstmt-nephrology-spironolactone")),
        (12, "M2", "moderate", ("medstmt-cardiology-atorvastatin", "medstmt-primary-care-atorvastatin")),
        (13, "G2", "low", ("goal-cardiology-bp", "goal-primary-care-bp")),
    },
    "linda-thompson": {
        (14, "M2", "moderate", ("medstmt-behavioral-health-sertraline", "medstmt-primary-care-sertraline")),
        (17, "G2", "low", ("goal-behavioral-health-phq9", "goal-primary-care-phq9")),
        (18, "T3", "low", ("ccm-prac-whitaker",)),
    },
    "james-washington": {
        (20, "M2", "moderate", ("medstmt-cardiology-amlodipine", "medstmt-primary-care-amlodipine")),
        (21, "M2", "moderate", ("medstmt-nephrology-losartan", "medstmt-primary-care-losartan")),
        (22, "M2", "moderate", ("medstmt-endocrinology-metformin", "medstmt-primary-care-metformin")),
        (23, "G2", "low", ("goal-endocrinology-a1c", "goal-primary-care-a1c")),
        (24, "G2", "low", ("goal-cardiology-bp", "goal-nephrology-bp")),
        (24, "G2", "low", ("goal-cardiology-bp", "goal-primary-care-bp")),
        (24, "G2", "low", ("goal-nephrology-bp", "goal-primary-care-bp")),
    },
}


def reconciled(folder):
    return reconcile(example_sources(folder), PATIENTS[folder], CLOCK, counter_ids(), ASSEMBLER)


@pytest.mark.parametrize("folder", sorted(PATIENTS))
def test_the_planted_conflicts_and_nothing_else_are_found(folder):
    prefix = PATIENTS[folder] + "-"
    found = {
        (c.rule, c.severity, tuple(key.split("/")[1].removeprefix(prefix) for key in c.keys))
        for c in reconciled(folder).conflicts
    }
    assert found == {(rule, severity, ids) for _, rule, severity, ids in EXPECTED[folder]}


def entry_items(result):
    return {
        entry["item"]["reference"].split("/")[1]: entry.get("flag", {}).get("text")
        for entry in result.medication_list["entry"]
    }


def test_3_brand_and_generic_lisinopril_are_one_entry_without_issue():
    items = entry_items(reconciled("maria-garcia"))
    lisinopril = [item for item in items if "lisinopril" in item]
    assert lisinopril == ["ccm-garcia-medstmt-nephrology-lisinopril"]


@pytest.mark.parametrize(
    ("folder", "statement"),
    [
        ("maria-garcia", "ccm-garcia-medstmt-primary-care-vitamin-d"),  # 4
        ("linda-thompson", "ccm-thompson-medstmt-behavioral-health-st-johns-wort"),  # 16
        ("james-washington", "ccm-washington-medstmt-endocrinology-cinnamon"),  # 25
    ],
)
def test_4_16_25_medications_without_rxnorm_coding_are_flagged_unverified(folder, statement):
    assert entry_items(reconciled(folder))[statement] == "unverified"


def test_15_a_medication_only_one_provider_lists_is_on_the_list():
    assert "ccm-thompson-medstmt-behavioral-health-bupropion" in entry_items(reconciled("linda-thompson"))


@pytest.mark.parametrize(
    ("folder", "roles"),
    [
        ("maria-garcia", ["158965000", "309343006", "446050000"]),  # 7
        ("linda-thompson", ["309343006", "446050000"]),  # 19
    ],
)
def test_7_19_one_practitioner_in_several_roles_is_one_participant_with_every_role(folder, roles):
    desai = [
        p
        for p in reconciled(folder).care_team["participant"]
        if p["member"]["reference"] == "Practitioner/ccm-prac-desai"
    ]
    assert len(desai) == 1
    assert sorted(c["code"] for role in desai[0]["role"] for c in role["coding"]) == roles
    assert desai[0]["onBehalfOf"]["reference"] == "Organization/ccm-org-riverside-primary-care"


def test_every_planted_row_with_a_conflict_is_covered():
    rows = {row for expected in EXPECTED.values() for row, *_ in expected}
    assert rows == {1, 2, 5, 6, 8, 9, 10, 11, 12, 13, 14, 17, 18, 20, 21, 22, 23, 24}
