"""Turning results and errors into HTTP responses, in the format the client asked for."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache
from typing import Any

from flask import Response

from fhir_ccm.api.negotiation import DEFAULT_FORMAT, JSON, ResponseFormat
from fhir_ccm.errors import information
from fhir_ccm.formats.json_format import dump_json, parse_json
from fhir_ccm.formats.summary import subset
from fhir_ccm.formats.xml_format import resource_to_xml
from fhir_ccm.interactions import Context, Result

BUNDLE_ENTRY_SUBSETS = ("history", "searchset")


@lru_cache(maxsize=4096)
def http_date(instant: str) -> str:
    return format_datetime(datetime.fromisoformat(instant.replace("Z", "+00:00")), usegmt=True)


def body_response(resource: dict[str, Any] | str, status: int, fmt: ResponseFormat) -> Response:
    """Serialize a resource (a dict, or stored JSON text) for the response."""
    if isinstance(resource, str) and fmt.plain:
        return Response(resource, status, content_type=f"{fmt.media_type};charset=utf-8")
    value = parse_json(resource) if isinstance(resource, str) else resource
    value = _subset(value, fmt)
    if fmt.kind == JSON:
        data: str | bytes = dump_json(value, pretty=fmt.pretty)
    else:
        data = resource_to_xml(value, pretty=fmt.pretty)
    return Response(data, status, content_type=f"{fmt.media_type};charset=utf-8")


def _subset(value: dict[str, Any], fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.summary in (None, "false") and fmt.elements is None:
        return value
    if value.get("resourceType") == "Bundle" and value.get("type") in BUNDLE_ENTRY_SUBSETS:
        entries = [
            {**entry, "resource": subset(entry["resource"], fmt.summary, fmt.elements)}
            if "resource" in entry
            else entry
            for entry in value.get("entry", [])
        ]
        return {**value, "entry": entries} if entries else value
    return subset(value, fmt.summary, fmt.elements)


def result_response(result: Result, fmt: ResponseFormat, context: Context, prefer_return: str | None) -> Response:
    """The response for a successful interaction, honouring ``Prefer: return=``."""
    stored = result.stored
    if result.json is not None:
        response = body_response(result.json, result.status, fmt)
    elif result.status in (204, 304) or (result.stored is None and result.resource is None):
        response = Response(status=result.status)
    elif prefer_return == "minimal" and stored is not None and result.resource is None:
        response = Response(status=result.status)
    elif prefer_return == "OperationOutcome" and result.resource is None:
        response = body_response(information(result.message or "OK"), result.status, fmt)
    elif result.resource is not None:
        response = body_response(result.resource, result.status, fmt)
    else:
        assert stored is not None and stored.json is not None
        response = body_response(stored.json, result.status, fmt)
    if stored is not None:
        response.headers["ETag"] = f'W/"{stored.version}"'
        response.headers["Last-Modified"] = http_date(stored.last_updated)
        if result.location:
            response.headers["Location"] = (
                f"{context.base_url}/{stored.resource_type}/{stored.id}/_history/{stored.version}"
            )
    response.headers.update(result.headers)
    return response


def error_response(status: int, outcome: dict[str, Any], fmt: ResponseFormat | None) -> Response:
    """An OperationOutcome; ``_summary`` and ``_elements`` never subset an error."""
    fmt = replace(fmt or DEFAULT_FORMAT, summary=None, elements=None)
    return body_response(outcome, status, fmt)
