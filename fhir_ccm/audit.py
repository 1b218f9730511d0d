"""The conformance audit of a store: every current resource against base R4 and its profiles.

Each resource is validated once against base R4 (its ``meta.profile`` claims set
aside), then once per profile it claims or its type requires
(``FHIR_CCM_REQUIRED_PROFILES``); the issues a profile run adds to the base run
are that profile's. A resource is valid when no run gives an error. A profile
the server does not know checks nothing: its resources count as unchecked, and
as invalid too where the policy rejects unknown claimed profiles (or the
profile is required).

The result is a JSON-ready dict (``reports/audit.py`` renders it as HTML):
totals, a row per profile and per resource type with valid/invalid counts, and
the most frequent issues (grouped by severity, code, element path without
indexes and message shape) with examples of where they occur.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fhir_ccm.errors import Issue
from fhir_ccm.formats.json_format import parse_json
from fhir_ccm.interactions.validate import ProfilePolicy
from fhir_ccm.store import Store
from fhir_ccm.validation.profiles import Registry, validate

BASE = "base"  # the key of the base R4 row
ERRORS = ("fatal", "error")
SEVERITY_ORDER = {"fatal": 0, "error": 1, "warning": 2, "information": 3}
TOP_ISSUES = 15
EXAMPLES = 3
INVALID_LISTED = 200
_INDEX = re.compile(r"\[\d+\]")
_QUOTED = re.compile(r"'[^']*'")


@dataclass
class IssueGroup:
    """Issues alike (severity, code, path without indexes, message shape), with a few examples."""

    severity: str
    code: str
    path: str
    message: str  # the first example's message
    count: int = 0
    examples: list[dict[str, str]] = field(default_factory=list)

    def add(self, reference: str, issue: Issue) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            where = issue.expression[0] if issue.expression else ""
            self.examples.append({"resource": reference, "expression": where, "message": issue.diagnostics})

    def to_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "code": self.code,
            "path": self.path,
            "message": self.message,
            "count": self.count,
            "examples": self.examples,
        }


@dataclass
class Tally:
    """Valid and invalid resources of one profile or type, and their issues."""

    resources: int = 0
    valid: int = 0
    invalid: int = 0
    unchecked: int = 0  # a profile the server does not know
    claimed: int = 0
    required: int = 0
    errors: int = 0
    warnings: int = 0
    groups: dict[tuple[str, str, str, str], IssueGroup] = field(default_factory=dict)
    profiles: Counter[str] = field(default_factory=Counter)

    def count(self, reference: str, issues: Iterable[Issue], checked: bool = True) -> bool:
        issues = list(issues)
        failed = any(issue.severity in ERRORS for issue in issues)
        self.resources += 1
        self.invalid += failed
        self.valid += not failed and checked
        self.unchecked += not checked
        for issue in issues:
            self.errors += issue.severity in ERRORS
            self.warnings += issue.severity == "warning"
            key = group_key(issue)
            group = self.groups.get(key)
            if group is None:
                group = self.groups[key] = IssueGroup(issue.severity, issue.code, key[2], issue.diagnostics)
            group.add(reference, issue)
        return failed

    def top(self, limit: int = TOP_ISSUES) -> list[dict[str, Any]]:
        ordered = sorted(self.groups.values(), key=lambda g: (SEVERITY_ORDER.get(g.severity, 9), -g.count, g.path))
        return [group.to_json() for group in ordered[:limit]]

    def counts(self) -> dict[str, int]:
        return {
            "resources": self.resources,
            "valid": self.valid,
            "invalid": self.invalid,
            "unchecked": self.unchecked,
            "errors": self.errors,
            "warnings": self.warnings,
        }


def group_key(issue: Issue) -> tuple[str, str, str, str]:
    path = _INDEX.sub("", issue.expression[0]) if issue.expression else ""
    return issue.severity, issue.code, path, _QUOTED.sub("'...'", issue.diagnostics)


def without_claims(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource with ``meta.profile`` left out, for the base run."""
    meta = resource.get("meta")
    if not isinstance(meta, dict) or "profile" not in meta:
        return resource
    rest = {key: value for key, value in meta.items() if key != "profile"}
    stripped = {key: value for key, value in resource.items() if key != "meta"}
    return {**stripped, "meta": rest} if rest else stripped


