"""Which format a request is in and which one its response must be in.

http://hl7.org/fhir/R4/http.html#mime-type: ``_format`` overrides ``Accept``;
JSON and XML under both their FHIR and generic media types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fhir_ccm.errors import Invalid, NotAcceptable, UnsupportedMediaType
from fhir_ccm.formats.summary import SUMMARY_MODES, check_summary, parse_elements

JSON, XML = "json", "xml"
FHIR_JSON, FHIR_XML = "application/fhir+json", "application/fhir+xml"
JSON_PATCH = "application/json-patch+json"
FORM = "application/x-www-form-urlencoded"

MEDIA_TYPES: dict[str, str] = {
    FHIR_JSON: JSON,
    "application/json": JSON,
    "application/json+fhir": JSON,
    "text/json": JSON,
    FHIR_XML: XML,
    "application/xml": XML,
    "application/xml+fhir": XML,
    "text/xml": XML,
}
FORMAT_PARAMETER: dict[str, str] = {
    "json": FHIR_JSON,
    "xml": FHIR_XML,
    "text/json": "application/json",
    "text/xml": "application/xml",
    **{media_type: media_type for media_type in MEDIA_TYPES},
}
FORMAT_PARAMETERS = frozenset({"_format", "_pretty", "_summary", "_elements"})
SERVED_FORMATS = (FHIR_JSON, "application/json", FHIR_XML, "application/xml")


@dataclass(frozen=True)
class ResponseFormat:
    kind: str  # "json" or "xml"
    media_type: str
    pretty: bool = False
    summary: str | None = None
    elements: tuple[str, ...] | None = None

    @property
    def plain(self) -> bool:
        """Stored JSON can be sent as it is."""
        return self.kind == JSON and not self.pretty and self.summary in (None, "false") and self.elements is None


DEFAULT_FORMAT = ResponseFormat(JSON, FHIR_JSON)


def _media_type(value: str) -> tuple[str, dict[str, str]]:
    main, _, rest = value.partition(";")
    params = {}
    for part in rest.split(";"):
        key, _, val = part.partition("=")
        if key.strip():
            params[key.strip().lower()] = val.strip().strip('"').lower()
    return main.strip().lower(), params


def choose_media_type(accept: str | None) -> str:
    """The best served media type for an Accept header (JSON when anything goes)."""
    if not accept:
        return FHIR_JSON
    choices = []
    for position, part in enumerate(accept.split(",")):
        media_type, params = _media_type(part)
        try:
            quality = float(params.get("q", "1"))
        except ValueError:
            quality = 0.0
        if quality > 0:
            choices.append((-quality, position, media_type))
    for _, _, media_type in sorted(choices):
        if media_type in MEDIA_TYPES:
            return media_type
        if media_type in ("*/*", "application/*"):
            return FHIR_JSON
        if media_type == "text/*":
            return "text/xml"
    raise NotAcceptable(
        f"None of the accepted media types can be produced; this server serves {', '.join(SERVED_FORMATS)}"
    )


def media_format(args: Mapping[str, str], accept: str | None) -> ResponseFormat:
    """Just the format (JSON or XML, and the media type) that ``_format`` or ``Accept`` asks for."""
    requested = args.get("_format")
    if requested is not None:
        media_type = FORMAT_PARAMETER.get(requested.strip().lower().replace(" ", "+"))
        if media_type is None:
            raise NotAcceptable(f"Unsupported _format '{requested}'; use json or xml")
    else:
        media_type = choose_media_type(accept)
    kind = MEDIA_TYPES[media_type]
    served = media_type if media_type in SERVED_FORMATS else (FHIR_JSON if kind == JSON else FHIR_XML)
    return ResponseFormat(kind=kind, media_type=served)


def response_format(args: Mapping[str, str], accept: str | None, media: ResponseFormat | None = None) -> ResponseFormat:
    """The response format asked for by ``_format``/``Accept``, ``_pretty``, ``_summary`` and ``_elements``.

    ``media`` is ``media_format``'s answer when the caller already has it.
    """
    media = media or media_format(args, accept)
    pretty = args.get("_pretty", "false")
    if pretty not in ("true", "false"):
        raise Invalid(f"_pretty must be true or false, not '{pretty}'")
    return ResponseFormat(
        kind=media.kind,
        media_type=media.media_type,
        pretty=pretty == "true",
        summary=check_summary(args.get("_summary"), (*SUMMARY_MODES, "count")),
        elements=parse_elements(args.get("_elements")),
    )


def body_kind(content_type: str | None, body: bytes, allowed: tuple[str, ...] = (JSON, XML)) -> str:
    """``json``, ``xml`` or ``json-patch`` for a request body; 415 for anything else."""
    if not content_type:
        stripped = body.lstrip()
        kind = XML if stripped.startswith(b"<") else JSON
    else:
        media_type, params = _media_type(content_type)
        charset = params.get("charset", "utf-8")
        if charset not in ("utf-8", "utf8"):
            raise UnsupportedMediaType(f"Only UTF-8 bodies are read, not {charset}")
        if media_type == JSON_PATCH:
            kind = "json-patch"
        elif media_type == FORM:
            kind = "form"
        elif media_type in MEDIA_TYPES:
            kind = MEDIA_TYPES[media_type]
        else:
            raise UnsupportedMediaType(f"Content-Type '{media_type}' is not read by this server")
    if kind not in allowed:
        raise UnsupportedMediaType(f"This request takes {' or '.join(allowed)}, not {content_type or kind}")
    return kind
