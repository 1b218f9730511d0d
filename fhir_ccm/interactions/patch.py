"""patch with JSON Patch (http://hl7.org/fhir/R4/http.html#patch, RFC 6902)."""

from __future__ import annotations

from typing import Any

import jsonpatch
import jsonpointer

from fhir_ccm.errors import Conflict, Gone, Invalid, NotFound, Unprocessable
from fhir_ccm.formats.json_format import parse_json
from fhir_ccm.interactions import NO_PRECONDITIONS, Context, Preconditions, Result
from fhir_ccm.interactions.resource_types import require_id, require_writable_type
from fhir_ccm.interactions.update import check_body_matches_url
from fhir_ccm.interactions.versions import check_if_match, prepare_resource, same_content, write_resource
from fhir_ccm.store import Store

MAX_ATTEMPTS = 5
PATCH_OPERATIONS = frozenset({"add", "remove", "replace", "move", "copy", "test"})


def parse_patch(document: Any) -> jsonpatch.JsonPatch:
    """A JSON Patch document, checked for shape before anything is applied."""
    if not isinstance(document, list):
        raise Invalid("A JSON Patch document must be an array of operations")
    for index, operation in enumerate(document):
        if not isinstance(operation, dict) or operation.get("op") not in PATCH_OPERATIONS:
            raise Invalid(f"Patch operation {index} has no valid 'op'")
        if not isinstance(operation.get("path"), str):
            raise Invalid(f"Patch operation {index} has no 'path'")
        if operation["op"] in ("add", "replace", "test") and "value" not in operation:
            raise Invalid(f"Patch operation {index} ({operation['op']}) has no 'value'")
        if operation["op"] in ("move", "copy") and not isinstance(operation.get("from"), str):
            raise Invalid(f"Patch operation {index} ({operation['op']}) has no 'from'")
    try:
        return jsonpatch.JsonPatch(document)
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as error:
        raise Invalid(f"Invalid JSON Patch: {error}") from None


def patch(
    store: Store,
    context: Context,
    resource_type: str,
    id: str,
    document: Any,
    preconditions: Preconditions = NO_PRECONDITIONS,
) -> Result:
    """Apply a JSON Patch to the current version and store the result as the next one.

    The patched resource is validated outside the write lock; if another write
    lands meanwhile, the patch is applied again to the newer version.
    """
    require_writable_type(resource_type)
    require_id(id)
    operations = parse_patch(document)
    for _ in range(MAX_ATTEMPTS):
        current = store.read(resource_type, id)
        if current is None:
            raise NotFound(f"{resource_type}/{id} is not known")
        if current.deleted or current.json is None:
            raise Gone(f"{resource_type}/{id} was deleted")
        check_if_match(preconditions.if_match, current)
        try:
            patched = operations.apply(parse_json(current.json))
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError) as error:
            raise Unprocessable(f"The patch cannot be applied to {resource_type}/{id}: {error}") from None
        if not isinstance(patched, dict):
            raise Unprocessable("The patch does not leave a resource")
        check_body_matches_url(patched, resource_type, id)
        if same_content(patched, current):
            return Result(200, current, message=f"{resource_type}/{id} is unchanged")
        prepared = prepare_resource(patched, id)
        with store.atomic():
            latest = store.read(resource_type, id)
            if latest is None or latest.version != current.version:
                continue  # written meanwhile: apply the patch again to the new version
            stored = write_resource(store, prepared, latest, "PATCH")
        return Result(200, stored, location=True, message=f"Patched {resource_type}/{id}")
    raise Conflict(f"{resource_type}/{id} kept changing while the patch was applied; try again")
