"""search at type, system and compartment level (http://hl7.org/fhir/R4/http.html#search).

The searchset Bundle is assembled as JSON text around each entry's stored JSON,
so a page of results costs no parse and no re-serialization of the resources.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from functools import cache
from typing import Any
from urllib.parse import urlencode

from fhir_ccm.definitions import compartment_definitions, resource_types
from fhir_ccm.errors import Invalid, Issue, operation_outcome
from fhir_ccm.formats.json_format import dump_json, parse_json, with_entries
from fhir_ccm.interactions import Context, Result
from fhir_ccm.interactions.resource_types import require_id, require_type
from fhir_ccm.search.parse import Compartment, Criterion, ReferenceValue, SearchQuery, parse_search
from fhir_ccm.store import SearchPage, Store, StoredVersion
from fhir_ccm.validation.valuesets import Expansion, expand

SearchParams = Sequence[tuple[str, str]]
# Characters left readable in Bundle links: they mean the same escaped or not.
LINK_SAFE = ":/,|$*"
MAX_VALUE_SET_NESTING = 5


@cache
def compartment_params(compartment: str, resource_type: str) -> tuple[str, ...]:
    """The parameters that put a ``resource_type`` in a ``compartment`` (R4 CompartmentDefinitions)."""
    for definition in compartment_definitions():
        if definition["code"] == compartment:
            for entry in definition.get("resource", []):
                if entry["code"] == resource_type:
                    return tuple(p for p in entry.get("param", []) if p != "{def}")
    return ()


def search_type(
    store: Store, context: Context, resource_type: str, params: SearchParams, lenient: bool = False
) -> Result:
    require_type(resource_type)
    query = parse_search((resource_type,), params, lenient, value_sets=ValueSets(store, context.base_url))
    return _run(store, context, query, resource_type)


def search_system(store: Store, context: Context, params: SearchParams, lenient: bool = False) -> Result:
    """``GET [base]?_type=CarePlan,Goal&...``: only parameters common to those types."""
    types: tuple[str, ...] = tuple(sorted(resource_types()))
    rest = []
    for name, value in params:
        if name == "_type":
            types = tuple(t.strip() for t in value.split(","))
            for resource_type in types:
                if resource_type not in resource_types():
                    raise Invalid(f"Unknown resource type '{resource_type}' in _type")
        else:
            rest.append((name, value))
    query = parse_search(types, rest, lenient, value_sets=ValueSets(store, context.base_url))
    if len(types) != len(resource_types()):
        query = replace(query, used=(("_type", ",".join(types)), *query.used))
    return _run(store, context, query, "")


def search_compartment(
    store: Store,
    context: Context,
    compartment: str,
    compartment_id: str,
    resource_type: str,
    params: SearchParams,
    lenient: bool = False,
) -> Result:
    """``GET Patient/123/CarePlan``: CarePlans in the Patient 123 compartment."""
    require_type(compartment)
    require_type(resource_type)
    require_id(compartment_id)
    links = compartment_params(compartment, resource_type)
    if not links:
        raise Invalid(f"{resource_type} is not in the {compartment} compartment")
    query = parse_search((resource_type,), params, lenient, value_sets=ValueSets(store, context.base_url))
    query = replace(query, compartment=Compartment(compartment, compartment_id, links))
    return _run(store, context, query, f"{compartment}/{compartment_id}/{resource_type}")


class ValueSets:
    """The codes of a ValueSet for ``:in`` / ``:not-in``: an R4 definition, else one stored on this server.

    A stored ValueSet is expanded from its ``expansion.contains``, or from a
    ``compose`` that lists its concepts or imports other ValueSets; one that
    includes whole or filtered code systems cannot be listed here (None).
    """

    def __init__(self, store: Store, base_url: str) -> None:
        self.store = store
        self.base_url = base_url

    def __call__(self, url: str, nesting: int = 0) -> Expansion | None:
        known = expand(url)
        if known is not None or nesting > MAX_VALUE_SET_NESTING:
            return known
        query = parse_search(("ValueSet",), [("url", url)])
        page = self.store.search(query, self.base_url)
        if not page.matches or page.matches[0].json is None:
            return None
        value_set = parse_json(page.matches[0].json)
        compose = value_set.get("compose")
        if not isinstance(compose, dict):
            contains = value_set.get("expansion", {}).get("contains")
            return frozenset(_contained(contains)) if isinstance(contains, list) else None
        codes: set[tuple[str, str]] = set()
        for key in ("include", "exclude"):
            for part in compose.get(key, []):
                found = self._part(part, nesting)
                if found is None:
                    return None
                codes = codes | found if key == "include" else codes - found
        return frozenset(codes)

    def _part(self, part: dict[str, Any], nesting: int) -> Expansion | None:
        """One ``compose.include`` or ``exclude``: its listed concepts, within the ValueSets it imports."""
        result: Expansion | None = None
        system = part.get("system")
        if system is not None:
            if "filter" in part or "concept" not in part:
                return None
            result = frozenset((system, concept["code"]) for concept in part["concept"])
        for url in part.get("valueSet", []):
            imported = self(url.split("|", 1)[0], nesting + 1)
            if imported is None:
                return None
            result = imported if result is None else result & imported
        return result


def _contained(contains: Iterable[dict[str, Any]]) -> Iterable[tuple[str, str]]:
    for item in contains:
        if "system" in item and "code" in item:
            yield item["system"], item["code"]
        yield from _contained(item.get("contains", []))


def _check_bare_ids(store: Store, criteria: Sequence[Criterion]) -> None:
    """A bare id must not exist under several of a reference parameter's target types."""
    for criterion in criteria:
        if criterion.chain is not None:
            _check_bare_ids(store, (criterion.chain,))
        if criterion.has is not None:
            _check_bare_ids(store, (criterion.has.criterion,))
        if criterion.kind != "reference" or not criterion.target_types:
            continue
        for value in criterion.values:
            if isinstance(value, ReferenceValue) and value.resource_type is None and value.id and value.url is None:
                found = store.find_ids(value.id, criterion.target_types)
                if len(found) > 1:
                    raise Invalid(
                        f"'{criterion.code}={value.id}' is ambiguous: {value.id} exists as "
                        f"{' and '.join(found)}; search with [type]/{value.id}"
                    )


