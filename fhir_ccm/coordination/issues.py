"""Conflicts as DetectedIssue resources (http://hl7.org/fhir/R4/detectedissue.html), across runs.

Each issue carries a stable identifier (system ``RECONCILIATION_SYSTEM``,
value ``<patient id>/issue/<digest of type and implicated sources>``), so a
later run finds what an earlier one stored:

- a clinician-resolved issue (status final, amended or corrected, with a
  ``mitigation``) whose implicated sources are at the same versions is
  returned exactly as stored: it stays resolved;
- if one of its sources changed version, the conflict is open again: the same
  id, status preliminary, no mitigation;
- an earlier open issue keeps its id and its ``identifiedDateTime``;
- an earlier open issue no longer detected comes back in ``withdrawn`` with
  status cancelled, for the caller to store; resolved ones are left alone.

``implicated`` cites each source at its version (``Type/id/_history/n``) when
the source has a ``meta.versionId``, so "unchanged" can be checked.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fhir_ccm.coordination.conflicts import ACT_CODE_SYSTEM, ACT_CODES, CONFLICT_SYSTEM, CONFLICT_TYPES, Conflict
from fhir_ccm.coordination.identifiers import RECONCILIATION_SYSTEM, issue_identifier
from fhir_ccm.coordination.narrative import heading, labelled, narrative

RESOLVED_STATUSES = frozenset({"final", "amended", "corrected"})
OPEN_STATUSES = frozenset({"registered", "preliminary"})


@dataclass(frozen=True)
class IssueSet:
    issues: tuple[dict[str, Any], ...]
    withdrawn: tuple[dict[str, Any], ...]


def is_resolved(issue: dict[str, Any]) -> bool:
    return issue.get("status") in RESOLVED_STATUSES and bool(issue.get("mitigation"))


def detected_issues(
    conflicts: Sequence[Conflict],
    previous: Sequence[dict[str, Any]],
    patient: dict[str, Any],
    clock: str,
    new_id: Callable[[str], str],
    author: dict[str, Any] | None,
) -> IssueSet:
    patient_key = patient["reference"]
    earlier = {value: issue for issue in previous if (value := _our_identifier(issue))}
    issues = []
    for conflict in sorted(conflicts, key=Conflict.sort_key):
        identifier = issue_identifier(patient_key, conflict.identity())
        stored = earlier.pop(identifier["value"], None)
        cited = sorted(source.versioned for source in conflict.implicated)
        if stored is not None and is_resolved(stored) and _implicated(stored) == cited:
            issues.append(copy.deepcopy(stored))
            continue
        issue = render(
            conflict, stored["id"] if stored else new_id("DetectedIssue"), identifier, patient, clock, author
        )
        if stored is not None and not is_resolved(stored) and isinstance(stored.get("identifiedDateTime"), str):
            issue["identifiedDateTime"] = stored["identifiedDateTime"]
        issues.append(issue)
    withdrawn = tuple(
        {**copy.deepcopy(issue), "status": "cancelled"}
        for _, issue in sorted(earlier.items())
        if issue.get("status") in OPEN_STATUSES
    )
    return IssueSet(tuple(issues), withdrawn)


def render(
    conflict: Conflict,
    issue_id: str,
    identifier: dict[str, str],
    patient: dict[str, Any],
    clock: str,
    author: dict[str, Any] | None,
) -> dict[str, Any]:
    type_display = CONFLICT_TYPES[conflict.type]
    coding = [{"system": CONFLICT_SYSTEM, "code": conflict.type, "display": type_display}]
    if conflict.act_code:
        coding.append({"system": ACT_CODE_SYSTEM, "code": conflict.act_code, "display": ACT_CODES[conflict.act_code]})
    title = f"{type_display} (rule {conflict.rule}): {conflict.subject}"
    issue: dict[str, Any] = {
        "resourceType": "DetectedIssue",
        "id": issue_id,
        "text": narrative(
            heading(title),
            labelled(
                [
                    ("Severity", conflict.severity),
                    ("Status", "preliminary: for a clinician to review"),
                    ("Detail", conflict.detail()),
                ]
            ),
        ),
        "identifier": [identifier],
        "status": "preliminary",
        "code": {"coding": coding, "text": title},
        "severity": conflict.severity,
        "patient": patient,
        "identifiedDateTime": clock,
        "implicated": [source.reference() for source in conflict.implicated],
        "detail": conflict.detail(),
    }
    if author is not None:
        issue["author"] = author
    return issue


def _our_identifier(issue: dict[str, Any]) -> str | None:
    for identifier in issue.get("identifier") or []:
        if isinstance(identifier, dict) and identifier.get("system") == RECONCILIATION_SYSTEM:
            value = identifier.get("value")
            return value if isinstance(value, str) else None
    return None


def _implicated(issue: dict[str, Any]) -> list[str]:
    return sorted(str(ref.get("reference")) for ref in issue.get("implicated") or [] if isinstance(ref, dict))
