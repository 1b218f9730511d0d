"""Which resource types the server knows, stores and can check."""

from __future__ import annotations

import re

from fhir_ccm.definitions import resource_types
from fhir_ccm.errors import Invalid, NotFound

ID_PATTERN = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def require_type(resource_type: str) -> str:
    """An R4 resource type, or 404: an unknown type is an unknown endpoint."""
    if resource_type not in resource_types():
        raise NotFound(f"Unknown resource type '{resource_type}'")
    return resource_type


def require_writable_type(resource_type: str) -> str:
    """A type whose content the server can check before storing it: every R4 type.

    Every type is checked by the definitions of R4 itself (``validation``), so the
    R4-only ones (MedicinalProduct and its family, some Substance types) as well.
    """
    return require_type(resource_type)


def require_id(id: str) -> str:
    if not ID_PATTERN.fullmatch(id):
        raise Invalid(f"'{id}' is not a valid resource id ([A-Za-z0-9-.]{{1,64}})")
    return id