def _run(store: Store, context: Context, query: SearchQuery, path: str) -> Result:
    _check_bare_ids(store, query.criteria)
    if query.count == 0 and query.summary != "count":
        query = replace(query, summary="count")  # _count=0: the total and no page of entries
    page = store.search(query, context.base_url)
    if any(version.resource_type not in query.resource_types for version in page.matches):
        raise Invalid("This _snapshot belongs to another search; follow the links of its own Bundle")
    return Result(200, json=_bundle_json(context, query, page, path))


def _link(context: Context, path: str, params: Sequence[tuple[str, str]]) -> str:
    query = urlencode(list(params), safe=LINK_SAFE)
    return f"{context.base_url}/{path}" + (f"?{query}" if query else "") if path else f"{context.base_url}?{query}"


def _bundle_json(context: Context, query: SearchQuery, page: SearchPage, path: str) -> str:
    """The searchset Bundle; once paging, every link names the snapshot and an offset into it.

    The self link of the first page is the search as understood (the parameters
    used, without ignored ones); of a later page, that page.
    """
    links = [{"relation": "self", "url": _link(context, path, query.used)}]
    if page.snapshot is not None and page.total is not None:
        paging = [p for p in query.used if p[0] != "_count"] + [("_count", str(query.count))]

        def at(offset: int) -> str:
            return _link(context, path, [*paging, ("_snapshot", page.snapshot or ""), ("_offset", str(offset))])

        if query.snapshot is not None:
            links[0]["url"] = at(page.offset)
        last = (page.total - 1) // query.count * query.count
        relations = {
            "first": 0,
            "previous": max(0, page.offset - query.count) if page.offset > 0 else None,
            "next": page.offset + query.count if page.offset + query.count < page.total else None,
            "last": last,
        }
        links += [{"relation": name, "url": at(offset)} for name, offset in relations.items() if offset is not None]
    head = {"resourceType": "Bundle", "type": "searchset"}
    if query.total != "none" and page.total is not None:
        head["total"] = page.total  # type: ignore[assignment]
    head["link"] = links  # type: ignore[assignment]
    entries = [_entry(context, version, "match") for version in page.matches]
    entries += [_entry(context, version, "include") for version in page.included]
    if query.ignored:
        outcome = operation_outcome(
            [
                Issue("warning", "not-supported", f"Unknown search parameter '{name}' was ignored")
                for name in query.ignored
            ]
        )
        entries.append(dump_json({"resource": outcome, "search": {"mode": "outcome"}}))
    return with_entries(head, entries)


def _entry(context: Context, version: StoredVersion, mode: str) -> str:
    full_url = dump_json(f"{context.base_url}/{version.resource_type}/{version.id}")
    return f'{{"fullUrl":{full_url},"resource":{version.json},"search":{{"mode":"{mode}"}}}}'
