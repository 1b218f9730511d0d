"""Expansions of the vendored ValueSets that elements bind as ``required``.

An expansion is a frozenset of ``(system, code)`` pairs, or ``None`` when the
ValueSet cannot be enumerated from the vendored CodeSystems (BCP-47 languages,
MIME types, UCUM...): such bindings are not checked rather than wrongly refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cache
from typing import Any

from fhir_ccm.definitions import code_systems, value_sets

Expansion = frozenset[tuple[str, str]]


def _concepts(concepts: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for concept in concepts:
        yield concept
        yield from _concepts(concept.get("concept", []))


def _descendants(concepts: Iterable[dict[str, Any]], code: str, include_self: bool) -> set[str]:
    for concept in _concepts(concepts):
        if concept["code"] == code:
            found = {c["code"] for c in _concepts(concept.get("concept", []))}
            return found | {code} if include_self else found
    return set()


def _whole_system(system: str) -> Expansion | None:
    code_system = code_systems().get(system)
    if code_system is None or code_system.get("content") != "complete":
        return None
    return frozenset((system, concept["code"]) for concept in _concepts(code_system.get("concept", [])))


def _filtered(system: str, filters: list[dict[str, Any]]) -> Expansion | None:
    code_system = code_systems().get(system)
    if code_system is None or code_system.get("content") != "complete":
        return None
    codes: set[str] | None = None
    for rule in filters:
        if rule.get("property") != "concept" or rule.get("op") not in ("is-a", "descendent-of"):
            return None
        found = _descendants(code_system.get("concept", []), rule["value"], rule["op"] == "is-a")
        codes = found if codes is None else codes & found
    return frozenset((system, code) for code in codes or ())


def _include(part: dict[str, Any]) -> Expansion | None:
    result: Expansion | None = None
    if "system" in part:
        system = part["system"]
        if "concept" in part:
            result = frozenset((system, concept["code"]) for concept in part["concept"])
        elif "filter" in part:
            result = _filtered(system, part["filter"])
        else:
            result = _whole_system(system)
        if result is None:
            return None
    for url in part.get("valueSet", []):
        imported = expand(url.split("|", 1)[0])
        if imported is None:
            return None
        result = imported if result is None else result & imported
    return result


@cache
def expand(url: str) -> Expansion | None:
    """The codes of a vendored ValueSet, or ``None`` when they cannot be listed."""
    value_set = value_sets().get(url)
    if value_set is None:
        return None
    if "expansion" in value_set and "compose" not in value_set:
        return frozenset((c["system"], c["code"]) for c in value_set["expansion"].get("contains", []))
    codes: set[tuple[str, str]] = set()
    compose = value_set.get("compose", {})
    for part in compose.get("include", []):
        included = _include(part)
        if included is None:
            return None
        codes |= included
    for part in compose.get("exclude", []):
        excluded = _include(part)
        if excluded is not None:
            codes -= excluded
    return frozenset(codes)


@cache
def expand_codes(url: str) -> frozenset[str] | None:
    """The bare codes of a ValueSet, for ``code`` elements whose system is implied."""
    expansion = expand(url)
    return None if expansion is None else frozenset(code for _, code in expansion)
