"""The FHIR REST endpoints: a table of thin handlers over the interactions.

Each handler turns the Flask request into plain values, calls one interaction
and renders its result. The table also names the FHIR interaction each route
implements; the CapabilityStatement is generated from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import Blueprint, Response, current_app, g, request

from fhir_ccm.api.deadlines import read_deadline
from fhir_ccm.api.negotiation import (
    DEFAULT_FORMAT,
    FORMAT_PARAMETERS,
    JSON,
    JSON_PATCH,
    SERVED_FORMATS,
    XML,
    body_kind,
    media_format,
    response_format,
)
from fhir_ccm.api.responses import result_response
from fhir_ccm.definitions import resource_types
from fhir_ccm.errors import Invalid, MethodNotAllowed, NotSupported, PayloadTooLarge
from fhir_ccm.formats.json_format import parse_json, parse_resource
from fhir_ccm.formats.summary import check_elements_exist
from fhir_ccm.formats.xml_format import xml_to_resource
from fhir_ccm.interactions import Context, Preconditions, Result
from fhir_ccm.interactions.bundle import batch_or_transaction
from fhir_ccm.interactions.capabilities import capabilities
from fhir_ccm.interactions.conditional import (
    conditional_create,
    conditional_delete,
    conditional_patch,
    conditional_update,
)
from fhir_ccm.interactions.create import create
from fhir_ccm.interactions.delete import delete
from fhir_ccm.interactions.history import history
from fhir_ccm.interactions.patch import patch
from fhir_ccm.interactions.read import read, vread
from fhir_ccm.interactions.reconcile import parse_persist, reconcile_bundle, reconcile_patient
from fhir_ccm.interactions.resource_types import require_type
from fhir_ccm.interactions.search import search_compartment, search_system, search_type
from fhir_ccm.interactions.update import update
from fhir_ccm.interactions.validate import parse_validate_request, validate_operation
from fhir_ccm.store import Store

blueprint = Blueprint("fhir", __name__)
BASE_PATH = "/fhir"
PLAIN_ACCEPT = frozenset({None, "", "*/*", "application/fhir+json"})
PATCH_FORMATS = (JSON_PATCH,)
FORMAT_ONLY = frozenset({"_format", "_pretty"})
OPERATION_RULES = ("/$<operation>", "/<resource_type>/$<operation>", "/<resource_type>/<id>/$<operation>")
PREFER_RETURN = ("minimal", "representation", "OperationOutcome")


# -- request values ---------------------------------------------------------


def store() -> Store:
    store: Store = current_app.extensions["fhir_ccm.store"]
    return store


def context() -> Context:
    """Computed once per request: the base URL comes from the settings or the request's host."""
    cached: Context | None = g.get("fhir_context")
    if cached is None:
        base_url = current_app.config["FHIR_CCM"].base_url or f"{request.scheme}://{request.host}/fhir"
        cached = g.fhir_context = Context(base_url=base_url.rstrip("/"))
    return cached


def preconditions() -> Preconditions:
    environ = request.environ  # the WSGI keys, without building the headers view: every read asks
    return Preconditions(
        if_match=environ.get("HTTP_IF_MATCH"),
        if_none_match=environ.get("HTTP_IF_NONE_MATCH"),
        if_modified_since=environ.get("HTTP_IF_MODIFIED_SINCE"),
    )


def prefer() -> dict[str, str]:
    """The ``Prefer`` header as a dict (``return``, ``handling``, ...)."""
    values = {}
    for part in request.headers.get("Prefer", "").split(","):
        key, _, value = part.partition("=")
        if key.strip():
            values[key.strip().lower()] = value.strip().strip('"')
    if "return" in values and values["return"] not in PREFER_RETURN:
        raise Invalid(f"Prefer: return={values['return']} is not one of {', '.join(PREFER_RETURN)}")
    return values


def query_params() -> dict[str, str]:
    """Query parameters other than the format ones; a repeated one is refused."""
    params: dict[str, str] = {}
    for key, values in request.args.lists():
        if key in FORMAT_PARAMETERS:
            continue
        if len(values) > 1:
            raise Invalid(f"Parameter '{key}' may be given only once here")
        params[key] = values[0]
    return params


