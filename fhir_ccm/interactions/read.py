"""read and vread (http://hl7.org/fhir/R4/http.html#read, #vread)."""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime

from fhir_ccm.arguments import is_version_id
from fhir_ccm.errors import Gone, Invalid, NotFound
from fhir_ccm.interactions import NO_PRECONDITIONS, Context, Preconditions, Result
from fhir_ccm.interactions.resource_types import require_id, require_type
from fhir_ccm.interactions.versions import parse_etag
from fhir_ccm.store import Store, StoredVersion


def read(
    store: Store, context: Context, resource_type: str, id: str, preconditions: Preconditions = NO_PRECONDITIONS
) -> Result:
    """The current version; 410 once deleted; 304 when the client's copy is current."""
    require_type(resource_type)
    require_id(id)
    current = store.read(resource_type, id)
    if current is None:
        raise NotFound(f"{resource_type}/{id} is not known")
    if current.deleted:
        error = Gone(f"{resource_type}/{id} was deleted")
        error.headers["ETag"] = f'W/"{current.version}"'
        raise error
    if _not_modified(current, preconditions):
        return Result(304, current)
    return Result(200, current)


def vread(store: Store, context: Context, resource_type: str, id: str, version_id: str) -> Result:
    """One version by its id; a version that records a deletion answers 410."""
    require_type(resource_type)
    require_id(id)
    if not is_version_id(version_id):
        raise NotFound(f"{resource_type}/{id} has no version '{version_id}'")
    version = store.vread(resource_type, id, int(version_id))
    if version is None:
        raise NotFound(f"{resource_type}/{id} has no version {version_id}")
    if version.deleted:
        raise Gone(f"Version {version_id} of {resource_type}/{id} records its deletion")
    return Result(200, version)


def _not_modified(current: StoredVersion, preconditions: Preconditions) -> bool:
    if preconditions.if_none_match is not None:
        tags = [tag.strip() for tag in preconditions.if_none_match.split(",")]
        if "*" in tags:
            return True
        return any(parse_etag(tag) == current.version for tag in tags if tag)
    if preconditions.if_modified_since is not None:
        since = _http_date(preconditions.if_modified_since)
        modified = datetime.fromisoformat(current.last_updated.replace("Z", "+00:00")).replace(microsecond=0)
        return modified <= since
    return False


def _http_date(value: str) -> datetime:
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise Invalid(f"If-Modified-Since '{value}' is not an HTTP date") from None
    if moment.tzinfo is None:
        raise Invalid(f"If-Modified-Since '{value}' is not an HTTP date")
    return moment
