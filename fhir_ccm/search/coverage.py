"""Parameters whose values are a part of another's, so each value is stored once.

Many R4 parameters select a part of what another one selects: ``family`` and
``given`` are parts of ``name``, ``address-city`` of ``address``, ``phone`` is
the ``telecom`` whose system is phone, ``patient`` the ``subject`` that is a
Patient, and on Patient ``phonetic`` is ``name`` itself. Stored in full, each
such value would be written twice, and every write would pay for both.

So the narrower parameter keeps its rows, the broader one stores only the
values no narrower one holds (``subtract_narrower``), and a search on the
broader one reads the rows of them all (``stored_codes``).

The index tables key rows by code, not by type, so a pair counts only when the
narrower expression selects from the broader one in every resource type that
has both codes. Rows written before this rule keep every value of the broader
parameter; the union read is then the same set of values, so a database needs
no reindex.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import fields
from functools import cache
from operator import attrgetter
from typing import get_args

from fhir_ccm.definitions import resource_types
from fhir_ccm.search.fhirpath import result_nodes
from fhir_ccm.search.parameters import SearchParam, nesting, parameters_for, split_union
from fhir_ccm.search.rows import STRING_PARTS, IndexRow


def _balanced(text: str) -> bool:
    """Parentheses outside quoted strings close in order and never below the start."""
    depths = [depth for _index, _char, depth in nesting(text)]
    return all(depth >= 0 for depth in depths) and (not depths or depths[-1] == 0)


def _part_names(path: str) -> frozenset[str]:
    """The HumanName or Address parts that yield string rows, when ``path``'s values are of one of those types."""
    nodes = result_nodes(path)
    if not nodes or len(nodes) != 1:
        return frozenset()
    (node,) = nodes
    return frozenset(name for name, _repeated in STRING_PARTS.get(node, ()))


def _term_selects_from(narrow: str, broad: str, kind: str) -> bool:
    """``narrow`` yields only values (or, for strings, parts of values) that ``broad`` yields."""
    if narrow == broad:
        return True
    if not narrow.startswith(broad):
        return False
    rest = narrow[len(broad) :]
    if rest.startswith(".where(") and rest.endswith(")"):
        return _balanced(rest[len(".where(") : -1])
    return kind == "string" and rest.startswith(".") and rest[1:] in _part_names(broad)


def selects_from(narrow: SearchParam, broad: SearchParam) -> bool:
    """Every row ``narrow`` yields for a resource is a row ``broad`` yields for it, but for its code."""
    if narrow.type != broad.type or narrow.type == "composite":
        return False
    broad_terms = split_union(broad.expression)
    return all(
        any(_term_selects_from(term, candidate, broad.type) for candidate in broad_terms)
        for term in split_union(narrow.expression)
    )


@cache
def _narrower_codes() -> dict[str, tuple[str, ...]]:
    """Broad code -> the codes that select from it in every type having both.

    Two codes that select from each other are the same values; the one first in
    alphabetical order keeps them, so no code is narrower than itself.
    """
    holds: dict[tuple[str, str], bool] = {}
    for resource_type in resource_types():
        params = parameters_for(resource_type)
        by_kind: dict[str, list[SearchParam]] = {}
        for param in params.values():
            by_kind.setdefault(param.type, []).append(param)
        for same_kind in by_kind.values():
            for broad in same_kind:
                for narrow in same_kind:
                    if narrow.code != broad.code:
                        key = (broad.code, narrow.code)
                        holds[key] = holds.get(key, True) and selects_from(narrow, broad)
    pairs = {pair for pair, held in holds.items() if held}
    narrower: dict[str, list[str]] = {}
    for broad_code, narrow_code in sorted(pairs):
        if (narrow_code, broad_code) in pairs and narrow_code < broad_code:
            continue
        narrower.setdefault(broad_code, []).append(narrow_code)
    return {code: tuple(codes) for code, codes in narrower.items()}


@cache
def stored_codes(code: str) -> tuple[str, ...]:
    """The codes whose rows together hold the values of ``code``: itself first, then its narrower ones."""
    found = [code]
    for each in found:
        found += [narrow for narrow in _narrower_codes().get(each, ()) if narrow not in found]
    return tuple(found)


def stored_codes_of(codes: Iterable[str]) -> tuple[str, ...]:
    """``stored_codes`` of several codes, each once."""
    return tuple(dict.fromkeys(stored for code in codes for stored in stored_codes(code)))


@cache
def narrower_in(resource_type: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(broad code, its narrower codes) for the parameters ``resource_type`` has."""
    params = parameters_for(resource_type)
    result = []
    for code in params:
        narrower = tuple(narrow for narrow in _narrower_codes().get(code, ()) if narrow in params)
        if narrower:
            result.append((code, narrower))
    return tuple(result)


def _value_getter(row_class: type) -> Callable[[IndexRow], object]:
    """What a row of this kind says, whichever parameter yields it: every field but its code."""
    return attrgetter(*(field.name for field in fields(row_class) if field.name != "param"))


_VALUE_OF = {row_class: _value_getter(row_class) for row_class in get_args(IndexRow)}


def subtract_narrower(resource_type: str, rows_by_code: dict[str, list[IndexRow]]) -> None:
    """Drop from each broad parameter's rows the values a narrower parameter of the same resource holds."""
    full = dict(rows_by_code)
    for broad, narrower in narrower_in(resource_type):
        own = full.get(broad)
        if not own:
            continue
        value = _VALUE_OF[type(own[0])]  # one parameter, one kind of row
        held = {value(row) for code in narrower for row in full.get(code, ())}
        if held:
            rows_by_code[broad] = [row for row in own if value(row) not in held]
