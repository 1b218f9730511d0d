"""Conditional create, update, delete and patch (http://hl7.org/fhir/R4/http.html#ccreate).

The search that decides and the write it leads to run in the same write
transaction, taken before the search: two clients sending the same conditional
create at once serialize on the write lock, and the second finds what the first
wrote. Matching rules: none, one or several matches, as the spec says; several
is 412 (or, for delete, several deletions when the server allows it).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

from fhir_ccm.errors import Invalid, NotFound, PreconditionFailed
from fhir_ccm.ids import new_id
from fhir_ccm.interactions import NO_PRECONDITIONS, Context, Preconditions, Result
from fhir_ccm.interactions.delete import delete
from fhir_ccm.interactions.patch import patch
from fhir_ccm.interactions.resource_types import require_type, require_writable_type
from fhir_ccm.interactions.search import ValueSets
from fhir_ccm.interactions.update import update
from fhir_ccm.interactions.versions import prepare_resource, write_deletion, write_resource
from fhir_ccm.search.parse import parse_search
from fhir_ccm.store import Store

MAX_MULTIPLE_DELETE = 1000
NOT_CRITERIA = frozenset(
    {"_count", "_sort", "_include", "_revinclude", "_summary", "_elements", "_total", "_contained"}
)


def criteria_params(criteria: str, resource_type: str = "") -> list[tuple[str, str]]:
    """``identifier=sys|1&status=active`` (also written ``Patient?identifier=...``) as pairs; never empty."""
    if resource_type and criteria.startswith(f"{resource_type}?"):
        criteria = criteria[len(resource_type) :]
    params = parse_qsl(criteria.lstrip("?"), keep_blank_values=True, strict_parsing=False)
    if not params:
        raise Invalid("A conditional interaction needs search criteria")
    for name, _ in params:
        if name in NOT_CRITERIA:
            raise Invalid(f"'{name}' is not a criterion")
    return params


def matching_ids(store: Store, resource_type: str, criteria: str, limit: int = 2, base_url: str = "") -> list[str]:
    """Ids of up to ``limit`` live resources matching ``criteria``; run inside ``store.atomic()``."""
    params = criteria_params(criteria, resource_type)
    query = parse_search((resource_type,), params, value_sets=ValueSets(store, base_url))
    page = store.search(replace(query, count=limit), base_url, first_page_only=True)
    return [version.id for version in page.matches]


def conditional_create(
    store: Store, context: Context, resource_type: str, resource: dict[str, Any], if_none_exist: str
) -> Result:
    """Create unless a resource matches ``If-None-Exist``; one match answers 200 with it."""
    require_writable_type(resource_type)
    if resource.get("resourceType") != resource_type:
        raise Invalid(f"The body is a {resource.get('resourceType')} but the URL is for {resource_type}")
    prepared = prepare_resource(resource, new_id())
    with store.atomic():
        found = matching_ids(store, resource_type, if_none_exist, base_url=context.base_url)
        if len(found) > 1:
            raise PreconditionFailed(f"If-None-Exist '{if_none_exist}' matches several {resource_type} resources")
        if found:
            existing = store.read(resource_type, found[0])
            return Result(200, existing, location=True, message=f"{resource_type}/{found[0]} already exists")
        stored = write_resource(store, prepared, None, "POST")
    return Result(201, stored, location=True, message=f"Created {resource_type}/{stored.id}")


def conditional_update(
    store: Store,
    context: Context,
    resource_type: str,
    criteria: str,
    resource: dict[str, Any],
    preconditions: Preconditions = NO_PRECONDITIONS,
) -> Result:
    """``PUT [type]?criteria``: update the one match, create when none, 412 when several."""
    require_writable_type(resource_type)
    with store.atomic():
        found = matching_ids(store, resource_type, criteria, base_url=context.base_url)
        if len(found) > 1:
            raise PreconditionFailed(f"'{criteria}' matches several {resource_type} resources")
        if found:
            if "id" in resource and resource["id"] != found[0]:
                raise Invalid(f"The body id '{resource['id']}' is not the matching resource {found[0]}")
            return update(store, context, resource_type, found[0], {**resource, "id": found[0]}, preconditions)
        id = resource.get("id") or new_id()
        current = store.read(resource_type, id)
        if current is not None and not current.deleted:
            raise PreconditionFailed(f"{resource_type}/{id} exists but does not match '{criteria}'")
        return update(store, context, resource_type, id, {**resource, "id": id}, preconditions)


def conditional_delete(
    store: Store,
    context: Context,
    resource_type: str,
    criteria: str,
    allow_multiple: bool = False,
    preconditions: Preconditions = NO_PRECONDITIONS,
) -> Result:
    """``DELETE [type]?criteria``: none is a no-op, one is deleted, several is 412 unless allowed."""
    require_type(resource_type)
    with store.atomic():
        limit = MAX_MULTIPLE_DELETE + 1 if allow_multiple else 2
        found = matching_ids(store, resource_type, criteria, limit, context.base_url)
        if len(found) > 1 and not allow_multiple:
            raise PreconditionFailed(f"'{criteria}' matches several {resource_type} resources")
        if len(found) > MAX_MULTIPLE_DELETE:
            raise PreconditionFailed(f"'{criteria}' matches more than {MAX_MULTIPLE_DELETE} resources")
        if len(found) == 1:
            return delete(store, context, resource_type, found[0], preconditions)
        for id in found:
            current = store.read(resource_type, id)
            if current is not None and not current.deleted:
                write_deletion(store, current)
    message = f"Deleted {len(found)} {resource_type} resource(s)" if found else "Nothing matched"
    return Result(204, None, message=message)


def conditional_patch(
    store: Store,
    context: Context,
    resource_type: str,
    criteria: str,
    document: Any,
    preconditions: Preconditions = NO_PRECONDITIONS,
) -> Result:
    """``PATCH [type]?criteria``: patch the one match; none is 404, several 412."""
    require_writable_type(resource_type)
    with store.atomic():
        found = matching_ids(store, resource_type, criteria, base_url=context.base_url)
        if not found:
            raise NotFound(f"No {resource_type} matches '{criteria}'")
        if len(found) > 1:
            raise PreconditionFailed(f"'{criteria}' matches several {resource_type} resources")
        return patch(store, context, resource_type, found[0], document, preconditions)
