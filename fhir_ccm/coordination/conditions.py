"""C1: the problems a unified plan addresses, one per condition code.

Conditions that share a coding (system and code) are one problem, whichever
provider recorded them; a reference to a Condition that was not passed in is
kept as it is, once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fhir_ccm.coordination.references import reference_key, reference_label
from fhir_ccm.coordination.sources import Sources
from fhir_ccm.coordination.unions import Unions


@dataclass(frozen=True)
class Problem:
    """One problem-list entry: the Condition cited for it and every Condition it stands for."""

    key: str
    reference: dict[str, Any]
    display: str | None
    members: tuple[str, ...]


def condition_codes(condition: dict[str, Any]) -> frozenset[tuple[str, str]]:
    codings = (condition.get("code") or {}).get("coding") or []
    return frozenset(
        (c["system"], c["code"])
        for c in codings
        if isinstance(c, dict) and isinstance(c.get("system"), str) and isinstance(c.get("code"), str)
    )


def condition_display(condition: dict[str, Any]) -> str | None:
    code = condition.get("code") or {}
    if isinstance(code.get("text"), str):
        return str(code["text"])
    return next((c["display"] for c in code.get("coding") or [] if isinstance(c.get("display"), str)), None)


def unify_problems(references: Iterable[Any], sources: Sources) -> tuple[Problem, ...]:
    """The distinct problems behind ``references`` (CarePlan.addresses), sorted by the Condition cited."""
    given: dict[str, dict[str, Any]] = {}
    for reference in references:
        if isinstance(reference, dict):
            key = reference_key(reference) or "unresolvable:" + json.dumps(reference, sort_keys=True, default=str)
            given.setdefault(key, reference)
    unions = Unions(given)
    by_code: dict[tuple[str, str], str] = {}
    for key in sorted(given):
        condition = sources.lookup.get(key)
        if condition is None or condition.get("resourceType") != "Condition":
            continue
        for code in sorted(condition_codes(condition)):
            if code in by_code:
                unions.join(by_code[code], key)
            else:
                by_code[code] = key
    problems = []
    for members in unions.groups():
        key = members[0]
        condition = sources.lookup.get(key)
        display = (condition_display(condition) if condition else None) or reference_label(given[key])
        if key.startswith("unresolvable:"):
            reference = dict(given[key])
        else:
            reference = {"reference": key, **({"display": display} if display else {})}
        problems.append(Problem(key, reference, display, members))
    return tuple(problems)