def request_body() -> bytes:
    """The body, read once, within the size limit (also when sent chunked) and the read deadline."""
    cached: bytes | None = g.get("fhir_body")
    if cached is not None:
        return cached
    config = current_app.config["FHIR_CCM"]
    with read_deadline(config.body_timeout):
        if request.content_length is not None:
            data = request.get_data(cache=False)  # a declared length above the limit is a 413 already
        else:
            stream = request.environ.get("wsgi.input")
            data = stream.read(config.max_body_bytes + 1) if stream is not None else b""
            if len(data) > config.max_body_bytes:
                raise PayloadTooLarge("The request body is larger than this server accepts")
    g.fhir_body = data
    return data


def read_body(allowed: tuple[str, ...] = (JSON, XML)) -> tuple[str, Any]:
    data = request_body()
    if not data.strip():
        raise Invalid("The request has no body")
    kind = body_kind(request.headers.get("Content-Type"), data, allowed)
    if kind == XML:
        return kind, xml_to_resource(data)
    if kind == JSON:
        return kind, parse_resource(data)
    return kind, parse_json(data)


def respond(result: Result) -> Response:
    return result_response(result, g.get("fhir_format", DEFAULT_FORMAT), context(), g.prefer.get("return"))


def _handler() -> Callable[..., Response] | None:
    """The handler the matched rule gives for this request's method."""
    rule = request.url_rule.rule.removeprefix(BASE_PATH) if request.url_rule else ""
    return HANDLERS.get((rule or "/", handled_method()))


def handled_method() -> str:
    """The request's method, HEAD served as GET: werkzeug then sends the same status and headers, no body."""
    method = request.method
    return "GET" if method == "HEAD" else method


@blueprint.before_request
def negotiate() -> None:
    """Settle the response format before any interaction runs, so a bad one writes nothing."""
    environ = request.environ  # the common case is told from the WSGI keys, without parsing headers or query
    accept = environ.get("HTTP_ACCEPT")
    if (
        accept in PLAIN_ACCEPT
        and "HTTP_PREFER" not in environ
        and (not environ.get("QUERY_STRING") or FORMAT_PARAMETERS.isdisjoint(request.args))
    ):
        g.fhir_format, g.prefer = DEFAULT_FORMAT, {}  # nothing to negotiate, searches included
        return
    media = g.fhir_format = media_format(request.args, accept)  # errors below are answered in this format
    g.fhir_format = response_format(request.args, accept, media)
    g.prefer = prefer()
    is_search = handled_method() in ("GET", "POST") and _handler() in SEARCH_HANDLERS
    if g.fhir_format.summary == "count" and not is_search:
        raise Invalid("_summary=count applies to searches only")
    resource_type = (request.view_args or {}).get("resource_type")
    if g.fhir_format.elements and resource_type in resource_types():
        check_elements_exist(resource_type, g.fhir_format.elements)


# -- handlers ---------------------------------------------------------------


def handle_capabilities() -> Response:
    return respond(
        capabilities(
            context(),
            type_interactions=interaction_codes("type"),
            system_interactions=interaction_codes("system"),
            formats=SERVED_FORMATS,
            patch_formats=PATCH_FORMATS,
            started=current_app.extensions["fhir_ccm.started"],
            conditional_delete="multiple" if current_app.config["FHIR_CCM"].conditional_delete_multiple else "single",
        )
    )


def handle_history_system() -> Response:
    return respond(history(store(), context(), query_params()))


def handle_history_type(resource_type: str) -> Response:
    return respond(history(store(), context(), query_params(), resource_type))


def handle_history_instance(resource_type: str, id: str) -> Response:
    return respond(history(store(), context(), query_params(), resource_type, id))


def handle_create(resource_type: str) -> Response:
    require_type(resource_type)
    _, resource = read_body()
    if_none_exist = request.headers.get("If-None-Exist")
    if if_none_exist is not None:
        return respond(conditional_create(store(), context(), resource_type, resource, if_none_exist))
    return respond(create(store(), context(), resource_type, resource))


def handle_conditional_update(resource_type: str) -> Response:
    require_type(resource_type)
    _, resource = read_body()
    criteria = conditional_criteria()
    return respond(conditional_update(store(), context(), resource_type, criteria, resource, preconditions()))


def handle_conditional_patch(resource_type: str) -> Response:
    require_type(resource_type)
    _, document = read_body(allowed=("json-patch",))
    criteria = conditional_criteria()
    return respond(conditional_patch(store(), context(), resource_type, criteria, document, preconditions()))


