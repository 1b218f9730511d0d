"""batch and transaction (http://hl7.org/fhir/R4/http.html#transaction).

A transaction is all or nothing: every entry runs through the same interaction
functions as a single request, inside one store transaction; the first failing
entry rolls everything back and names itself in the OperationOutcome. Entries
run in the order the spec gives (DELETE, POST, PUT/PATCH, GET/HEAD), so a GET
sees the writes of its transaction. Two entries may not write the same
resource, also when conditional urls resolve to it, nor share a fullUrl (400).

``urn:uuid:``/``urn:oid:`` fullUrls are resolved to the ids the server assigns
(for conditional creates and updates, the match or the id to create, decided
under the write lock once the deletions ran), and every reference to them is
rewritten, wherever it sits in a resource (also in narrative links).
Conditional references (``Patient?identifier=x|1``) are resolved when their
entry runs, so they see the entries processed before it. Resources whose
references are known up front are validated before the write lock is taken.

In a batch each entry stands alone and reports its own outcome.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fhir_ccm.definitions import resource_types
from fhir_ccm.errors import FhirError, Invalid, Issue, PreconditionFailed, outcome_for
from fhir_ccm.formats.json_format import parse_json
from fhir_ccm.ids import new_id
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
from fhir_ccm.interactions.references import references_in
from fhir_ccm.interactions.resource_types import ID_PATTERN
from fhir_ccm.interactions.search import search_system, search_type
from fhir_ccm.interactions.update import update
from fhir_ccm.interactions.versions import PreparedResource, prepare_resource
from fhir_ccm.store import Store
from fhir_ccm.yielding import let_others_run

METHOD_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
YIELD_EVERY = 25  # entries prepared between chances for the worker's other requests to run
TEMPORARY_PREFIXES = ("urn:uuid:", "urn:oid:")
JSON_PATCH = "application/json-patch+json"
logger = logging.getLogger("fhir_ccm")


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


def parse_entries(bundle: dict[str, Any], base_url: str = "") -> list[Entry]:
    """The entries of a batch/transaction Bundle, checked for shape; urls on this server made relative."""
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
                url=_relative(url, base_url),
                resource=resource,
                preconditions=Preconditions(
                    if_match=request.get("ifMatch"),
                    if_none_match=request.get("ifNoneMatch"),
                    if_modified_since=request.get("ifModifiedSince"),
                ),
                if_none_exist=request.get("ifNoneExist"),
            )
        )
        if entries[-1].resource_type not in resource_types() and method not in ("GET", "HEAD"):
            raise Invalid(f"Entry {index} ({method} {url}) names no known resource type")
    return entries


def _relative(url: str, base_url: str) -> str:
    """``http://server/fhir/Patient/1`` as ``Patient/1`` when it names this server; other absolute urls fail."""
    if base_url and url.startswith(base_url + "/"):
        return url[len(base_url) + 1 :]
    if urlsplit(url).scheme:
        raise Invalid(f"The request url {url} is not on this server")
    return url


def _refuse_duplicates(entries: list[Entry]) -> None:
    """A transaction may name each fullUrl once and write each resource once; a batch may repeat them."""
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


def batch_or_transaction(
    store: Store,
    context: Context,
    bundle: dict[str, Any],
    prefer_return: str | None,
    allow_multiple_delete: bool = False,
) -> Result:
    if bundle.get("resourceType") != "Bundle":
        raise Invalid("POST to the base URL takes a Bundle of type batch or transaction")
    kind = bundle.get("type")
    if kind not in ("batch", "transaction"):
        raise Invalid(f"A Bundle of type '{kind}' cannot be processed; send type batch or transaction")
    entries = parse_entries(bundle, context.base_url)
    options = _Options(prefer_return, allow_multiple_delete)
    if kind == "transaction":
        _refuse_duplicates(entries)
        responses = _transaction(store, context, entries, options)
    else:
        responses = [_batch_entry(store, context, entry, options) for entry in entries]
    return Result(
        200,
        resource={"resourceType": "Bundle", "type": f"{kind}-response", "entry": responses},
        message=f"{kind} processed",
    )


