"""The three unified resources: one CarePlan, one medication List, one CareTeam.

The CarePlan follows US Core and the MCC eCare Plan profile's constraints:
generated narrative, status active, intent plan, category assess-plan, every
source plan in ``basedOn``, every contributor (source plan authors and
contributors) in ``contributor``, and activities only by reference: a source
plan's inline ``activity.detail`` cannot be carried (the profile forbids it)
and stays readable through ``basedOn``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fhir_ccm.coordination.careteam import TeamResult
from fhir_ccm.coordination.conditions import Problem
from fhir_ccm.coordination.goals import GoalView
from fhir_ccm.coordination.medications import Entry, describe_dose
from fhir_ccm.coordination.narrative import heading, labelled, narrative, paragraph, table
from fhir_ccm.coordination.references import key_of, reference_key, reference_label

CAREPLAN_CATEGORY = {
    "coding": [
        {
            "system": "http://hl7.org/fhir/us/core/CodeSystem/careplan-category",
            "code": "assess-plan",
            "display": "Assessment and Plan of Treatment",
        }
    ]
}
MEDICATION_LIST_CODE = {
    "coding": [{"system": "http://loinc.org", "code": "10160-0", "display": "History of Medication use Narrative"}]
}
CARETEAM_CATEGORY = {
    "coding": [
        {
            "system": "http://loinc.org",
            "code": "LA28865-6",
            "display": "Longitudinal care-coordination focused care team",
        }
    ]
}
NOTHING_KNOWN = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/list-empty-reason",
            "code": "nilknown",
            "display": "Nil Known",
        }
    ],
    "text": "No medication source was found for this patient",
}
UNVERIFIED = {"text": "unverified"}


def care_plan(
    plan_id: str,
    identifier: dict[str, str],
    patient: dict[str, Any],
    created: str,
    care_plans: Sequence[dict[str, Any]],
    problems: Sequence[Problem],
    goals: Sequence[GoalView],
    care_team_id: str,
    list_id: str,
    open_issues: int,
) -> dict[str, Any]:
    activities, inline = _activities(care_plans)
    contributors = _contributors(care_plans)
    who = patient.get("display") or patient["reference"]
    plan: dict[str, Any] = {
        "resourceType": "CarePlan",
        "id": plan_id,
        "text": narrative(
            heading("Reconciled care plan", f" for {who}"),
            labelled(
                [
                    ("Status", "active"),
                    ("Based on", "; ".join(_plan_title(p) for p in care_plans) or "no source plan"),
                    ("Addresses", "; ".join(p.display or p.key for p in problems)),
                    ("Goals", "; ".join(g.description for g in goals)),
                    ("Activities", "; ".join(_activity_label(a) for a in activities)),
                    ("Care team", f"CareTeam/{care_team_id}"),
                    ("Medications", f"List/{list_id}"),
                    ("Conflicts for review", str(open_issues)),
                ]
            ),
            paragraph(f"{inline} activities described inline in the source plans are not repeated here.")
            if inline
            else "",
        ),
        "identifier": [identifier],
        "basedOn": [{"reference": key_of(p)} for p in care_plans],
        "status": "active",
        "intent": "plan",
        "category": [CAREPLAN_CATEGORY],
        "title": "Reconciled care plan",
        "subject": patient,
        "created": created,
        "contributor": contributors,
        "careTeam": [{"reference": f"CareTeam/{care_team_id}"}],
        "addresses": [p.reference for p in problems],
        "supportingInfo": [{"reference": f"List/{list_id}"}],
        "goal": [{"reference": g.source.key, "display": g.description} for g in goals],
        "activity": [{"reference": a} for a in activities],
    }
    return {key: value for key, value in plan.items() if value != []}


def _plan_title(plan: dict[str, Any]) -> str:
    title = plan.get("title")
    return f"{title} ({key_of(plan)})" if isinstance(title, str) else key_of(plan)


def _activity_label(reference: dict[str, Any]) -> str:
    return str(reference.get("display") or reference["reference"])


def _activities(care_plans: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    found: dict[str, dict[str, Any]] = {}
    inline = 0
    for plan in care_plans:
        for activity in plan.get("activity") or []:
            key = reference_key((activity or {}).get("reference"))
            if key is None:
                inline += 1
                continue
            display = (activity["reference"] or {}).get("display")
            found.setdefault(key, {"reference": key, **({"display": display} if isinstance(display, str) else {})})
    return [found[key] for key in sorted(found)], inline


def _contributors(care_plans: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for plan in care_plans:
        for reference in [plan.get("author"), *(plan.get("contributor") or [])]:
            key = reference_key(reference)
            if key:
                label = reference_label(reference)
                found.setdefault(key, {"reference": key, **({"display": label} if label and label != key else {})})
    return [found[key] for key in sorted(found)]


def medication_list(
    list_id: str, identifier: dict[str, str], patient: dict[str, Any], clock: str, entries: Sequence[Entry]
) -> dict[str, Any]:
    rows = []
    items = []
    for entry in entries:
        lead = entry.lead
        item: dict[str, Any] = {"item": {"reference": lead.source.key, "display": lead.name}}
        if not entry.verified:
            item["flag"] = UNVERIFIED
        items.append(item)
        said = "; ".join(f"{u.source.label()}: {u.status}, {describe_dose(u)}" for u in entry.uses)
        rows.append((entry.title, lead.source.key, "unverified" if not entry.verified else "", said))
    resource: dict[str, Any] = {
        "resourceType": "List",
        "id": list_id,
        "text": narrative(
            heading("Reconciled medication list", f" ({len(entries)} medications)"),
            table(("Medication", "Cited source", "Flag", "What each source says"), rows),
        ),
        "identifier": [identifier],
        "status": "current",
        "mode": "snapshot",
        "title": "Reconciled medication list",
        "code": MEDICATION_LIST_CODE,
        "subject": patient,
        "date": clock,
    }
    if items:
        resource["entry"] = items
    else:
        resource["emptyReason"] = NOTHING_KNOWN
    return resource


def care_team(
    team_id: str,
    identifier: dict[str, str],
    patient: dict[str, Any],
    team: TeamResult,
    reasons: Sequence[Problem],
    care_teams: Sequence[dict[str, Any]],
) -> dict[str, Any]:
    rows = [
        (
            _label(p.member),
            ", ".join(_role_label(r) for r in p.roles),
            _label(p.on_behalf_of),
        )
        for p in team.participants
    ]
    resource: dict[str, Any] = {
        "resourceType": "CareTeam",
        "id": team_id,
        "text": narrative(
            heading("Reconciled care team", f" from {len(care_teams)} care teams"),
            table(("Member", "Roles", "On behalf of"), rows),
        ),
        "identifier": [identifier],
        "status": "active",
        "category": [CARETEAM_CATEGORY],
        "name": "Reconciled care team",
        "subject": patient,
        "participant": [p.to_fhir() for p in team.participants],
        "reasonReference": [p.reference for p in reasons],
        "managingOrganization": list(team.managing_organizations),
    }
    return {key: value for key, value in resource.items() if value != []}


def _label(reference: dict[str, Any] | None) -> str:
    return reference_label(reference) or "" if reference else ""


def _role_label(concept: dict[str, Any]) -> str:
    if isinstance(concept.get("text"), str):
        return str(concept["text"])
    coding = next((c for c in concept.get("coding") or [] if isinstance(c, dict)), {})
    return str(coding.get("display") or coding.get("code") or "")
