"""The outcomes a request can fail with, named for what they mean.

Each exception carries one or more issues; ``operation_outcome`` renders any of
them (and any unexpected error) to an OperationOutcome, the only place where
that happens. Transaction entries reuse the same rendering for
``Bundle.entry.response.outcome``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome.issue."""

    severity: str  # fatal | error | warning | information
    code: str  # an IssueType code: invalid, structure, required, value, not-found, ...
    diagnostics: str
    expression: tuple[str, ...] = ()

    def to_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": printable(self.diagnostics),
        }
        if self.expression:
            issue["expression"] = [printable(expression) for expression in self.expression]
        return issue


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff\ufffe\uffff]")


def printable(text: str) -> str:
    """Text safe for JSON and XML alike: control characters an error message may echo become ``\\uXXXX``."""
    return _CONTROL.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


class FhirError(Exception):
    """A request that cannot be carried out; ``status`` is its HTTP status."""

    status = 500
    issue_code = "exception"

    def __init__(self, message: str, *, issues: Iterable[Issue] = (), expression: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        issues = tuple(issues)
        if not issues:
            issues = (Issue("error", self.issue_code, message, (expression,) if expression else ()),)
        self.issues: tuple[Issue, ...] = issues
        self.headers: dict[str, str] = {}


class Invalid(FhirError):
    "The request is malformed or the content breaks a FHIR rule (400)."

    status = 400
    issue_code = "invalid"


class TooCostly(Invalid):
    "A search the database cannot plan: its query nests too deeply or has too many terms (400)."

    issue_code = "too-costly"


class Unauthorized(FhirError):
    "The request carries no valid credentials (401)."

    status = 401
    issue_code = "login"


class Forbidden(FhirError):
    "The caller may not do this (403)."

    status = 403
    issue_code = "forbidden"


class NotFound(FhirError):
    "No such resource, type or endpoint (404)."

    status = 404
    issue_code = "not-found"


class MethodNotAllowed(FhirError):
    "The endpoint exists but not for this HTTP method (405)."

    status = 405
    issue_code = "not-supported"

    def __init__(self, message: str, allowed: Iterable[str] = ()) -> None:
        super().__init__(message)
        if allowed:  # RFC 9110: a 405 names the methods the URL takes
            self.headers["Allow"] = ", ".join(sorted(allowed))


class NotAcceptable(FhirError):
    "No representation the client accepts can be produced (406)."

    status = 406
    issue_code = "not-supported"


class RequestTimeout(FhirError):
    "The client did not send the request in time (408)."

    status = 408
    issue_code = "timeout"


class Conflict(FhirError):
    "The request conflicts with the current state of the resource (409)."

    status = 409
    issue_code = "conflict"


class Gone(FhirError):
    "The resource was deleted (410)."

    status = 410
    issue_code = "deleted"


class PreconditionFailed(FhirError):
    "A precondition such as If-Match does not hold (412)."

    status = 412
    issue_code = "conflict"


class PayloadTooLarge(FhirError):
    "The request body exceeds the configured limit (413)."

    status = 413
    issue_code = "too-long"


class UnsupportedMediaType(FhirError):
    "The body has a Content-Type the server does not read (415)."

    status = 415
    issue_code = "not-supported"


class Unprocessable(FhirError):
    "The content is well formed but violates a profile or business rule (422)."

    status = 422
    issue_code = "processing"


class NotSupported(FhirError):
    "The server does not implement this (501)."

    status = 501
    issue_code = "not-supported"


class Busy(FhirError):
    "The database stayed locked by other writes longer than a request may wait (503): try again later."

    status = 503
    issue_code = "lock-error"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.headers["Retry-After"] = str(retry_after_s)


def operation_outcome(issues: Iterable[Issue]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [issue.to_fhir() for issue in issues]}


def outcome_for(error: BaseException) -> tuple[int, dict[str, Any]]:
    """The HTTP status and OperationOutcome for any exception."""
    if isinstance(error, FhirError):
        return error.status, operation_outcome(error.issues)
    return 500, operation_outcome([Issue("fatal", "exception", "Internal server error")])


def information(message: str) -> dict[str, Any]:
    """An OperationOutcome reporting success (``Prefer: return=OperationOutcome``)."""
    return operation_outcome([Issue("information", "informational", message)])