@dataclass(frozen=True)
class _Options:
    """How the request asks entries to be answered, and what the server allows."""

    prefer_return: str | None
    allow_multiple_delete: bool


# -- transactions -----------------------------------------------------------------------


def _transaction(store: Store, context: Context, entries: list[Entry], options: _Options) -> list[dict[str, Any]]:
    """Run every entry in one store transaction; the first failure undoes them all."""
    mapping = _assigned_ids(entries)
    planned: list[Entry] = []
    references_known: set[int] = set()  # entries whose every reference is known once rewritten
    for entry in entries:
        rewritten, known = _rewritten(entry, mapping)
        planned.append(rewritten)
        if known:
            references_known.add(entry.index)
    prepared = _prepare_ready(planned, references_known, mapping)
    ordered = sorted(planned, key=lambda e: (METHOD_ORDER[e.method], e.index))
    results: dict[int, dict[str, Any]] = {}
    touched: dict[str, Entry] = {}  # "Type/id" -> the entry that wrote or deleted it

    def run(entry: Entry) -> None:
        try:
            if entry.index not in prepared:
                # rewritten again: the mapping now also holds the targets of conditional entries
                entry = _resolve_references(store, context, _rewritten(entry, mapping)[0])
            result = _run(store, context, entry, mapping, options, prepared.get(entry.index))
        except FhirError as error:
            raise _naming(error, entry) from None
        identity = _identity(entry, result)
        if identity is not None:
            if identity in touched:
                raise Invalid(f"{entry.describe()}: {identity} is also the subject of {touched[identity].describe()}")
            touched[identity] = entry
        results[entry.index] = _response_entry(context, result, entry, options.prefer_return)

    with store.atomic(nested_savepoints=False):  # any failing entry undoes them all
        for entry in ordered:
            if entry.method == "DELETE":
                run(entry)
        # conditional creates and updates see the deletions, as the processing order says
        mapping.update(_resolve_conditional_targets(store, context, planned))
        for entry in ordered:
            if entry.method != "DELETE":
                run(entry)
    return [results[entry.index] for entry in entries]


def _prepare_ready(
    entries: list[Entry], references_known: set[int], mapping: dict[str, str]
) -> dict[int, PreparedResource]:
    """Validate and index, before the write lock, every entry whose references are known.

    This is most of a large transaction's time. Every ``YIELD_EVERY`` entries the
    worker's other requests get to run (``yielding``): a read need not wait a second
    behind a bulk load. No lock is held yet, so nothing else is kept waiting.
    """
    prepared: dict[int, PreparedResource] = {}
    for entry in entries:
        if entry.index in references_known and _ready(entry):
            prepared[entry.index] = _prepare(entry, mapping)
            if len(prepared) % YIELD_EVERY == 0:
                let_others_run()
    return prepared


def _identity(entry: Entry, result: Result) -> str | None:
    """The resource an entry wrote or deleted (``Type/id``), for the one-entry-per-resource rule."""
    if entry.method in ("GET", "HEAD") or (entry.method == "POST" and result.status != 201):
        return None
    if result.stored is not None:
        return f"{result.stored.resource_type}/{result.stored.id}"
    return f"{entry.resource_type}/{entry.target_id}" if entry.target_id else None


def _assigned_ids(entries: list[Entry]) -> dict[str, str]:
    """fullUrl -> ``Type/id`` for every entry whose id is known before the transaction runs."""
    mapping: dict[str, str] = {}
    for entry in entries:
        if not entry.full_url:
            continue
        if entry.method == "POST" and not entry.if_none_exist:
            mapping[entry.full_url] = f"{entry.resource_type}/{new_id()}"
        elif entry.method == "PUT" and entry.target_id:
            mapping[entry.full_url] = f"{entry.resource_type}/{entry.target_id}"
    return mapping