def handle_conditional_delete(resource_type: str) -> Response:
    require_type(resource_type)
    allow_multiple = current_app.config["FHIR_CCM"].conditional_delete_multiple
    return respond(
        conditional_delete(store(), context(), resource_type, conditional_criteria(), allow_multiple, preconditions())
    )


def conditional_criteria() -> str:
    """The query string of a conditional interaction, format parameters left out."""
    params = [(k, v) for k, v in request.args.items(multi=True) if k not in FORMAT_PARAMETERS]
    if not params:
        raise Invalid("A conditional interaction needs search criteria in the query string")
    return urlencode(params)


def handle_read(resource_type: str, id: str) -> Response:
    return respond(read(store(), context(), resource_type, id, preconditions()))


def handle_vread(resource_type: str, id: str, version_id: str) -> Response:
    return respond(vread(store(), context(), resource_type, id, version_id))


def handle_update(resource_type: str, id: str) -> Response:
    require_type(resource_type)
    _, resource = read_body()
    return respond(update(store(), context(), resource_type, id, resource, preconditions()))


def handle_patch(resource_type: str, id: str) -> Response:
    require_type(resource_type)
    _, document = read_body(allowed=("json-patch",))
    return respond(patch(store(), context(), resource_type, id, document, preconditions()))


def handle_delete(resource_type: str, id: str) -> Response:
    return respond(delete(store(), context(), resource_type, id, preconditions()))


def search_params() -> list[tuple[str, str]]:
    """Query parameters, plus the form body of ``POST _search``, in order."""
    params = list(request.args.items(multi=True))
    if request.method == "POST":
        data = request_body()
        body_kind(request.headers.get("Content-Type"), data or b"x", allowed=("form",))
        params += parse_qsl(data.decode("utf-8", errors="strict"), keep_blank_values=True)
    return [(name, value) for name, value in params if name not in FORMAT_ONLY]


def lenient() -> bool:
    return g.prefer.get("handling") == "lenient"


def handle_search_type(resource_type: str) -> Response:
    return respond(search_type(store(), context(), resource_type, search_params(), lenient()))


def handle_search_system() -> Response:
    return respond(search_system(store(), context(), search_params(), lenient()))


def handle_search_compartment(compartment: str, compartment_id: str, resource_type: str) -> Response:
    return respond(
        search_compartment(store(), context(), compartment, compartment_id, resource_type, search_params(), lenient())
    )


def handle_operation(operation: str, resource_type: str | None = None, id: str | None = None) -> Response:
    """Operations the server does not implement: 501, not 404; one it implements for other methods: 405."""
    if resource_type is not None:
        require_type(resource_type)
    allowed = _operation_methods(operation, resource_type, id)
    if allowed:
        raise MethodNotAllowed(f"${operation} is invoked with {' or '.join(allowed)}, not {request.method}", allowed)
    raise NotSupported(f"The operation ${operation} is not supported by this server yet")


def _operation_methods(operation: str, resource_type: str | None, id: str | None) -> list[str]:
    """The methods an implemented route takes for this operation at this level (``$reconcile``: POST)."""
    if id is not None:
        rules = {f"/{resource_type}/<id>/${operation}", f"/<resource_type>/<id>/${operation}"}
    elif resource_type is not None:
        rules = {f"/{resource_type}/${operation}", f"/<resource_type>/${operation}"}
    else:
        rules = {f"/${operation}"}
    return sorted({route.method for route in ROUTES if route.rule in rules and route.handler is not handle_operation})


def optional_body() -> dict[str, Any] | None:
    return read_body()[1] if request_body().strip() else None


def handle_reconcile_patient(id: str) -> Response:
    persist = parse_persist(optional_body())
    return respond(reconcile_patient(store(), context(), id, persist))


def handle_reconcile_bundle() -> Response:
    _, bundle = read_body()
    return respond(reconcile_bundle(store(), context(), bundle))


def handle_validate(resource_type: str, id: str | None = None) -> Response:
    """``$validate`` (resource-operation-validate.html): ``profile`` and ``mode`` in the query or a Parameters body."""
    require_type(resource_type)
    body = optional_body() if request.method == "POST" else None
    mode = request.args.getlist("mode")
    if len(mode) > 1:
        raise Invalid("Parameter 'mode' may be given only once")
    validation = parse_validate_request(body, resource_type, request.args.getlist("profile"), mode[0] if mode else None)
    policy = current_app.extensions["fhir_ccm.profiles"]
    return respond(validate_operation(store(), context(), policy, resource_type, id, validation))


