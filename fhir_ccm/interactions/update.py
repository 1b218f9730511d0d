"""update, also as create with a client-chosen id (http://hl7.org/fhir/R4/http.html#update)."""

from __future__ import annotations

from typing import Any

from fhir_ccm.errors import Invalid
from fhir_ccm.interactions import NO_PRECONDITIONS, Context, Preconditions, Result
from fhir_ccm.interactions.resource_types import require_id, require_writable_type
from fhir_ccm.interactions.versions import (
    PreparedResource,
    check_if_match,
    prepare_resource,
    same_content,
    write_resource,
)
from fhir_ccm.store import Store


def check_body_matches_url(resource: dict[str, Any], resource_type: str, id: str) -> None:
    if resource.get("resourceType") != resource_type:
        raise Invalid(
            f"The body is a {resource.get('resourceType')} but the URL is for {resource_type}",
            expression="resourceType",
        )
    if "id" not in resource:
        raise Invalid("An update must carry the resource id in the body", expression=f"{resource_type}.id")
    if resource["id"] != id:
        raise Invalid(
            f"The body id '{resource['id']}' does not match the URL id '{id}'", expression=f"{resource_type}.id"
        )


def update(
    store: Store,
    context: Context,
    resource_type: str,
    id: str,
    resource: dict[str, Any],
    preconditions: Preconditions = NO_PRECONDITIONS,
    method: str = "PUT",
    prepared: PreparedResource | None = None,
) -> Result:
    """Write the next version; 201 when this creates the resource, 200 otherwise.

    An update whose content equals the current version writes no new version
    and answers 200 with the current one.
    """
    require_writable_type(resource_type)
    require_id(id)
    check_body_matches_url(resource, resource_type, id)
    if prepared is None:
        prepared = prepare_resource(resource, id)
    with store.atomic():
        current = store.read(resource_type, id)
        check_if_match(preconditions.if_match, current)
        if same_content(resource, current):
            return Result(200, current, message=f"{resource_type}/{id} is unchanged")
        stored = write_resource(store, prepared, current, method)
    created = current is None or current.deleted
    return Result(
        201 if created else 200,
        stored,
        location=True,
        message=f"{'Created' if created else 'Updated'} {resource_type}/{id}",
    )