def _resolve_conditional_targets(store: Store, context: Context, entries: list[Entry]) -> dict[str, str]:
    """fullUrl -> ``Type/id`` for conditional creates and updates, decided under the write lock.

    Entries with the same criteria get the same resource: two identical conditional
    creates in one transaction create it once.
    """
    mapping: dict[str, str] = {}
    decided: dict[tuple[str, str], str] = {}
    for entry in entries:
        if not entry.full_url:
            continue
        criteria = entry.if_none_exist if entry.method == "POST" else entry.query if entry.method == "PUT" else None
        if not criteria:
            continue
        key = (entry.resource_type, criteria)
        if key not in decided:
            decided[key] = _conditional_target(store, context, entry, criteria)
        mapping[entry.full_url] = decided[key]
    return mapping


def _conditional_target(store: Store, context: Context, entry: Entry, criteria: str) -> str:
    try:
        found = matching_ids(store, entry.resource_type, criteria, base_url=context.base_url)
    except FhirError as error:
        raise _naming(error, entry) from None
    if len(found) > 1:
        raise PreconditionFailed(f"{entry.describe()}: '{criteria}' matches several {entry.resource_type}")
    if found:
        return f"{entry.resource_type}/{found[0]}"
    if entry.method == "PUT" and entry.resource and entry.resource.get("id"):
        return f"{entry.resource_type}/{entry.resource['id']}"
    return f"{entry.resource_type}/{new_id()}"


def _ready(entry: Entry) -> bool:
    """Can the entry (its references known) be validated before the lock: a plain create or update."""
    if entry.method not in ("POST", "PUT") or entry.if_none_exist or entry.query or entry.resource is None:
        return False
    return entry.method == "POST" or entry.target_id is not None


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
        return assigned.split("/", 1)[1] if assigned else new_id()
    return entry.target_id or ""


def _needs_resolution(reference: str) -> bool:
    return reference.startswith(TEMPORARY_PREFIXES) or "?" in reference


def _rewrite(value: Any, replace_reference: Callable[[str], str], mapping: dict[str, str]) -> Any:
    """``value`` with every reference (and narrative link) passed through ``replace_reference``.

    Only the objects and arrays on the way to a changed value are copied: the rest
    is shared with ``value``, which is never modified.
    """
    if isinstance(value, dict):
        result: dict[str, Any] | None = None
        for key, child in value.items():
            if isinstance(child, str):
                if key == "reference":
                    new = replace_reference(child)
                elif key == "div":
                    new = _rewrite_narrative(child, mapping)
                else:
                    continue
            elif isinstance(child, (dict, list)):
                new = _rewrite(child, replace_reference, mapping)
            else:
                continue
            if new is not child:
                if result is None:
                    result = dict(value)
                result[key] = new
        return value if result is None else result
    if isinstance(value, list):
        changed: list[Any] | None = None
        for index, item in enumerate(value):
            if isinstance(item, (dict, list)):
                new = _rewrite(item, replace_reference, mapping)
                if new is not item:
                    if changed is None:
                        changed = list(value)
                    changed[index] = new
        return value if changed is None else changed
    return value


_QUOTED_TEMPORARY = re.compile(r"""(["'])(urn:(?:uuid|oid):[^"']+)\1""")


def _rewrite_narrative(div: str, mapping: dict[str, str]) -> str:
    """Quoted ``urn:uuid``/``urn:oid`` links in the narrative point where their entries went.

    Only the temporary ids the div holds are looked up, so the cost follows the
    narrative, not the number of entries in the Bundle.
    """
    if "urn:" not in div:
        return div
    return _QUOTED_TEMPORARY.sub(lambda m: f"{m.group(1)}{mapping.get(m.group(2), m.group(2))}{m.group(1)}", div)


def _rewritten(entry: Entry, mapping: dict[str, str]) -> tuple[Entry, bool]:
    """The entry with references to known fullUrls replaced by ``Type/id``, and whether every
    reference it holds is known now (none is temporary or conditional).

    One walk does both: a second walk over every resource for its references
    was about a twentieth of a large transaction's time.
    """
    if entry.resource is None:
        return entry, True
    known = True

    def replace_reference(reference: str) -> str:
        nonlocal known
        new = mapping.get(reference, reference)
        if known and _needs_resolution(new):
            known = False
        return new

    return replace(entry, resource=_rewrite(entry.resource, replace_reference, mapping)), known


