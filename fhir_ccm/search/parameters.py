"""The search parameters of each resource type, from the official R4 definitions.

A SearchParameter shared by several types (``clinical-patient``) carries one
FHIRPath expression joined by ``|`` over all of them; each type gets only the
terms rooted in it (or in ``Resource``), so evaluating a parameter for a
CarePlan never walks Observation paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache

from fhir_ccm.definitions import resource_types, search_parameters

# Kinds the server indexes and searches; ``special`` (Location near) is not served.
SUPPORTED_TYPES = frozenset({"token", "string", "date", "reference", "quantity", "number", "uri", "composite"})
COMMON_BASES = ("Resource", "DomainResource")


@dataclass(frozen=True)
class SearchParam:
    code: str
    type: str  # token | string | date | reference | quantity | number | uri | composite
    resource_type: str  # the type this parameter is resolved for
    expression: str  # FHIRPath restricted to this type
    url: str
    targets: tuple[str, ...] = ()  # reference target types
    components: tuple[tuple[str, str], ...] = ()  # composite: (definition url, expression)


def nesting(expression: str) -> Iterator[tuple[int, str, int]]:
    """(position, character, parenthesis depth after it) of each character outside quoted strings."""
    depth, quoted = 0, False
    for index, char in enumerate(expression):
        if char == "'":
            quoted = not quoted
            continue
        if quoted:
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        yield index, char, depth


def split_union(expression: str) -> list[str]:
    """Split a FHIRPath expression at its top-level ``|`` operators."""
    terms, start = [], 0
    for index, char, depth in nesting(expression):
        if char == "|" and depth == 0:
            terms.append(expression[start:index].strip())
            start = index + 1
    terms.append(expression[start:].strip())
    return [term for term in terms if term]


def term_root(term: str) -> str:
    """The type a term starts from: ``(CarePlan.x as y)`` and ``CarePlan.x`` both give CarePlan."""
    stripped = term.lstrip("(").strip()
    end = 0
    while end < len(stripped) and (stripped[end].isalnum() or stripped[end] == "_"):
        end += 1
    return stripped[:end]


def terms_for(expression: str, resource_type: str) -> list[str]:
    return [term for term in split_union(expression) if term_root(term) in (resource_type, *COMMON_BASES)]


@cache
def _by_url() -> dict[str, dict]:
    return {sp["url"]: sp for sp in search_parameters()}


@cache
def _by_base() -> dict[str, list[dict]]:
    """SearchParameter definitions by base type, in their vendored order."""
    grouped: dict[str, list[dict]] = {}
    for definition in search_parameters():
        for base in definition.get("base", []):
            grouped.setdefault(base, []).append(definition)
    return grouped


@cache
def parameters_for(resource_type: str) -> dict[str, SearchParam]:
    """Every search parameter the server honours for ``resource_type``, by code."""
    result: dict[str, SearchParam] = {}
    grouped = _by_base()
    candidates = [*grouped.get(resource_type, []), *(d for base in COMMON_BASES for d in grouped.get(base, []))]
    for definition in sorted(candidates, key=lambda d: d["url"]):
        bases = definition.get("base", [])
        if definition.get("id") == "example" or not definition.get("expression"):
            continue
        if definition.get("type") not in SUPPORTED_TYPES:
            continue
        if resource_type not in bases and not any(base in COMMON_BASES for base in bases):
            continue
        terms = terms_for(definition["expression"], resource_type)
        if not terms:
            continue
        result[definition["code"]] = SearchParam(
            code=definition["code"],
            type=definition["type"],
            resource_type=resource_type,
            expression=" | ".join(terms),
            url=definition["url"],
            targets=tuple(definition.get("target", ())),
            components=tuple((c["definition"], c["expression"]) for c in definition.get("component", [])),
        )
    return result


def common_parameters() -> dict[str, SearchParam]:
    """Parameters every type has (``_id``, ``_lastUpdated``, ``_tag``...), usable in system search."""
    return {code: p for code, p in parameters_for("Patient").items() if code.startswith("_")}


def component_parameter(url: str, resource_type: str) -> SearchParam | None:
    """The parameter a composite's component refers to."""
    definition = _by_url().get(url)
    if definition is None:
        return None
    return parameters_for(resource_type).get(definition["code"])


@cache
def all_parameter_codes() -> frozenset[str]:
    return frozenset(code for resource_type in resource_types() for code in parameters_for(resource_type))
