"""References (references.html): their forms, what they resolve to, and their target types.

A reference is contained (``#id``), relative (``Patient/123``, optionally with
``/_history/1``), absolute (``https://server/fhir/Patient/123``) or a URN
(``urn:uuid:...``, resolved only inside a Bundle). Resolution looks in the
container's ``contained`` and in the Bundle being validated; anything else
resolves, for FHIRPath's ``resolve()``, to a stub carrying the type read from
the reference, which is all a ``resolve() is Patient`` test needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fhir_ccm.definitions import resource_types

_RELATIVE = re.compile(r"(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-\.]{1,64})(?:/_history/[A-Za-z0-9\-\.]{1,64})?")
_WHITESPACE = re.compile(r"\s")
_ABSOLUTE = re.compile(
    r"(?:https?://\S+/)?(?P<type>[A-Z][A-Za-z]+)/(?P<id>[A-Za-z0-9\-\.]{1,64})(?:/_history/[A-Za-z0-9\-\.]{1,64})?"
)


@dataclass(frozen=True)
class ParsedReference:
    kind: str  # contained | relative | absolute | urn | other
    type: str | None
    id: str | None
    problem: str | None = None


@lru_cache(maxsize=4096)
def parse_reference(reference: str) -> ParsedReference:
    if reference.startswith("#"):
        return ParsedReference("contained", None, reference[1:] or None)
    if reference.startswith(("urn:uuid:", "urn:oid:")):
        return ParsedReference("urn", None, None)
    if _WHITESPACE.search(reference):
        return ParsedReference("other", None, None, f"The reference '{reference}' must not contain whitespace")
    match = _RELATIVE.fullmatch(reference)
    if match:
        type_name = match.group("type")
        if type_name not in resource_types():
            return ParsedReference("relative", None, None, f"'{type_name}' in the reference is not a resource type")
        return ParsedReference("relative", type_name, match.group("id"))
    match = _ABSOLUTE.fullmatch(reference)
    if match and match.group("type") in resource_types():
        return ParsedReference("absolute", match.group("type"), match.group("id"))
    return ParsedReference("other", None, None)


class BundleIndex:
    """The resources of a Bundle by fullUrl and by ``Type/id``."""

    def __init__(self, bundle: dict[str, Any]) -> None:
        self.by_url: dict[str, dict[str, Any]] = {}
        self.by_key: dict[str, dict[str, Any]] = {}
        entries = bundle.get("entry")
        for entry in entries if isinstance(entries, list) else ():
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            full_url = entry.get("fullUrl")
            if isinstance(full_url, str):
                self.by_url[full_url] = resource
            if isinstance(resource.get("resourceType"), str) and isinstance(resource.get("id"), str):
                self.by_key[f"{resource['resourceType']}/{resource['id']}"] = resource

    def find(self, reference: str) -> dict[str, Any] | None:
        found = self.by_url.get(reference)
        if found is not None:
            return found
        parsed = parse_reference(reference)
        if parsed.type and parsed.id:
            return self.by_key.get(f"{parsed.type}/{parsed.id}")
        return None


def find_contained(root: dict[str, Any], reference: str) -> dict[str, Any] | None:
    """The resource ``#id`` points to inside ``root`` (``#`` alone is the container itself)."""
    if reference == "#":
        return root
    wanted = reference[1:]
    contained = root.get("contained")
    for resource in contained if isinstance(contained, list) else ():
        if isinstance(resource, dict) and resource.get("id") == wanted:
            return resource
    return None


def type_of(resource: dict[str, Any] | None) -> str | None:
    """The resource type of a resolved resource, if it is one."""
    resource_type = resource.get("resourceType") if resource is not None else None
    return resource_type if isinstance(resource_type, str) and resource_type in resource_types() else None


def stub(reference: str) -> dict[str, Any] | None:
    """A ``{"resourceType", "id"}`` stand-in for a reference that cannot be resolved here."""
    parsed = parse_reference(reference)
    if parsed.type is None:
        return None
    return {"resourceType": parsed.type, "id": parsed.id}


def local_references(resource: dict[str, Any]) -> set[str]:
    """Every string starting with ``#`` in the resource: references, canonicals and uris to contained resources."""
    found: set[str] = set()
    stack: list[Any] = [resource]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and value.startswith("#"):
            found.add(value)
    return found
