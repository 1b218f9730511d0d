"""``create_app``: the only way to build the server."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from fhir_ccm.api.negotiation import DEFAULT_FORMAT
from fhir_ccm.api.responses import error_response
from fhir_ccm.api.routes import BASE_PATH, blueprint
from fhir_ccm.config import Config
from fhir_ccm.errors import (
    FhirError,
    Invalid,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    outcome_for,
)
from fhir_ccm.interactions.validate import ProfilePolicy, install_policy, uninstall_policy
from fhir_ccm.store.sqlite import SQLiteStore, format_instant

logger = logging.getLogger("fhir_ccm")

# Werkzeug's own HTTP errors, rendered in our vocabulary.
_HTTP_ERRORS: dict[int, type[FhirError]] = {
    400: Invalid,
    404: NotFound,
    413: PayloadTooLarge,
}


def create_app(config: Config | dict[str, Any] | None = None) -> Flask:
    """Build the WSGI app on the store named by ``config.database``."""
    if config is None:
        config = Config.from_env()
    elif isinstance(config, dict):
        config = Config.from_env(**config)
    app = Flask(__name__)
    app.config["FHIR_CCM"] = config
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = config.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    store = app.extensions["fhir_ccm.store"] = SQLiteStore(config.database)
    app.extensions["fhir_ccm.started"] = format_instant(datetime.now(UTC))
    try:  # one registry per app (core, profiles/, FHIR_CCM_DEFINITIONS, stored definitions), built on first use
        app.extensions["fhir_ccm.profiles"] = ProfilePolicy.from_config(config, store)
    except ValueError:  # a malformed setting or definition file
        store.close()
        raise
    app.before_request(install_profile_policy)
    app.teardown_request(uninstall_profile_policy)
    app.register_blueprint(blueprint, url_prefix=BASE_PATH)
    app.register_error_handler(Exception, handle_error)
    return app


def install_profile_policy() -> None:
    """Writes of this request are checked against this app's profiles (``interactions.validate``).

    A GET or HEAD never writes (``$validate`` is handed the policy directly), so reads skip it.
    """
    if request.method in ("GET", "HEAD"):
        return
    g.fhir_ccm_policy = install_policy(current_app.extensions["fhir_ccm.profiles"].for_request())


def uninstall_profile_policy(error: BaseException | None) -> None:
    token = g.pop("fhir_ccm_policy", None)
    if token is not None:
        uninstall_policy(token)


def handle_error(error: Exception) -> Response:
    """Every failure becomes an OperationOutcome in the requested format."""
    if isinstance(error, HTTPException) and (error.code or 500) >= 500:
        logger.error("Internal error on %s %s: %s", request.method, request.path, error)
        error = RuntimeError(str(error))
    if isinstance(error, HTTPException) and not isinstance(error, FhirError):
        fhir_error_class = _HTTP_ERRORS.get(error.code or 500, Invalid)
        if error.code == 413:
            message = "The request body is larger than this server accepts"
        elif error.code == 404:
            message = f"No FHIR endpoint at {request.path}"
        elif error.code == 405:
            message = f"{request.method} is not allowed on {request.path}"
        else:
            message = error.description or "Bad request"
        if error.code == 405:
            error = MethodNotAllowed(message, getattr(error, "valid_methods", None) or ())
        else:
            error = fhir_error_class(message)
    elif isinstance(error, RecursionError):
        error = Invalid("The content is nested too deeply")
    elif not isinstance(error, FhirError):
        logger.exception("Unexpected error on %s %s", request.method, request.path)
    status, outcome = outcome_for(error)
    response = error_response(status, outcome, g.get("fhir_format", DEFAULT_FORMAT))
    if isinstance(error, FhirError):
        response.headers.update(error.headers)
    return response
