"""create (http://hl7.org/fhir/R4/http.html#create)."""

from __future__ import annotations

from typing import Any

from fhir_ccm.errors import Invalid
from fhir_ccm.ids import new_id
from fhir_ccm.interactions import Context, Result
from fhir_ccm.interactions.resource_types import require_writable_type
from fhir_ccm.interactions.versions import PreparedResource, prepare_resource, write_resource
from fhir_ccm.store import Store


def create(
    store: Store,
    context: Context,
    resource_type: str,
    resource: dict[str, Any],
    prepared: PreparedResource | None = None,
) -> Result:
    """Store a new resource under a server-assigned id.

    The spec says a server SHALL ignore an id in the body of a create; the
    resource gets a fresh UUID (or the id a transaction assigned to it, passed
    in ``prepared``), and versionId/lastUpdated are the server's.
    """
    require_writable_type(resource_type)
    if resource.get("resourceType") != resource_type:
        raise Invalid(
            f"The body is a {resource.get('resourceType')} but the URL is for {resource_type}",
            expression="resourceType",
        )
    if prepared is None:
        prepared = prepare_resource(resource, new_id())
    with store.atomic():
        stored = write_resource(store, prepared, None, "POST")
    return Result(201, stored, location=True, message=f"Created {resource_type}/{stored.id}")