def handle_batch() -> Response:
    _, bundle = read_body()
    allow_multiple_delete = bool(current_app.config["FHIR_CCM"].conditional_delete_multiple)
    return respond(batch_or_transaction(store(), context(), bundle, g.prefer.get("return"), allow_multiple_delete))


# -- the route table ----------------------------------------------------------


@dataclass(frozen=True)
class Route:
    rule: str
    method: str
    handler: Callable[..., Response]
    interactions: tuple[str, ...] | str  # CapabilityStatement interaction code(s); "" when not advertised
    level: str  # "type" or "system"


ROUTES: tuple[Route, ...] = (
    Route("/metadata", "GET", handle_capabilities, "", "system"),
    Route("/_history", "GET", handle_history_system, "history-system", "system"),
    Route("/", "POST", handle_batch, ("batch", "transaction"), "system"),
    Route("/<resource_type>", "POST", handle_create, "create", "type"),
    Route("/<resource_type>", "GET", handle_search_type, "search-type", "type"),
    Route("/<resource_type>/_search", "POST", handle_search_type, "", "type"),
    Route("/", "GET", handle_search_system, "search-system", "system"),
    Route("/_search", "POST", handle_search_system, "", "system"),
    Route("/<compartment>/<compartment_id>/<resource_type>", "GET", handle_search_compartment, "", "type"),
    Route("/<resource_type>", "PUT", handle_conditional_update, "", "type"),
    Route("/<resource_type>", "PATCH", handle_conditional_patch, "", "type"),
    Route("/<resource_type>", "DELETE", handle_conditional_delete, "", "type"),
    Route("/<resource_type>/_history", "GET", handle_history_type, "history-type", "type"),
    Route("/<resource_type>/<id>", "GET", handle_read, "read", "type"),
    Route("/<resource_type>/<id>", "PUT", handle_update, "update", "type"),
    Route("/<resource_type>/<id>", "PATCH", handle_patch, "patch", "type"),
    Route("/<resource_type>/<id>", "DELETE", handle_delete, "delete", "type"),
    Route("/<resource_type>/<id>/_history", "GET", handle_history_instance, "history-instance", "type"),
    Route("/<resource_type>/<id>/_history/<version_id>", "GET", handle_vread, "vread", "type"),
    Route("/Patient/<id>/$reconcile", "POST", handle_reconcile_patient, "", "system"),
    Route("/$reconcile", "POST", handle_reconcile_bundle, "", "system"),
    *(Route("/<resource_type>/$validate", method, handle_validate, "", "type") for method in ("GET", "POST")),
    *(Route("/<resource_type>/<id>/$validate", method, handle_validate, "", "type") for method in ("GET", "POST")),
    *(Route(rule, method, handle_operation, "", "system") for rule in OPERATION_RULES for method in ("GET", "POST")),
)


def interaction_codes(level: str) -> list[str]:
    """The interaction codes the routes of one level implement, for the CapabilityStatement."""
    codes: list[str] = []
    for route in ROUTES:
        if route.level == level and route.interactions:
            codes += [route.interactions] if isinstance(route.interactions, str) else list(route.interactions)
    return codes


def _dispatcher(rule: str, handlers: dict[str, Callable[..., Response]]) -> Callable[..., Response]:
    """One view per URL rule, choosing the handler by method: the router then matches each path once."""

    def dispatch(**arguments: str) -> Response:
        return handlers[handled_method()](**arguments)

    dispatch.__name__ = "fhir_" + (rule.strip("/").replace("/", "_").replace("<", "").replace(">", "") or "base")
    return dispatch


HANDLERS = {(route.rule, route.method): route.handler for route in ROUTES}
SEARCH_HANDLERS = (handle_search_type, handle_search_system, handle_search_compartment)


def _register(routes: tuple[Route, ...]) -> None:
    by_rule: dict[str, dict[str, Callable[..., Response]]] = {}
    for route in routes:
        by_rule.setdefault(route.rule, {})[route.method] = route.handler
    for rule, handlers in by_rule.items():
        view = _dispatcher(rule, handlers)
        blueprint.add_url_rule(
            rule, endpoint=view.__name__, view_func=view, methods=list(handlers), strict_slashes=False
        )


_register(ROUTES)
