"""Checks every resource passes before it is stored.

Two walks over the resource: the element walk (``elements.py``: unknown and
mandatory elements, required bindings of codes, control characters) and the
base R4 walk of the definition-driven validator (``profiles/``) without
invariants, which checks structure and datatypes (JSON shapes, cardinality,
choices, primitive formats, references). The element walk's message wins where
both report the same place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fhir_ccm.errors import Invalid, Issue, Unprocessable
from fhir_ccm.validation.elements import check_elements
from fhir_ccm.validation.profiles import validate_parts

# Issue codes that mean "this is not a well-formed resource" (400); anything
# else, such as a code outside its required ValueSet, is a rule violation (422).
STRUCTURAL_CODES = frozenset({"structure", "required", "value", "invalid"})


def validate_resource(resource: dict[str, Any], base: Sequence[Issue] | None = None) -> None:
    """Raise with every problem of ``resource`` at once, or return quietly.

    ``base`` is what a base R4 walk already found (``profiles.validate_parts``), so
    a write checked against profiles walks the resource once for both.
    """
    issues = check_issues(resource, base)
    if not issues:
        return
    summary = f"{resource.get('resourceType', 'The resource')} is invalid: {len(issues)} problem(s)"
    if any(issue.code in STRUCTURAL_CODES for issue in issues):
        raise Invalid(summary, issues=issues)
    raise Unprocessable(summary, issues=issues)


MAX_ISSUES = 1000


def check_issues(resource: dict[str, Any], base: Sequence[Issue] | None = None) -> list[Issue]:
    """Errors of the two walks, one per expression (the element walk's message wins), at most ``MAX_ISSUES``."""
    issues = check_elements(resource)
    if len(issues) < MAX_ISSUES and not _unknown_type(issues, resource):
        reported = _Reported(issues)
        for issue in base_errors(resource) if base is None else base:
            if issue.severity in ("error", "fatal") and not reported.covers(issue):
                issues.append(issue)
                reported.add(issue)
    if len(issues) > MAX_ISSUES:
        dropped = len(issues) - MAX_ISSUES
        issues = issues[:MAX_ISSUES]
        issues.append(Issue("error", "too-costly", f"{dropped} further problem(s) are not listed"))
    return issues


def base_errors(resource: dict[str, Any]) -> list[Issue]:
    """The errors of the base R4 walk without invariants: structure and datatypes."""
    base, _ = validate_parts(resource, invariants=False)
    return [issue for issue in base if issue.severity in ("error", "fatal")]


def _unknown_type(issues: list[Issue], resource: dict[str, Any]) -> bool:
    root = (resource.get("resourceType"),)
    return any(issue.code == "structure" and issue.expression == root for issue in issues)


class _Reported:
    """The paths already reported, and their ancestors, for constant-time overlap checks.

    A base-walk issue at a path the element walk reported, below it or above it adds
    nothing. The id and extensions of primitive ``x`` are at ``_x`` for one walk and
    at ``x`` for the other: both count as ``x``.
    """

    def __init__(self, issues: list[Issue]) -> None:
        self.paths: set[str] = set()
        self.ancestors: set[str] = set()
        for issue in issues:
            self.add(issue)

    def add(self, issue: Issue) -> None:
        for path in issue.expression:
            path = _same_place(path)
            self.paths.add(path)
            self.ancestors.update(_ancestors(path))

    def covers(self, issue: Issue) -> bool:
        path = _same_place(issue.expression[0]) if issue.expression else ""
        return path in self.paths or path in self.ancestors or any(a in self.paths for a in _ancestors(path))


def _same_place(path: str) -> str:
    return path.replace("._", ".") if "._" in path else path


def _ancestors(path: str) -> list[str]:
    """``A.b[0].c`` gives ``A.b[0]``, ``A.b``, ``A``."""
    found: list[str] = []
    while True:
        cut = max(path.rfind("."), path.rfind("["))
        if cut <= 0:
            return found
        path = path[:cut]
        found.append(path)