def _resolve_references(store: Store, context: Context, entry: Entry) -> Entry:
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
        found = matching_ids(store, resource_type, criteria, base_url=context.base_url)
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
    options: _Options,
    prepared: PreparedResource | None = None,
) -> Result:
    """Send one entry to the interaction its method and url name."""
    parts = entry.path.split("/")
    resource_type = parts[0]
    if entry.method in ("GET", "HEAD"):
        return _read_entry(store, context, entry, parts)
    if entry.method == "DELETE":
        if entry.query:
            return conditional_delete(
                store, context, resource_type, entry.query, options.allow_multiple_delete, entry.preconditions
            )
        _require_parts(entry, parts, 2)
        return delete(store, context, resource_type, parts[1], entry.preconditions)
    assert entry.resource is not None
    assigned = mapping.get(entry.full_url or "")
    assigned_id = assigned.split("/", 1)[1] if assigned else None
    if entry.method == "POST":
        _require_parts(entry, parts, 1)
        if entry.if_none_exist:
            if assigned_id is None:
                return conditional_create(store, context, resource_type, entry.resource, entry.if_none_exist)
            existing = store.read(resource_type, assigned_id)
            if existing is not None and not existing.deleted:
                return Result(200, existing, location=True, message=f"{resource_type}/{assigned_id} already exists")
            return create(store, context, resource_type, entry.resource, prepare_resource(entry.resource, assigned_id))
        if prepared is None:
            prepared = prepare_resource(entry.resource, _entry_id(entry, mapping))
        return create(store, context, resource_type, entry.resource, prepared)
    if entry.method == "PUT":
        if entry.query:
            # the id other entries' references were given: the match, or the one to create
            resource = entry.resource if assigned_id is None else {"id": assigned_id, **entry.resource}
            return conditional_update(store, context, resource_type, entry.query, resource, entry.preconditions)
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
    if parts == [""]:
        return search_system(store, context, params)
    if parts == ["_history"]:
        return history(store, context, dict(params))
    if len(parts) == 1 and parts[0] in resource_types():
        return search_type(store, context, parts[0], params)
    if len(parts) == 2 and parts[1] == "_history":
        return history(store, context, dict(params), parts[0])
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
    reading = entry.method == "GET" and result.status != 304
    body: dict[str, Any] = {}
    if stored is not None and stored.json is not None:
        body["fullUrl"] = f"{context.base_url}/{stored.resource_type}/{stored.id}"
        if reading or (entry.method != "HEAD" and prefer_return == "representation"):
            body["resource"] = parse_json(stored.json)
    elif entry.method != "HEAD" and (result.json is not None or result.resource is not None):
        body["resource"] = parse_json(result.json) if result.json is not None else result.resource
    body["response"] = response
    return body


def _batch_entry(store: Store, context: Context, entry: Entry, options: _Options) -> dict[str, Any]:
    """One batch entry: its own transaction, its own outcome."""
    try:
        if entry.resource is not None and any(_needs_resolution(r) for r in references_in(entry.resource)):
            with store.atomic():
                entry = _resolve_references(store, context, entry)
                result = _run(store, context, entry, {}, options)
        else:
            result = _run(store, context, entry, {}, options)
        return _response_entry(context, result, entry, options.prefer_return)
    except Exception as error:
        if not isinstance(error, FhirError):
            logger.exception("Unexpected error in %s", entry.describe())
        status, outcome = outcome_for(_naming(error, entry) if isinstance(error, FhirError) else error)
        return {"response": {"status": _status_line(status), "outcome": outcome}}


def _naming(error: FhirError, entry: Entry) -> FhirError:
    """The same error (status, headers), its issues saying which entry failed."""
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
    message = error.message if error.message.startswith(prefix) else f"{prefix}: {error.message}"
    named = FhirError(message, issues=issues)
    named.status, named.issue_code = error.status, error.issue_code
    named.headers.update(error.headers)
    return named
