"""The ``reconcile`` command's summary: the unified plan, the medication list with its
sources, and each conflict with its evidence, readable in a terminal."""

from __future__ import annotations

from typing import Any


def _by_type(bundle: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") or {}
        grouped.setdefault(resource.get("resourceType", "?"), []).append(resource)
    return grouped


def _display(reference: dict[str, Any] | None) -> str:
    if not reference:
        return "?"
    return str(reference.get("display") or reference.get("reference") or "?")


def summarize(bundle: dict[str, Any]) -> str:
    """A plain-text summary of a ``$reconcile`` collection Bundle."""
    grouped = _by_type(bundle)
    lines: list[str] = []
    for plan in grouped.get("CarePlan", []):
        lines.append(f"Unified care plan for {_display(plan.get('subject'))} ({plan.get('status')})")
        lines.append(f"  based on {len(plan.get('basedOn') or [])} source care plan(s)")
        for problem in plan.get("addresses") or []:
            lines.append(f"  problem: {_display(problem)}")
        for goal in plan.get("goal") or []:
            lines.append(f"  goal: {_display(goal)}")
    for medication_list in grouped.get("List", []):
        entries = medication_list.get("entry") or []
        lines.append("")
        lines.append(f"Medication list ({len(entries)} medication(s))")
        for entry in entries:
            flag = (entry.get("flag") or {}).get("text")
            suffix = f"  [{flag}]" if flag else ""
            lines.append(f"  - {_display(entry.get('item'))}{suffix}")
            for extension in entry.get("extension") or []:
                if "valueReference" in extension:
                    lines.append(f"      source: {_display(extension['valueReference'])}")
    for team in grouped.get("CareTeam", []):
        participants = team.get("participant") or []
        lines.append("")
        lines.append(f"Care team ({len(participants)} participant(s))")
        for participant in participants:
            role = ", ".join(
                c.get("display") or c.get("code", "")
                for r in participant.get("role") or []
                for c in r.get("coding") or []
            )
            lines.append(f"  - {_display(participant.get('member'))}" + (f" ({role})" if role else ""))
    issues = grouped.get("DetectedIssue", [])
    lines.append("")
    lines.append(f"Conflicts: {len(issues)}")
    for issue in issues:
        codes = [c.get("code") for c in (issue.get("code") or {}).get("coding") or []]
        lines.append(f"  * [{issue.get('severity', '?')}] {' / '.join(str(c) for c in codes)} ({issue.get('status')})")
        if issue.get("detail"):
            lines.append(f"    {issue['detail']}")
        for implicated in issue.get("implicated") or []:
            lines.append(f"    evidence: {_display(implicated)}")
    return "\n".join(lines)
