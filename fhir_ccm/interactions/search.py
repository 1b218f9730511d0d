"""search at type, system and compartment level (http://hl7.org/fhir/R4/http.html#search).

The searchset Bundle is assembled as JSON text around each entry's stored JSON,
so a page of results costs no parse and no re-serialization of the resources.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from urllib.parse import urlencode

from fhir_ccm.definitions import compartment_definitions, resource_types
from fhir_ccm.errors import Invalid, Issue, operation_outcome
from fhir_ccm.formats.json_format import dump_json
from fhir_ccm.interactions import Context, Result
from fhir_ccm.interactions.resource_types import require_id, require_type
from fhir_ccm.search.parse import Compartment, Criterion, ReferenceValue, SearchQuery, parse_search
from fhir_ccm.store import SearchPage, Store, StoredVersion

SearchParams = Sequence[tuple[str, str]]


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
    query = parse_search((resource_type,), params, lenient)
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
    query = parse_search(types, rest, lenient)
    if len(types) != len(resource_types()):
        query = _with_used(query, ("_type", ",".join(types)))
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
    query = parse_search((resource_type,), params, lenient)
    query = SearchQuery(**{**query.__dict__, "compartment": Compartment(compartment, compartment_id, links)})
    return _run(store, context, query, f"{compartment}/{compartment_id}/{resource_type}")


def _with_used(query: SearchQuery, pair: tuple[str, str]) -> SearchQuery:
    return SearchQuery(**{**query.__dict__, "used": (pair, *query.used)})


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
    page = store.search(query, context.base_url)
    return Result(200, json=_bundle_json(context, query, page, path))


def _link(context: Context, path: str, params: Sequence[tuple[str, str]]) -> str:
    query = urlencode(list(params))
    return f"{context.base_url}/{path}" + (f"?{query}" if query else "") if path else f"{context.base_url}?{query}"


def _bundle_json(context: Context, query: SearchQuery, page: SearchPage, path: str) -> str:
    links = [{"relation": "self", "url": _link(context, path, query.used)}]
    if page.snapshot is not None and page.total is not None:
        paging = [p for p in query.used if p[0] != "_count"] + [("_count", str(query.count))]

        def at(offset: int) -> str:
            return _link(context, path, [*paging, ("_snapshot", page.snapshot or ""), ("_offset", str(offset))])

        links.append({"relation": "first", "url": at(0)})
        if page.offset > 0:
            links.append({"relation": "previous", "url": at(max(0, page.offset - query.count))})
        if page.offset + query.count < page.total:
            links.append({"relation": "next", "url": at(page.offset + query.count)})
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
    text = dump_json(head)
    if entries:
        text = text[:-1] + ',"entry":[' + ",".join(entries) + "]}"
    return text


def _entry(context: Context, version: StoredVersion, mode: str) -> str:
    full_url = dump_json(f"{context.base_url}/{version.resource_type}/{version.id}")
    return f'{{"fullUrl":{full_url},"resource":{version.json},"search":{{"mode":"{mode}"}}}}'
