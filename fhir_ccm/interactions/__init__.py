"""One function per FHIR interaction (http://hl7.org/fhir/R4/http.html).

Interactions take plain values and a store, never a Flask request, so the HTTP
layer, transaction entries, the command line and tests all call the same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhir_ccm.store import StoredVersion


@dataclass(frozen=True)
class Context:
    """Who is calling and where the server lives; every interaction receives one."""

    base_url: str = "http://127.0.0.1:8080/fhir"
    caller: str | None = None


@dataclass(frozen=True)
class Preconditions:
    """The conditional headers of a request (If-Match and friends), raw."""

    if_match: str | None = None
    if_none_match: str | None = None
    if_modified_since: str | None = None


@dataclass(frozen=True)
class Result:
    """What an interaction produced.

    ``stored`` is the version the response is about (its JSON is the body, and
    it gives ETag, Last-Modified and Location); ``resource`` is a generated body
    (a Bundle, a CapabilityStatement) when there is no stored version.
    """

    status: int
    stored: StoredVersion | None = None
    resource: dict[str, Any] | None = None
    json: str | None = None  # a generated body already serialized as JSON (a searchset Bundle)
    location: bool = False
    message: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def etag(self) -> str | None:
        return f'W/"{self.stored.version}"' if self.stored else None


NO_PRECONDITIONS = Preconditions()
LOCAL_CONTEXT = Context()
