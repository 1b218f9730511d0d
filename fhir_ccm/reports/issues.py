"""The ``validate`` command's output: a verdict per resource and its issues as an aligned table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fhir_ccm.errors import Issue, printable

ERRORS = ("fatal", "error")
HEADERS = ("severity", "code", "where", "message")


@dataclass(frozen=True)
class Validated:
    """The issues of one resource read from ``where`` (a file, and a line of an ndjson file)."""

    where: str
    label: str  # Type/id, or what could not be read
    issues: tuple[Issue, ...]

    @property
    def errors(self) -> int:
        return sum(issue.severity in ERRORS for issue in self.issues)

    @property
    def warnings(self) -> int:
        return sum(issue.severity == "warning" for issue in self.issues)


def label(resource: Any) -> str:
    """``CarePlan/ccm-garcia-careplan-primary-care``, or the type alone when there is no id."""
    if not isinstance(resource, dict):
        return "(not a resource)"
    resource_type = str(resource.get("resourceType", "?"))
    return f"{resource_type}/{resource['id']}" if isinstance(resource.get("id"), str) else resource_type


def issue_table(issues: Sequence[Issue], indent: str = "    ") -> str:
    """One aligned row per issue: severity, code, where (the FHIRPath expression) and the message."""
    rows = [
        (issue.severity, issue.code, ", ".join(issue.expression) or "-", printable(issue.diagnostics))
        for issue in issues
    ]
    widths = [max(len(row[i]) for row in [HEADERS, *rows]) for i in range(3)]

    def line(row: Sequence[str]) -> str:
        return indent + "  ".join([*(cell.ljust(width) for cell, width in zip(row, widths, strict=False)), row[3]])

    return "\n".join([line(HEADERS), *(line(row) for row in rows)])


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def verdict(result: Validated) -> str:
    """``PASS path CarePlan/x`` or ``FAIL path CarePlan/x (2 errors, 1 warning)``."""
    status = "FAIL" if result.errors else "PASS"
    counts = [_counted(result.errors, "error")] if result.errors else []
    if result.warnings:
        counts.append(_counted(result.warnings, "warning"))
    suffix = f"  ({', '.join(counts)})" if counts else ""
    return f"{status}  {result.where}  {result.label}{suffix}"


def render(results: Sequence[Validated], quiet: bool = False) -> str:
    """Every resource's verdict with its issues (``quiet``: only the resources with errors), then a summary."""
    lines: list[str] = []
    for result in results:
        if quiet and not result.errors:
            continue
        lines.append(verdict(result))
        if result.issues:
            lines.append(issue_table(result.issues))
    failed = sum(1 for result in results if result.errors)
    errors = sum(result.errors for result in results)
    warnings = sum(result.warnings for result in results)
    if lines:
        lines.append("")
    lines.append(
        f"{_counted(len(results), 'resource')}: {len(results) - failed} valid, {failed} invalid;"
        f" {_counted(errors, 'error')}, {_counted(warnings, 'warning')}"
    )
    return "\n".join(lines)
