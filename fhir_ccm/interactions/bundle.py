"""batch and transaction (http://hl7.org/fhir/R4/http.html#transaction).

A transaction is all or nothing: every entry runs through the same interaction
functions as a single request, inside one store transaction; the first failing
entry rolls everything back and names itself in the OperationOutcome. Entries
run in the order the spec gives (DELETE, POST, PUT/PATCH, GET/HEAD).

``urn:uuid:``/``urn:oid:`` fullUrls are resolved to the ids the server assigns,
and every reference to them is rewritten, wherever it sits in a resource
(also in narrative links). Conditional references (``Patient?identifier=x|1``)
are resolved inside the transaction. Resources whose references are known up
front are validated before the write lock is taken.

In a batch each entry stands alone and reports its own outcome.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fhir_ccm.definitions import resource_types
from fhir_ccm.errors import FhirError, Invalid, Issue, PreconditionFailed, outcome_for
from fhir_ccm.formats.json_format import parse_json
from fhir_ccm.interactions import Context, Preconditions, Result
from fhir_ccm.interactions.conditional import (
    conditional_create,
    conditional_delete,
    conditional_patch,
    conditional_update,
    matching_ids,
)
from fhir_ccm.interactions.create import create
from fhir_ccm.interactions.delete import delete
from fhir_ccm.interactions.history import history
from fhir_ccm.interactions.patch import patch
from fhir_ccm.interactions.read import read, vread
from fhir_ccm.interactions.resource_types import ID_PATTERN
from fhir_ccm.interactions.search import search_type
from fhir_ccm.interactions.update import update
from fhir_ccm.interactions.versions import PreparedResource, prepare_resource
from fhir_ccm.store import Store

METHOD_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
TEMPORARY_PREFIXES = ("urn:uuid:", "urn:oid:")
JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True)
class Entry:
    """One ``Bundle.entry`` of a batch or transaction, as the client sent it."""

    index: int
    full_url: str | None
    method: str
    url: str
    resource: dict[str, Any] | None
    preconditions: Preconditions
    if_none_exist: str | None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path.strip("/")

    @property
    def query(self) -> str:
        return urlsplit(self.url).query

    @property
    def resource_type(self) -> str:
        return self.path.split("/")[0]

    @property
    def target_id(self) -> str | None:
        """The id an entry addresses (``Patient/1``), None for type-level or conditional urls."""
        parts = self.path.split("/")
        return parts[1] if len(parts) >= 2 and not self.query else None

    def describe(self) -> str:
        return f"Entry {self.index} ({self.method} {self.url})"


def parse_entries(bundle: dict[str, Any]) -> list[Entry]:
    """The entries of a batch/transaction Bundle, checked for shape."""
    entries = []
    for index, raw in enumerate(bundle.get("entry") or []):
        if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
            raise Invalid(f"Entry {index} has no request", expression=f"Bundle.entry[{index}].request")
        request = raw["request"]
        method, url = request.get("method"), request.get("url")
        if method not in METHOD_ORDER or not isinstance(url, str) or not url:
            raise Invalid(
                f"Entry {index} needs request.method (GET, HEAD, POST, PUT, PATCH, DELETE) and request.url",
                expression=f"Bundle.entry[{index}].request",
            )
        resource = raw.get("resource")
        if method in ("POST", "PUT", "PATCH") and not isinstance(resource, dict):
            raise Invalid(f"Entry {index} ({method} {url}) has no resource", expression=f"Bundle.entry[{index}]")
        entries.append(
            Entry(
                index=index,
                full_url=raw.get("fullUrl"),
                method=method,
                url=url,
                resource=resource,
                preconditions=Preconditions(
                    if_match=request.get("ifMatch"),
                    if_none_match=request.get("ifNoneMatch"),
                    if_modified_since=request.get("ifModifiedSince"),
                ),
                if_none_exist=request.get("ifNoneExist"),
            )
        )
        if entries[-1].resource_type not in resource_types() and method != "GET":
            raise Invalid(f"Entry {index} ({method} {url}) names no known resource type")
    _refuse_duplicates(entries)
    return entries


def _refuse_duplicates(entries: list[Entry]) -> None:
    full_urls: set[str] = set()
    targets: set[str] = set()
    for entry in entries:
        if entry.full_url:
            if entry.full_url in full_urls:
                raise Invalid(f"{entry.describe()}: fullUrl {entry.full_url} appears twice")
            full_urls.add(entry.full_url)
        if entry.method in ("PUT", "PATCH", "DELETE") and entry.target_id:
            target = entry.path.split("/_history")[0]
            if target in targets:
                raise Invalid(f"{entry.describe()}: {target} is the subject of two entries")
            targets.add(target)


def batch_or_transaction(store: Store, context: Context, bundle: dict[str, Any], prefer_return: str | None) -> Result:
    if bundle.get("resourceType") != "Bundle":
        raise Invalid("POST to the base URL takes a Bundle of type batch or transaction")
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise Invalid(f"A Bundle of type '{kind}' cannot be processed; send type batch or transaction")
    entries = parse_entries(bundle)
    if kind == "transaction":
        responses = _transaction(store, context, entries, prefer_return)
    else:
        responses = [_batch_entry(store, context, entry, prefer_return) for entry in entries]
    return Result(
        200,
        resource={"resourceType": "Bundle", "type": f"{kind}-response", "entry": responses},
        message=f"{kind} processed",
    )


# -- transactions -----------------------------------------------------------------------


def _transaction(
    store: Store, context: Context, entries: list[Entry], prefer_return: str | None
) -> list[dict[str, Any]]:
    mapping = _assigned_ids(entries)
    planned = [_rewritten(entry, mapping) for entry in entries]
    prepared = {entry.index: _prepare(entry, mapping) for entry in planned if _ready(entry)}
    results: dict[int, dict[str, Any]] = {}
    with store.atomic():
        mapping.update(_resolve_conditional_targets(store, planned))
        for entry in sorted(planned, key=lambda e: (METHOD_ORDER[e.method], e.index)):
            if entry.index not in prepared:
                entry = _resolve_references(store, _rewritten(entry, mapping))
            try:
                result = _run(store, context, entry, mapping, prepared.get(entry.index))
            except FhirError as error:
                raise _naming(error, entry) from None
            results[entry.index] = _response_entry(context, result, entry, prefer_return)
    return [results[entry.index] for entry in entries]


def _assigned_ids(entries: list[Entry]) -> dict[str, str]:
    """fullUrl -> ``Type/id`` for every entry whose id is known before the transaction runs."""
    mapping: dict[str, str] = {}
    for entry in entries:
        if not entry.full_url:
            continue
        if entry.method == "POST" and not entry.if_none_exist:
            mapping[entry.full_url] = f"{entry.resource_type}/{uuid.uuid4()}"
        elif entry.method == "PUT" and entry.target_id:
            mapping[entry.full_url] = f"{entry.resource_type}/{entry.target_id}"
    return mapping


def _resolve_conditional_targets(store: Store, entries: list[Entry]) -> dict[str, str]:
    """fullUrl -> ``Type/id`` for conditional creates and updates, decided under the write lock."""
    mapping: dict[str, str] = {}
    for entry in entries:
        if not entry.full_url:
            continue
        criteria = entry.if_none_exist if entry.method == "POST" else entry.query if entry.method == "PUT" else None
        if not criteria:
            continue
        found = matching_ids(store, entry.resource_type, criteria)
        if len(found) > 1:
            raise PreconditionFailed(f"{entry.describe()}: '{criteria}' matches several {entry.resource_type}")
        if found:
            mapping[entry.full_url] = f"{entry.resource_type}/{found[0]}"
        elif entry.method == "PUT" and entry.resource and entry.resource.get("id"):
            mapping[entry.full_url] = f"{entry.resource_type}/{entry.resource['id']}"
        else:
            mapping[entry.full_url] = f"{entry.resource_type}/{uuid.uuid4()}"
    return mapping


def _ready(entry: Entry) -> bool:
    """Can the entry be validated before the lock: a plain create or update with every reference known."""
    if entry.method not in ("POST", "PUT") or entry.if_none_exist or entry.query or entry.resource is None:
        return False
    return not any(_needs_resolution(ref) for ref in _references(entry.resource))


def _prepare(entry: Entry, mapping: dict[str, str]) -> PreparedResource:
    assert entry.resource is not None
    id = _entry_id(entry, mapping)
    try:
        return prepare_resource(entry.resource, id)
    except FhirError as error:
        raise _naming(error, entry) from None


def _entry_id(entry: Entry, mapping: dict[str, str]) -> str:
    if entry.method == "POST":
        assigned = mapping.get(entry.full_url or "")
        return assigned.split("/", 1)[1] if assigned else str(uuid.uuid4())
    return entry.target_id or ""


def _needs_resolution(reference: str) -> bool:
    return reference.startswith(TEMPORARY_PREFIXES) or "?" in reference


def _references(value: Any) -> list[str]:
    """Every ``reference`` string in a resource."""
    found: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if key == "reference" and isinstance(child, str):
                    found.append(child)
                else:
                    stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _rewrite(value: Any, replace_reference: Callable[[str], str], mapping: dict[str, str]) -> Any:
    """A copy of ``value`` with every reference (and narrative link) passed through ``replace_reference``."""
    if isinstance(value, dict):
        result = {}
        for key, child in value.items():
            if key == "reference" and isinstance(child, str):
                result[key] = replace_reference(child)
            elif key == "div" and isinstance(child, str):
                result[key] = _rewrite_narrative(child, mapping)
            else:
                result[key] = _rewrite(child, replace_reference, mapping)
        return result
    if isinstance(value, list):
        return [_rewrite(item, replace_reference, mapping) for item in value]
    return value


def _rewrite_narrative(div: str, mapping: dict[str, str]) -> str:
    for temporary, reference in mapping.items():
        if temporary.startswith(TEMPORARY_PREFIXES) and temporary in div:
            div = div.replace(f'"{temporary}"', f'"{reference}"')
    return div


def _rewritten(entry: Entry, mapping: dict[str, str]) -> Entry:
    """The entry with references to known fullUrls replaced by ``Type/id``."""
    if entry.resource is None:
        return entry
    return replace(entry, resource=_rewrite(entry.resource, lambda ref: mapping.get(ref, ref), mapping))


def _resolve_references(store: Store, entry: Entry) -> Entry:
    """Resolve conditional references; a temporary reference left over matches no entry: 400."""
    if entry.resource is None:
        return entry

    def resolve(reference: str) -> str:
        if reference.startswith(TEMPORARY_PREFIXES):
            raise Invalid(f"{entry.describe()}: the reference {reference} matches no entry's fullUrl")
        if "?" not in reference:
            return reference
        resource_type, _, criteria = reference.partition("?")
        if resource_type not in resource_types():
            raise Invalid(f"{entry.describe()}: the conditional reference {reference} names no resource type")
        found = matching_ids(store, resource_type, criteria)
        if not found:
            raise Invalid(f"{entry.describe()}: the conditional reference {reference} matches nothing")
        if len(found) > 1:
            raise PreconditionFailed(f"{entry.describe()}: the conditional reference {reference} matches several")
        return f"{resource_type}/{found[0]}"

    return replace(entry, resource=_rewrite(entry.resource, resolve, {}))


# -- running one entry -------------------------------------------------------------------


def _run(
    store: Store,
    context: Context,
    entry: Entry,
    mapping: dict[str, str],
    prepared: PreparedResource | None = None,
) -> Result:
    """Send one entry to the interaction its method and url name."""
    parts = entry.path.split("/")
    resource_type = parts[0]
    if entry.method in ("GET", "HEAD"):
        return _read_entry(store, context, entry, parts)
    if entry.method == "DELETE":
        if entry.query:
            return conditional_delete(store, context, resource_type, entry.query, preconditions=entry.preconditions)
        _require_parts(entry, parts, 2)
        return delete(store, context, resource_type, parts[1], entry.preconditions)
    assert entry.resource is not None
    if entry.method == "POST":
        _require_parts(entry, parts, 1)
        if entry.if_none_exist:
            assigned = mapping.get(entry.full_url or "")
            if assigned is None:
                return conditional_create(store, context, resource_type, entry.resource, entry.if_none_exist)
            id = assigned.split("/", 1)[1]
            existing = store.read(resource_type, id)
            if existing is not None and not existing.deleted:
                return Result(200, existing, location=True, message=f"{resource_type}/{id} already exists")
            return create(store, context, resource_type, entry.resource, prepare_resource(entry.resource, id))
        if prepared is None:
            prepared = prepare_resource(entry.resource, _entry_id(entry, mapping))
        return create(store, context, resource_type, entry.resource, prepared)
    if entry.method == "PUT":
        if entry.query:
            return conditional_update(store, context, resource_type, entry.query, entry.resource, entry.preconditions)
        _require_parts(entry, parts, 2)
        resource = entry.resource if "id" in entry.resource else {**entry.resource, "id": parts[1]}
        return update(store, context, resource_type, parts[1], resource, entry.preconditions, prepared=prepared)
    document = _patch_document(entry)
    if entry.query:
        return conditional_patch(store, context, resource_type, entry.query, document, entry.preconditions)
    _require_parts(entry, parts, 2)
    return patch(store, context, resource_type, parts[1], document, entry.preconditions)


def _require_parts(entry: Entry, parts: list[str], count: int) -> None:
    if len(parts) != count or not all(ID_PATTERN.fullmatch(p) for p in parts[1:]):
        raise Invalid(f"{entry.describe()}: the url does not fit a {entry.method}")


def _read_entry(store: Store, context: Context, entry: Entry, parts: list[str]) -> Result:
    params = parse_qsl(entry.query, keep_blank_values=True)
    if len(parts) == 1 and parts[0] in resource_types():
        return search_type(store, context, parts[0], params)
    if len(parts) == 2:
        return read(store, context, parts[0], parts[1], entry.preconditions)
    if len(parts) == 3 and parts[2] == "_history":
        return history(store, context, dict(params), parts[0], parts[1])
    if len(parts) == 4 and parts[2] == "_history":
        return vread(store, context, parts[0], parts[1], parts[3])
    raise Invalid(f"{entry.describe()}: this url cannot be read in a Bundle")


def _patch_document(entry: Entry) -> Any:
    """A JSON Patch travels in a Binary resource (base64 data, contentType json-patch+json)."""
    resource = entry.resource or {}
    if resource.get("resourceType") != "Binary" or resource.get("contentType") != JSON_PATCH:
        raise Invalid(f"{entry.describe()}: a PATCH entry carries a Binary with contentType {JSON_PATCH}")
    try:
        return parse_json(base64.b64decode(resource.get("data", ""), validate=True))
    except (binascii.Error, ValueError):
        raise Invalid(f"{entry.describe()}: the Binary data is not base64") from None


# -- responses ---------------------------------------------------------------------------


def _status_line(status: int) -> str:
    return f"{status} {HTTPStatus(status).phrase}"


def _response_entry(context: Context, result: Result, entry: Entry, prefer_return: str | None) -> dict[str, Any]:
    response: dict[str, Any] = {"status": _status_line(result.status)}
    stored = result.stored
    if stored is not None and entry.method not in ("GET", "HEAD"):
        response["location"] = f"{stored.resource_type}/{stored.id}/_history/{stored.version}"
    if stored is not None:
        response["etag"] = f'W/"{stored.version}"'
        response["lastModified"] = stored.last_updated
    body: dict[str, Any] = {}
    if stored is not None and stored.json is not None:
        body["fullUrl"] = f"{context.base_url}/{stored.resource_type}/{stored.id}"
        if entry.method in ("GET", "HEAD") or prefer_return == "representation":
            body["resource"] = parse_json(stored.json)
    elif result.json is not None or result.resource is not None:
        body["resource"] = parse_json(result.json) if result.json is not None else result.resource
    body["response"] = response
    return body


def _batch_entry(store: Store, context: Context, entry: Entry, prefer_return: str | None) -> dict[str, Any]:
    """One batch entry: its own transaction, its own outcome."""
    try:
        if entry.resource is not None and any(_needs_resolution(r) for r in _references(entry.resource)):
            with store.atomic():
                entry = _resolve_references(store, entry)
                result = _run(store, context, entry, {})
        else:
            result = _run(store, context, entry, {})
        return _response_entry(context, result, entry, prefer_return)
    except FhirError as error:
        status, outcome = outcome_for(_naming(error, entry))
        return {"response": {"status": _status_line(status), "outcome": outcome}}


def _naming(error: FhirError, entry: Entry) -> FhirError:
    """The same error, its issues saying which entry failed."""
    prefix = entry.describe()
    issues = [
        Issue(
            issue.severity,
            issue.code,
            issue.diagnostics if issue.diagnostics.startswith(prefix) else f"{prefix}: {issue.diagnostics}",
            tuple(
                f"Bundle.entry[{entry.index}].resource.{e.split('.', 1)[1]}" if "." in e else e
                for e in issue.expression
            ),
        )
        for issue in error.issues
    ]
    named = type(error)(f"{prefix}: {error.message}", issues=issues)
    named.headers.update(error.headers)
    return named
