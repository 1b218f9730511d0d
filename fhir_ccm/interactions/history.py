"""history at instance, type and system level (http://hl7.org/fhir/R4/http.html#history).

Newest first. Pages are cut by a cursor on the server-wide write sequence, not
by an offset, so writes that land while a client pages never shift a page: the
next link always continues exactly after the last version the client saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from fhir_ccm.arguments import natural_number
from fhir_ccm.errors import Invalid
from fhir_ccm.formats.json_format import dump_json, with_entries
from fhir_ccm.interactions import Context, Result
from fhir_ccm.interactions.resource_types import require_id, require_type
from fhir_ccm.search.values import date_range
from fhir_ccm.store import HistoryQuery, Store, StoredVersion
from fhir_ccm.store.sqlite import format_instant

DEFAULT_COUNT = 20
MAX_COUNT = 1000
CURSOR = "_cursor"
HISTORY_PARAMETERS = frozenset({"_count", "_since", "_at", CURSOR})
STATUS_BY_METHOD = {"POST": "201 Created", "PUT": "200 OK", "PATCH": "200 OK", "DELETE": "204 No Content"}


def history(
    store: Store,
    context: Context,
    params: Mapping[str, str],
    resource_type: str | None = None,
    id: str | None = None,
) -> Result:
    """A Bundle of type ``history``; ``params`` are the query parameters, formats removed."""
    if resource_type is not None:
        require_type(resource_type)
    if id is not None:
        require_id(id)
    unknown = sorted(set(params) - HISTORY_PARAMETERS)
    if unknown:
        raise Invalid(f"Unknown history parameter(s): {', '.join(unknown)}")
    count = _count(params.get("_count"))
    since = parse_instant(params["_since"]) if "_since" in params else None
    at = at_range(params["_at"]) if "_at" in params else None
    cursor = _cursor(params.get(CURSOR))
    page = store.history(HistoryQuery(resource_type, id, since, at, cursor, count))
    path = "/".join(part for part in (resource_type, id, "_history") if part)
    kept = {k: v for k, v in params.items() if k != CURSOR}
    links = [{"relation": "self", "url": _url(context, path, params)}]
    if page.has_more and page.versions:
        links.append({"relation": "next", "url": _url(context, path, {**kept, CURSOR: str(page.versions[-1].seq)})})
    head = {"resourceType": "Bundle", "type": "history", "total": page.total, "link": links}
    return Result(200, json=with_entries(head, [_entry(context, version) for version in page.versions]))


def _entry(context: Context, version: StoredVersion) -> str:
    """One entry as JSON text, the version's stored JSON spliced in (a deletion has none)."""
    reference = f"{version.resource_type}/{version.id}"
    request = {"method": version.method, "url": version.resource_type if version.method == "POST" else reference}
    response = {
        "status": STATUS_BY_METHOD.get(version.method, "200 OK"),
        "etag": f'W/"{version.version}"',
        "lastModified": version.last_updated,
    }
    resource = f',"resource":{version.json}' if version.json is not None else ""
    return (
        f'{{"fullUrl":{dump_json(f"{context.base_url}/{reference}")}{resource},'
        f'"request":{dump_json(request)},"response":{dump_json(response)}}}'
    )


def _url(context: Context, path: str, params: Mapping[str, str]) -> str:
    query = urlencode(sorted(params.items()))
    return f"{context.base_url}/{path}" + (f"?{query}" if query else "")


def _count(value: str | None) -> int:
    return DEFAULT_COUNT if value is None else natural_number("_count", value, MAX_COUNT)


def _cursor(value: str | None) -> int | None:
    return None if value is None else natural_number("The paging cursor", value)


def at_range(value: str) -> tuple[str, str]:
    """``_at=2026-03``: the instants of that month, as the store's UTC text."""
    text = value.strip().replace(" ", "+")
    try:
        bounds = date_range(text)
    except Invalid:
        raise Invalid(f"_at '{value}' is not a valid date or instant") from None
    try:
        low = datetime.fromtimestamp(bounds.low / 1000, UTC)
        high = datetime.fromtimestamp(bounds.high / 1000, UTC)
    except (OverflowError, ValueError, OSError):
        raise Invalid(f"_at '{value}' is out of range") from None
    return format_instant(low), format_instant(high)


def parse_instant(value: str) -> str:
    """A client's instant, date or dateTime as the store's UTC text, rounded up to the millisecond."""
    text = value.strip().replace(" ", "+")
    try:
        if len(text) == 10:
            moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"'{value}' is not a valid instant") from None
    if moment.tzinfo is None:
        raise Invalid(f"'{value}' has a time but no time zone")
    try:
        if moment.microsecond % 1000:
            moment += timedelta(microseconds=1000 - moment.microsecond % 1000)
        return format_instant(moment)
    except (OverflowError, ValueError):
        raise Invalid(f"'{value}' is out of range") from None
