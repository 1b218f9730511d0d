"""``reconcile``: every provider's plans, goals, medications and teams for one patient, as one view.

Pure and deterministic: the caller passes the sources, the clock and an id
generator; the same sources in any order give the same output, and with an id
generator that depends only on call order, the very same output (ids are
asked for in a fixed order: CarePlan, List, CareTeam, new DetectedIssues in
report order, the three Provenances, the Bundle).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fhir_ccm.coordination.careteam import reconcile_team
from fhir_ccm.coordination.conditions import unify_problems
from fhir_ccm.coordination.conflicts import Conflict
from fhir_ccm.coordination.goals import reconcile_goals
from fhir_ccm.coordination.identifiers import KINDS, RECONCILIATION_SYSTEM, unified_identifier
from fhir_ccm.coordination.issues import detected_issues, is_resolved
from fhir_ccm.coordination.medication_rules import medication_conflicts
from fhir_ccm.coordination.medications import entries_and_positions, view_medication
from fhir_ccm.coordination.provenance import provenance
from fhir_ccm.coordination.references import reference_key, source_ref
from fhir_ccm.coordination.sources import collect, patient_key
from fhir_ccm.coordination.unified import care_plan, care_team, medication_list

INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
ASSEMBLER_TYPES = ("Device", "Organization")


@dataclass(frozen=True)
class Previous:
    """What an earlier run stored: its unified resources (their ids are reused) and its DetectedIssues."""

    care_plan: dict[str, Any] | None = None
    medication_list: dict[str, Any] | None = None
    care_team: dict[str, Any] | None = None
    detected_issues: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_resources(cls, resources: Sequence[dict[str, Any]], patient: dict[str, Any] | str) -> Previous:
        """Sort stored resources into a ``Previous`` by their reconciliation identifiers."""
        key = patient_key(patient)
        unified: dict[str, dict[str, Any]] = {}
        issues = []
        for resource in resources:
            resource_type = resource.get("resourceType")
            if resource_type == "DetectedIssue" and reference_key(resource.get("patient")) == key:
                issues.append(resource)
            elif resource_type in KINDS and unified_identifier(key, resource_type) in resource.get("identifier", []):
                unified[resource_type] = resource
        return cls(unified.get("CarePlan"), unified.get("List"), unified.get("CareTeam"), tuple(issues))


@dataclass(frozen=True)
class Reconciliation:
    """The outputs of one run; ``bundle()`` packs them as the operation's collection Bundle."""

    care_plan: dict[str, Any]
    medication_list: dict[str, Any]
    care_team: dict[str, Any]
    detected_issues: tuple[dict[str, Any], ...]
    provenances: tuple[dict[str, Any], ...]
    conflicts: tuple[Conflict, ...]
    withdrawn_issues: tuple[dict[str, Any], ...] = ()
    bundle_id: str = ""
    timestamp: str = ""

    def resources(self) -> list[dict[str, Any]]:
        """Everything the Bundle holds, in its order: what a caller stores."""
        return [self.care_plan, self.medication_list, self.care_team, *self.detected_issues, *self.provenances]

    def bundle(self, base_url: str | None = None) -> dict[str, Any]:
        """A Bundle of type collection; with ``base_url``, entries get RESTful fullUrls."""
        entries = []
        for resource in self.resources():
            entry: dict[str, Any] = {"resource": resource}
            if base_url:
                entry = {"fullUrl": f"{base_url.rstrip('/')}/{resource['resourceType']}/{resource['id']}", **entry}
            entries.append(entry)
        bundle: dict[str, Any] = {"resourceType": "Bundle"}
        if self.bundle_id:
            bundle["id"] = self.bundle_id
        return {**bundle, "type": "collection", "timestamp": self.timestamp, "entry": entries}


def reconcile(
    sources: Sequence[dict[str, Any]],
    patient: dict[str, Any] | str,
    clock: str,
    new_id: Callable[[str], str],
    assembler: dict[str, Any],
    previous: Previous | None = None,
    *,
    on_behalf_of: dict[str, Any] | None = None,
) -> Reconciliation:
    if not isinstance(clock, str) or not INSTANT.match(clock):
        raise ValueError(f"The clock must be a FHIR instant with a time zone, not {clock!r}")
    if reference_key(assembler) is None or str(reference_key(assembler)).split("/")[0] not in ASSEMBLER_TYPES:
        raise ValueError("The assembler must be a reference to a Device or an Organization")
    previous = previous or Previous()
    found = collect(sources, patient)
    subject = {"reference": found.patient, **({"display": found.patient_display} if found.patient_display else {})}

    problems = unify_problems((a for plan in found.care_plans for a in plan.get("addresses") or []), found)
    goals = reconcile_goals(found.goals)
    uses = [view_medication(resource, found) for resource in found.medications]
    entries, positions = entries_and_positions(uses)
    team = reconcile_team(found)
    reasons = unify_problems((r for t in found.care_teams for r in t.get("reasonReference") or []), found)
    conflicts = sorted([*medication_conflicts(positions), *goals.conflicts, *team.conflicts], key=Conflict.sort_key)

    def unified_id(resource: dict[str, Any] | None, resource_type: str) -> str:
        return str(resource["id"]) if resource and resource.get("id") else new_id(resource_type)

    plan_id = unified_id(previous.care_plan, "CarePlan")
    list_id = unified_id(previous.medication_list, "List")
    team_id = unified_id(previous.care_team, "CareTeam")
    author = assembler if str(reference_key(assembler)).startswith("Device/") else None
    issues = detected_issues(conflicts, previous.detected_issues, subject, clock, new_id, author)

    created = (previous.care_plan or {}).get("created") or clock
    open_issues = sum(1 for issue in issues.issues if not is_resolved(issue))
    plan = care_plan(
        plan_id,
        unified_identifier(found.patient, "CarePlan"),
        subject,
        str(created),
        found.care_plans,
        problems,
        goals.cited,
        team_id,
        list_id,
        open_issues,
    )
    medications = medication_list(list_id, unified_identifier(found.patient, "List"), subject, clock, entries)
    merged_team = care_team(
        team_id, unified_identifier(found.patient, "CareTeam"), subject, team, reasons, found.care_teams
    )

    plan_sources = [
        *(source_ref(p) for p in found.care_plans),
        *goals.sources,
        *(source_ref(found.lookup[m]) for problem in problems for m in problem.members if m in found.lookup),
    ]
    derived = (
        (f"CarePlan/{plan_id}", plan_sources, previous.care_plan),
        (f"List/{list_id}", [use.source for use in uses], previous.medication_list),
        (f"CareTeam/{team_id}", list(team.sources), previous.care_team),
    )
    provenances = tuple(
        provenance(
            new_id("Provenance"), target, clock, assembler, on_behalf_of, cited, "UPDATE" if earlier else "CREATE"
        )
        for target, cited, earlier in derived
    )
    return Reconciliation(
        care_plan=plan,
        medication_list=medications,
        care_team=merged_team,
        detected_issues=issues.issues,
        provenances=provenances,
        conflicts=tuple(conflicts),
        withdrawn_issues=issues.withdrawn,
        bundle_id=new_id("Bundle"),
        timestamp=clock,
    )


__all__ = ["RECONCILIATION_SYSTEM", "Previous", "Reconciliation", "reconcile"]
