"""What a detector reports: conflict types, their codes, and the ``Conflict`` value.

Every detector is a ``Rule`` in a table with a small predicate; a predicate
answers a ``Finding`` (why the two sides disagree) or None. Tables are tried
in order and the first finding wins, so a pair of sides gets at most one
conflict.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from fhir_ccm.coordination.references import SourceRef

CONFLICT_SYSTEM = "http://fhir-ccm.org/CodeSystem/conflict-type"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

# Conflict types in report order, with their displays.
CONFLICT_TYPES: dict[str, str] = {
    "duplicate-therapy": "Duplicate therapy",
    "dose-conflict": "Dose conflict",
    "status-conflict": "Status conflict",
    "goal-conflict": "Goal conflict",
    "careteam-identity-conflict": "Care team identity conflict",
    "invalid-identifier": "Invalid identifier",
}

# The v3-ActCode detected-issue codes the rules use, with their displays.
ACT_CODES: dict[str, str] = {
    "DUPTHPY": "Duplicate Therapy Alert",
    "DUPTHPCLS": "duplicate therapeutic class alert",
    "DUPTHPGEN": "duplicate generic alert",
    "DOSE": "Dosage problem",
    "DOSEIVL": "Dose-Interval Alert",
    "KEY205": "Duplicate key identifier",
    "FORMAT": "invalid format",
}

SEVERITIES = ("high", "moderate", "low")


@dataclass(frozen=True)
class Rule:
    """One row of a detector table: the issue's rule name and what it reports."""

    name: str
    type: str
    act_code: str | None
    severity: str


@dataclass(frozen=True)
class Finding:
    """Why two sides disagree; ``severity`` overrides the rule's when the rule grades it."""

    reason: str
    severity: str | None = None


@dataclass(frozen=True)
class Conflict:
    """One disagreement: its rule, and every implicated source with what that source says."""

    rule: str
    type: str
    act_code: str | None
    severity: str
    subject: str
    reason: str
    statements: tuple[tuple[SourceRef, str], ...]

    @classmethod
    def of(cls, rule: Rule, finding: Finding, subject: str, statements: list[tuple[SourceRef, str]]) -> Conflict:
        ordered = tuple(sorted(set(statements)))
        return cls(
            rule.name, rule.type, rule.act_code, finding.severity or rule.severity, subject, finding.reason, ordered
        )

    @property
    def implicated(self) -> tuple[SourceRef, ...]:
        return tuple(source for source, _ in self.statements)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(source.key for source in self.implicated)

    def identity(self) -> str:
        """Stable across runs and input orders: the type and the unversioned implicated keys."""
        text = "|".join((self.type, *self.keys))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    def detail(self) -> str:
        said = "; ".join(f"{source.label()}: {statement}" for source, statement in self.statements)
        return f"{self.subject}: {self.reason}. {said}."

    def sort_key(self) -> tuple[int, tuple[str, ...], str]:
        return list(CONFLICT_TYPES).index(self.type), self.keys, self.rule