def claims(resource: dict[str, Any]) -> list[str]:
    meta = resource.get("meta")
    found = meta.get("profile") if isinstance(meta, dict) else None
    return [url for url in found if isinstance(url, str)] if isinstance(found, list) else []


class Audit:
    """Accumulates the tallies resource by resource (``audit_store`` drives it)."""

    def __init__(self, policy: ProfilePolicy, registry: Registry) -> None:
        self.policy = policy
        self.registry = registry
        self.total = Tally()
        self.base = Tally()
        self.by_type: dict[str, Tally] = {}
        self.by_profile: dict[str, Tally] = {}
        self.invalid: list[dict[str, Any]] = []

    def resource(self, resource: dict[str, Any]) -> None:
        resource_type = str(resource.get("resourceType"))
        reference = f"{resource_type}/{resource.get('id')}"
        bare = without_claims(resource)
        base_issues = validate(bare, (), self.registry)
        self.base.count(reference, base_issues)
        all_issues = list(base_issues)
        claimed, required = claims(resource), self.policy.required.get(resource_type, ())
        profiles = []
        for url in dict.fromkeys([*claimed, *required]):
            issues, checked = self.profile_issues(resource, url, base_issues, url in required)
            tally = self.by_profile.setdefault(url, Tally())
            tally.claimed += url in claimed
            tally.required += url in required
            tally.profiles[resource_type] += 1
            tally.count(reference, issues, checked)
            all_issues += issues
            profiles.append(url)
        type_tally = self.by_type.setdefault(resource_type, Tally())
        type_tally.profiles.update(profiles)
        if self.total.count(reference, all_issues) and len(self.invalid) < INVALID_LISTED:
            errors = [issue for issue in all_issues if issue.severity in ERRORS]
            self.invalid.append(
                {"resource": reference, "errors": len(errors), "profiles": profiles, "first": errors[0].diagnostics}
            )
        type_tally.count(reference, all_issues)

    def profile_issues(
        self, resource: dict[str, Any], url: str, base_issues: list[Issue], required: bool
    ) -> tuple[list[Issue], bool]:
        """What a profile adds to the base issues of ``resource`` (claims set aside), and whether it was checked."""
        resource_type = str(resource.get("resourceType"))
        if self.registry.profile(url) is None:
            why = self.registry.problem(url)
            severity = "error" if required or self.policy.unknown == "reject" else "warning"
            message = f"The profile {url} is not known{f' ({why})' if why else ''}"
            claimed = claims(resource)
            where = f"{resource_type}.meta.profile[{claimed.index(url)}]" if url in claimed else resource_type
            return [Issue(severity, "not-found", message, (where,))], False
        seen = set(base_issues)
        return [issue for issue in validate(without_claims(resource), [url], self.registry) if issue not in seen], True

    def report(self, source: str) -> dict[str, Any]:
        return {
            "title": "Conformance audit",
            "source": source,
            "generated": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "settings": {
                "unknownProfiles": self.policy.unknown,
                "requiredProfiles": {key: list(value) for key, value in self.policy.required.items()},
            },
            "summary": {**self.total.counts(), "profiled": sum(t.resources for t in self.by_profile.values())},
            "profiles": [self.profile_row(url, tally) for url, tally in sorted(self.by_profile.items())],
            "types": [
                {"type": name, **tally.counts(), "profiles": sorted(tally.profiles)}
                for name, tally in sorted(self.by_type.items())
            ],
            "base": {**self.base.counts(), "issues": self.base.top()},
            "issues": self.total.top(),
            "invalid": self.invalid,
        }

    def profile_row(self, url: str, tally: Tally) -> dict[str, Any]:
        definition = self.registry.structure_definition(url) if self.registry.profile(url) is not None else None
        return {
            "url": url,
            "title": str((definition or {}).get("title") or (definition or {}).get("name") or url),
            "known": definition is not None,
            "types": sorted(tally.profiles),
            "claimed": tally.claimed,
            "required": tally.required,
            **tally.counts(),
            "issues": tally.top(),
        }


def audit_store(store: Store, policy: ProfilePolicy, source: str = "") -> dict[str, Any]:
    """The conformance report of every current resource of ``store`` (see the module docstring)."""
    audit = Audit(policy, policy.registry())
    for version in store.iter_current():
        if version.json is not None:
            audit.resource(parse_json(version.json))
    return audit.report(source)
