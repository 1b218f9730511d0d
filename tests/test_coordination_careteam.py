"""T1-T3: merging care teams by NPI and family name, and the people that cannot be merged."""

from __future__ import annotations

import pytest
from test_coordination_builders import (
    SNOMED,
    assert_valid,
    care_team,
    participant,
    patient,
    practitioner,
    run,
    with_check_digit,
)

from fhir_ccm.coordination.npi import npi_valid

NPI_A = with_check_digit("123456789")
NPI_B = with_check_digit("198765432")


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("1622496176", True),  # Dr. Desai in examples/
        ("1358662317", False),  # James Whitaker: the planted bad check digit
        ("1358662314", True),  # ... and the good one
        ("3622496176", False),  # must start with 1 or 2
        ("162249617", False),  # nine digits
        ("16224961760", False),  # eleven digits
        ("162249617X", False),
        ("", False),
    ],
)
def test_npi_check(value, valid):
    assert npi_valid(value) is valid


def members(result):
    return [
        (
            p["member"]["reference"].split("/")[1],
            (p.get("onBehalfOf") or {}).get("reference", "").split("/")[-1],
            sorted(c["code"] for r in p["role"] for c in r["coding"]),
        )
        for p in result.care_team["participant"]
    ]


def test_t1_the_same_valid_npi_and_family_name_is_one_member_with_one_participant_per_organization():
    result = run(
        [
            patient(),
            practitioner("desai-riverside", NPI_A, "Desai", "Anita"),
            practitioner("desai-hie", NPI_A, "DESAÍ", "A."),
            care_team("pcp", [participant("Practitioner/desai-riverside", "Organization/riverside", "446050000")]),
            care_team("renal", [participant("Practitioner/desai-hie", "Organization/riverside", "158965000")]),
            care_team("endo", [participant("Practitioner/desai-hie", "Organization/summit", "309343006")]),
        ]
    )
    assert result.conflicts == ()
    assert members(result) == [
        ("desai-hie", "riverside", ["158965000", "446050000"]),
        ("desai-hie", "summit", ["309343006"]),
    ]
    assert_valid(result)


def test_t1_roles_of_one_person_in_several_teams_are_merged_once_each():
    result = run(
        [
            practitioner("a", NPI_A, "Smith"),
            care_team("t1", [participant("Practitioner/a", "Organization/o", "309343006")]),
            care_team("t2", [participant("Practitioner/a", "Organization/o", "309343006")]),
        ]
    )
    assert members(result) == [("a", "o", ["309343006"])]


def test_t2_the_same_valid_npi_with_another_family_name_is_an_identity_conflict_and_no_merge():
    result = run(
        [
            practitioner("smith", NPI_A, "Smith"),
            practitioner("jones", NPI_A, "Jones"),
            care_team("t1", [participant("Practitioner/smith", "Organization/o")]),
            care_team("t2", [participant("Practitioner/jones", "Organization/o")]),
        ]
    )
    (conflict,) = result.conflicts
    assert (conflict.rule, conflict.type, conflict.severity, conflict.act_code) == (
        "T2",
        "careteam-identity-conflict",
        "low",
        "KEY205",
    )
    assert conflict.keys == ("Practitioner/jones", "Practitioner/smith")
    assert "CareTeam/t1" in conflict.detail() and "CareTeam/t2" in conflict.detail()
    assert [m[0] for m in members(result)] == ["jones", "smith"]


def test_t3_an_npi_failing_the_check_is_one_invalid_identifier_issue_per_practitioner_and_never_merges():
    result = run(
        [
            practitioner("w1", "1358662317", "Whitaker"),
            practitioner("w2", "1358662317", "Whitaker"),
            care_team(
                "t",
                [participant("Practitioner/w1", "Organization/o"), participant("Practitioner/w2", "Organization/o")],
            ),
        ]
    )
    assert sorted((c.rule, c.type, c.severity, c.act_code, c.keys) for c in result.conflicts) == [
        ("T3", "invalid-identifier", "low", "FORMAT", ("Practitioner/w1",)),
        ("T3", "invalid-identifier", "low", "FORMAT", ("Practitioner/w2",)),
    ]
    assert [m[0] for m in members(result)] == ["w1", "w2"]
    issue = result.detected_issues[0]
    assert issue["implicated"] == [{"reference": "Practitioner/w1"}]


def test_people_without_an_npi_or_not_passed_in_merge_by_reference():
    result = run(
        [
            practitioner("plain", None, "Smith"),
            care_team("t1", [participant("Practitioner/plain", "Organization/o"), participant("Patient/p1")]),
            care_team("t2", [participant("Practitioner/elsewhere", "Organization/o"), participant("Patient/p1")]),
        ]
    )
    assert result.conflicts == ()
    assert [m[0] for m in members(result)] == ["p1", "elsewhere", "plain"]


def test_the_merged_team_unites_managing_organizations_and_reasons():
    first = care_team(
        "t1",
        [participant("Patient/p1")],
        managingOrganization=[{"reference": "Organization/b"}],
        reasonReference=[{"reference": "Condition/c1"}],
    )
    second = care_team(
        "t2",
        [participant("Patient/p1")],
        managingOrganization=[{"reference": "Organization/a"}],
        reasonReference=[{"reference": "Condition/c2"}],
    )
    conditions = [
        {
            "resourceType": "Condition",
            "id": cid,
            "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": SNOMED, "code": "38341003"}]},
        }
        for cid in ("c1", "c2")
    ]
    team = run([first, second, *conditions]).care_team
    assert [o["reference"] for o in team["managingOrganization"]] == ["Organization/a", "Organization/b"]
    assert [r["reference"] for r in team["reasonReference"]] == ["Condition/c1"]
    assert team["status"] == "active" and team["subject"] == {"reference": "Patient/p1"}
