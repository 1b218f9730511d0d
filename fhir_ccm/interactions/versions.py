"""Writing a new version of a resource: the step create, update, patch and delete share.

The server owns ``meta.versionId`` and ``meta.lastUpdated``; version ids count
up from 1 per resource; an update that changes nothing writes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir_ccm.errors import Invalid, PreconditionFailed
from fhir_ccm.formats.json_format import canonical_json, dump_json, parse_json
from fhir_ccm.interactions.validate import check_on_write
from fhir_ccm.search.extract import extract_rows
from fhir_ccm.search.rows import DateRow, IndexRow
from fhir_ccm.store import NewVersion, Store, StoredVersion

_ETAG = re.compile(r'\s*(?:W/)?"?([0-9]+)"?\s*')
SERVER_META = ("versionId", "lastUpdated")
LAST_UPDATED = "_lastUpdated"


def instant_millis(instant: str) -> int:
    """Epoch milliseconds of a stored instant (``2026-11-23T15:43:38.123Z``)."""
    moment = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    return int(moment.timestamp() * 1000)


def parse_etag(value: str) -> int:
    """The version in an ETag such as ``W/"3"``."""
    match = _ETAG.fullmatch(value)
    if not match:
        raise Invalid(f"'{value}' is not a valid ETag; expected W/\"<version>\"")
    return int(match.group(1))


def check_if_match(if_match: str | None, current: StoredVersion | None) -> None:
    """412 unless the current version is the one the client read."""
    if if_match is None:
        return
    expected = parse_etag(if_match)
    if current is None or current.deleted or current.version != expected:
        actual = "none" if current is None or current.deleted else f'W/"{current.version}"'
        raise PreconditionFailed(f'If-Match W/"{expected}" does not match the current version ({actual})')


def content_without_server_meta(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource as the client controls it: no versionId, no lastUpdated."""
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in SERVER_META}
    result = {k: v for k, v in resource.items() if k != "meta"}
    if meta:
        result["meta"] = meta
    return result


def same_content(resource: dict[str, Any], current: StoredVersion | None) -> bool:
    if current is None or current.deleted or current.json is None:
        return False
    stored = parse_json(current.json)
    return canonical_json(content_without_server_meta(resource)) == canonical_json(content_without_server_meta(stored))


def stamp(resource: dict[str, Any], id: str, version: int, last_updated: str) -> dict[str, Any]:
    """The resource with its id and server meta, keys in the customary order."""
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in SERVER_META}
    stamped: dict[str, Any] = {
        "resourceType": resource["resourceType"],
        "id": id,
        "meta": {"versionId": str(version), "lastUpdated": last_updated, **meta},
    }
    stamped.update((k, v) for k, v in resource.items() if k not in ("resourceType", "id", "meta"))
    return stamped


@dataclass(frozen=True)
class PreparedResource:
    """A resource that passed its checks, with its search index rows: ready to be stamped and stored."""

    resource: dict[str, Any]
    id: str
    index: tuple[IndexRow, ...]


def prepare_resource(resource: dict[str, Any], id: str) -> PreparedResource:
    """Validate and index a resource; done before the write transaction, which it never needs.

    Structural problems answer 400 first; then the profiles the resource claims and those
    required for its type (``interactions.validate``) answer 422 when not met.
    """
    check_storable_bundle(resource)
    check_on_write(resource, id)
    content = content_without_server_meta({**resource, "id": id})
    rows = tuple(row for row in extract_rows(content) if row.param != LAST_UPDATED)
    return PreparedResource(resource, id, rows)


# Bundles that are content of their own; the others are requests or answers (HAPI stores the same three).
STORABLE_BUNDLE_TYPES = ("document", "collection", "message")


def check_storable_bundle(resource: dict[str, Any]) -> None:
    """A transaction or batch Bundle sent to ``[base]/Bundle`` is a request sent to the wrong URL, not content.

    Stored, it would answer 201 while none of its entries ran; it is refused with a hint
    instead. A Bundle without a type is left to validation, which reports it with the rest.
    """
    if resource.get("resourceType") != "Bundle":
        return
    kind = resource.get("type")
    if not isinstance(kind, str) or kind in STORABLE_BUNDLE_TYPES:
        return
    hint = " To run it, POST it to the server's base URL." if kind in ("transaction", "batch") else ""
    raise Invalid(
        f"A Bundle of type '{kind}' is not stored as a resource; {', '.join(STORABLE_BUNDLE_TYPES[:-1])}"
        f" and {STORABLE_BUNDLE_TYPES[-1]} Bundles are.{hint}",
        expression="Bundle.type",
    )


def write_resource(
    store: Store, prepared: PreparedResource, current: StoredVersion | None, method: str
) -> StoredVersion:
    """Store a prepared resource as the next version; call inside ``store.atomic()``."""
    version = current.version + 1 if current else 1
    last_updated = store.now()
    stamped = stamp(prepared.resource, prepared.id, version, last_updated)
    moment = instant_millis(last_updated)
    rows = (*prepared.index, DateRow(LAST_UPDATED, moment, moment))
    resource_type = prepared.resource["resourceType"]
    return store.write(NewVersion(resource_type, prepared.id, version, last_updated, dump_json(stamped), method, rows))


def write_deletion(store: Store, current: StoredVersion) -> StoredVersion:
    return store.write(NewVersion(current.resource_type, current.id, current.version + 1, store.now(), None, "DELETE"))
