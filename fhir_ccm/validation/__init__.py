"""Checks every resource passes before it is stored."""

from __future__ import annotations

from typing import Any

from fhir_ccm.errors import Invalid, Issue, Unprocessable
from fhir_ccm.validation.elements import check_elements
from fhir_ccm.validation.structure import check_structure

# Issue codes that mean "this is not a well-formed resource" (400); anything
# else, such as a code outside its required ValueSet, is a rule violation (422).
STRUCTURAL_CODES = frozenset({"structure", "required", "value", "invalid"})


def validate_resource(resource: dict[str, Any]) -> None:
    """Raise with every problem of ``resource`` at once, or return quietly."""
    issues = check_issues(resource)
    if not issues:
        return
    summary = f"{resource.get('resourceType', 'The resource')} is invalid: {len(issues)} problem(s)"
    if any(issue.code in STRUCTURAL_CODES for issue in issues):
        raise Invalid(summary, issues=issues)
    raise Unprocessable(summary, issues=issues)


def check_issues(resource: dict[str, Any]) -> list[Issue]:
    """Walker and model issues, one per expression (the walker's message wins)."""
    issues = check_elements(resource)
    seen = {issue.expression for issue in issues}
    if not any(issue.code == "structure" and issue.expression == (resource.get("resourceType"),) for issue in issues):
        for issue in check_structure(resource):
            if issue.expression not in seen and not _covered(issue, seen):
                issues.append(issue)
                seen.add(issue.expression)
    return issues


def _covered(issue: Issue, seen: set[tuple[str, ...]]) -> bool:
    """A model issue above or below a path the walker already reported adds nothing."""
    path = issue.expression[0] if issue.expression else ""
    return any(expr and (_within(path, expr[0]) or _within(expr[0], path)) for expr in seen)


def _within(path: str, ancestor: str) -> bool:
    return path.startswith(ancestor + ".") or path.startswith(ancestor + "[")
