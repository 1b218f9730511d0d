"""delete (http://hl7.org/fhir/R4/http.html#delete).

Deletion is logical: a deletion version is written, read answers 410 after it,
history keeps every earlier version, and an update can bring the resource back.
"""

from __future__ import annotations

from fhir_ccm.interactions import NO_PRECONDITIONS, Context, Preconditions, Result
from fhir_ccm.interactions.resource_types import require_id, require_type
from fhir_ccm.interactions.versions import check_if_match, write_deletion
from fhir_ccm.store import Store


def delete(
    store: Store, context: Context, resource_type: str, id: str, preconditions: Preconditions = NO_PRECONDITIONS
) -> Result:
    """204 whether or not the resource existed, as the spec allows; nothing is written twice."""
    require_type(resource_type)
    require_id(id)
    with store.atomic():
        current = store.read(resource_type, id)
        if preconditions.if_match is not None:
            check_if_match(preconditions.if_match, current)
        if current is None or current.deleted:
            return Result(204, None, message=f"{resource_type}/{id} does not exist")
        deleted = write_deletion(store, current)
    return Result(204, deleted, message=f"Deleted {resource_type}/{id}")
