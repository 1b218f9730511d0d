"""Invariants (``ElementDefinition.constraint``) compiled once, with the engine chosen per expression.

Three ways an invariant is checked:

- *native code* for the generic ones every element or resource carries
  (``ele-1``, ``dom-2`` ... ``dom-6``, ``ref-1`` on every Reference) and for the narrative (``txt-1``,
  ``txt-2``, whose expression is the opaque ``htmlChecks()``): the walkers
  implement them directly (``NATIVE``);
- compiled FHIRPath, by the native compiler (``fhirpath.py``) when it covers the
  expression, else by fhirpathpy (``fallback.py``);
- not at all, for the expressions in ``SKIPPED``: each cannot be evaluated
  faithfully and would report errors on valid resources, so it is listed here
  with the reason instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from fhir_ccm.validation.profiles.fallback import Fallback, compile_fallback
from fhir_ccm.validation.profiles.fhirpath import Env, FHIRPathSyntaxError, compile_native, evaluate_boolean
from fhir_ccm.validation.profiles.functions import Fn, Unsupported
from fhir_ccm.validation.profiles.values import Item

NATIVE: dict[str, str] = {
    "ele-1": "every element has a value or children: checked on each value by the walk",
    "dom-2": "a contained resource has no contained resources: checked with the contained rules",
    "dom-3": "a contained resource is referenced from the container (or refers to it): checked natively",
    "dom-4": "a contained resource has no meta.versionId or meta.lastUpdated: checked natively",
    "dom-5": "a contained resource has no security labels: checked natively",
    "dom-6": "a resource should have a narrative: checked natively on the root and Bundle entries",
    "txt-1": "the narrative holds only the allowed XHTML: htmlChecks() is implemented by narrative.py",
    "txt-2": "the narrative has non-whitespace content: htmlChecks() is implemented by narrative.py",
    "ref-1": "a local reference (#id) names a contained resource: checked natively with the reference's form",
}


@dataclass(frozen=True)
class Skip:
    """An invariant not evaluated, and why."""

    expression: str
    reason: str


SKIPPED: dict[str, Skip] = {
    "con-3": Skip(
        "clinicalStatus.exists() or verificationStatus.coding.where(system='http://terminology.hl7.org/CodeSystem/"
        "condition-ver-status' and code = 'entered-in-error').exists() or category.select($this='problem-list-item')"
        ".empty()",
        "compares each category (a CodeableConcept) with the string 'problem-list-item'; evaluated as written it "
        "fails every Condition that has any category and no clinicalStatus, which is not what the rule means "
        "(only problem-list items need a clinicalStatus)",
    ),
}


@dataclass(frozen=True)
class Invariant:
    """One compiled constraint."""

    key: str
    severity: str  # error | warning
    human: str
    expression: str
    engine: str  # native | fhirpathpy | skipped | natively-coded
    reason: str = ""
    native: Fn | None = field(default=None, repr=False, compare=False)
    fallback: Fallback | None = field(default=None, repr=False, compare=False)

    def evaluate(self, item: Item, env: Env) -> bool | None:
        """True, False, or None when the result is empty; raises ``EvaluationError``."""
        if self.native is not None:
            return evaluate_boolean(self.native, item, env)
        if self.fallback is not None:
            env.context = item
            return self.fallback(item, env)
        return None

    @property
    def checked(self) -> bool:
        return self.native is not None or self.fallback is not None


@lru_cache(maxsize=8192)
def compile_invariant(key: str, severity: str, human: str, expression: str) -> Invariant:
    """Compile once; the same constraint in many elements shares the result."""
    if key in NATIVE:
        return Invariant(key, severity, human, expression, "natively-coded", NATIVE[key])
    skip = SKIPPED.get(key)
    if skip is not None and skip.expression == expression:
        return Invariant(key, severity, human, expression, "skipped", skip.reason)
    if not expression:
        return Invariant(key, severity, human, expression, "skipped", "the constraint has no FHIRPath expression")
    try:
        return Invariant(key, severity, human, expression, "native", native=compile_native(expression))
    except Unsupported as error:
        reason = f"native compiler: {error} is not supported"
    except FHIRPathSyntaxError as error:  # fhirpathpy shares the grammar, and would silently half-parse it
        return Invariant(key, severity, human, expression, "skipped", f"the expression does not parse: {error}")
    try:
        return Invariant(key, severity, human, expression, "fhirpathpy", reason, fallback=compile_fallback(expression))
    except Exception as error:
        return Invariant(key, severity, human, expression, "skipped", f"fhirpathpy cannot compile it: {error}")


def from_constraint(constraint: dict[str, Any]) -> Invariant:
    return compile_invariant(
        constraint.get("key", "?"),
        constraint.get("severity", "error"),
        constraint.get("human", ""),
        constraint.get("expression", ""),
    )
