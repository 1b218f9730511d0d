"""Checks every resource passes before it is stored.

The base R4 walk of the definition-driven validator (``profiles/``) without
invariants: unknown and mandatory elements, JSON shapes, cardinality, choices,
primitive formats (empty strings, control characters, unpaired surrogates),
required bindings, reference forms and targets, narrative XHTML, nesting depth.
Every problem is reported at once with a FHIRPath-style ``expression``
(``CarePlan.activity[0].detail.status``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fhir_ccm.errors import Invalid, Issue, Unprocessable
from fhir_ccm.validation.profiles import validate_parts

# Issue codes that mean "this is not a well-formed resource" (400); anything
# else, such as a code outside its required ValueSet, is a rule violation (422).
STRUCTURAL_CODES = frozenset({"structure", "required", "value", "invalid"})
ERRORS = ("error", "fatal")
MAX_ISSUES = 1000


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


def check_issues(resource: dict[str, Any], base: Sequence[Issue] | None = None) -> list[Issue]:
    """The errors of the base walk (``base``, else a walk without invariants), at most ``MAX_ISSUES``."""
    if base is None:
        base, _ = validate_parts(resource, invariants=False)
    issues = [issue for issue in base if issue.severity in ERRORS]
    if len(issues) > MAX_ISSUES:
        dropped = len(issues) - MAX_ISSUES
        issues = issues[:MAX_ISSUES]
        issues.append(Issue("error", "too-costly", f"{dropped} further problem(s) are not listed"))
    return issues
