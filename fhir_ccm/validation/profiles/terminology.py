"""Bindings (terminologies.html#strength): is the code of an element in its ValueSet?

A required binding the value breaks is an error, extensible a warning,
preferred an information; example bindings are not checked. ValueSets that
cannot be enumerated (``expand`` gives None: SNOMED CT filters, BCP-47, UCUM...)
are not checked rather than wrongly refused. Expansions come from the registry
(its own ValueSets and CodeSystems first, then the vendored R4 ones).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any

Expansion = frozenset[tuple[str, str]]
Expander = Callable[[str], Expansion | None]

SEVERITY = {"required": "error", "extensible": "warning", "preferred": "information"}
CODED_TYPES = frozenset({"code", "string", "uri", "Coding", "CodeableConcept", "Quantity"})


def member(value: Any, type_code: str, expansion: Expansion) -> bool | None:
    """Whether a code, Coding, CodeableConcept or Quantity is in ``expansion``; None when it has no code."""
    if isinstance(value, str):
        return value in codes_of(expansion)
    if not isinstance(value, dict):
        return None
    if type_code == "CodeableConcept" or "coding" in value:
        listed = value.get("coding")
        codings = [c for c in listed if isinstance(c, dict) and c.get("code")] if isinstance(listed, list) else []
        if not codings:
            return None
        return any(_coding_member(coding, expansion) for coding in codings)
    if value.get("code") is None:
        return None
    return _coding_member(value, expansion)


def _coding_member(coding: dict[str, Any], expansion: Expansion) -> bool:
    system, code = coding.get("system"), coding.get("code")
    if not isinstance(code, str) or not isinstance(system, (str, type(None))):
        return False  # a malformed Coding: the walk reports its values
    if system is None:
        return code in codes_of(expansion)
    return (system, code) in expansion


@lru_cache(maxsize=1024)
def codes_of(expansion: Expansion) -> frozenset[str]:
    """The codes of an expansion whatever their system (a frozenset hashes once, so the lookup is cheap)."""
    return frozenset(code for _, code in expansion)


def binding_problem(strength: str, value_set: str, value: Any, type_code: str, expand: Expander) -> str | None:
    """A message when ``value`` breaks the binding (its severity is ``SEVERITY[strength]``), else None."""
    if strength not in SEVERITY or type_code not in CODED_TYPES:
        return None
    expansion = expand(value_set)
    if expansion is None:
        return None
    result = member(value, type_code, expansion)
    if result is True:
        return None
    wording = {"required": "must", "extensible": "should", "preferred": "should preferably"}[strength]
    if result is None:
        if type_code != "CodeableConcept" or not isinstance(value, dict):
            return None
        return f"No code is provided, and a code {wording} come from the value set {value_set} ({strength} binding)"
    shown = value if isinstance(value, str) else ", ".join(_codes(value))
    return f"The code '{shown}' is not in the value set {value_set} ({strength} binding)"


def _codes(value: dict[str, Any]) -> Iterator[str]:
    listed = value.get("coding") if "coding" in value else [value]
    codings: Iterable[Any] = listed if isinstance(listed, list) else ()
    for coding in codings:
        if isinstance(coding, dict):
            system = coding.get("system")
            yield f"{system}#{coding.get('code')}" if system else str(coding.get("code"))


# --------------------------------------------------------------------------- expansion of registry ValueSets


def expand_value_set(
    value_set: dict[str, Any],
    code_system: Callable[[str], dict[str, Any] | None],
    expand_other: Expander,
) -> Expansion | None:
    """The codes of a ValueSet resource (compose with concept lists, whole systems, is-a filters, imports)."""
    if "compose" not in value_set:
        contains = (value_set.get("expansion") or {}).get("contains")
        if contains is None:
            return None
        return frozenset((c.get("system", ""), c["code"]) for c in _flatten(contains, "contains") if "code" in c)
    codes: set[tuple[str, str]] = set()
    compose = value_set["compose"]
    for part in compose.get("include", ()):
        included = _include(part, code_system, expand_other)
        if included is None:
            return None
        codes |= included
    for part in compose.get("exclude", ()):
        excluded = _include(part, code_system, expand_other)
        if excluded is not None:
            codes -= excluded
    return frozenset(codes)


def _flatten(concepts: Iterable[dict[str, Any]], key: str = "concept") -> Iterator[dict[str, Any]]:
    for concept in concepts:
        yield concept
        yield from _flatten(concept.get(key, ()), key)


def _include(
    part: dict[str, Any], code_system: Callable[[str], dict[str, Any] | None], expand_other: Expander
) -> Expansion | None:
    result: Expansion | None = None
    system = part.get("system")
    if system:
        if "concept" in part:
            result = frozenset((system, c["code"]) for c in part["concept"])
        else:
            resource = code_system(system)
            if resource is None or resource.get("content") not in ("complete", None):
                return None
            concepts = list(_flatten(resource.get("concept", ())))
            selected = {c["code"] for c in concepts}
            for rule in part.get("filter", ()):
                if rule.get("property") != "concept" or rule.get("op") not in ("is-a", "descendent-of"):
                    return None
                selected &= _descendants(resource.get("concept", ()), rule.get("value"), rule.get("op") == "is-a")
            result = frozenset((system, code) for code in selected)
    for url in part.get("valueSet", ()):
        imported = expand_other(url.split("|", 1)[0])
        if imported is None:
            return None
        result = imported if result is None else result & imported
    return result


def _descendants(concepts: Iterable[dict[str, Any]], code: Any, include_self: bool) -> set[str]:
    for concept in _flatten(concepts):
        if concept.get("code") == code:
            below = {c["code"] for c in _flatten(concept.get("concept", ()))}
            return below | {code} if include_self else below
    return set()
