"""Hostile and malformed input: always a 4xx OperationOutcome, never a 500, never a write.

The table ``CASES`` is run through the Flask test client in three response
formats (JSON by default, XML by ``_format=xml`` and XML by ``Accept``): every
error must come back as an OperationOutcome in the format asked for, with the
exact status where the right one is clear, nothing may be stored, and nothing
may be logged as an unexpected error. A few checks run over the real server,
where the HTTP layer (gunicorn, chunked bodies, timeouts) matters.
"""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import requests
from conftest import LiveServer, StderrDrain, free_port

from fhir_ccm.app import create_app

FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"
JSON_PATCH = "application/json-patch+json"
NS = "{http://hl7.org/fhir}"
SEVERITIES = {"fatal", "error", "warning", "information"}
MASKED_500 = "internal error"  # werkzeug's InternalServerError text, which must never reach a 4xx
DEPTH = 10_000

# Response formats: (query parameters, request headers, expected kind).
FORMATS: dict[str, tuple[dict[str, str], dict[str, str], str]] = {
    "json": ({}, {}, "json"),
    "xml-by-format": ({"_format": "xml"}, {}, "xml"),
    "xml-by-accept": ({}, {"Accept": FHIR_XML}, "xml"),
}


# -- bodies -------------------------------------------------------------------


def nested_arrays(depth: int = DEPTH) -> bytes:
    return b'{"resourceType":"Patient","name":' + b"[" * depth + b"]" * depth + b"}"


def nested_objects(depth: int = DEPTH) -> bytes:
    return b'{"resourceType":"Patient","bogus":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"


def nested_extensions(depth: int = DEPTH) -> bytes:
    inner = b'{"url":"http://example.org/x","valueString":"a"}'
    opening = b'{"url":"http://example.org/x","extension":['
    return b'{"resourceType":"Patient","extension":[' + opening * depth + inner + b"]}" * depth + b"]}"


def nested_contained(depth: int = DEPTH) -> bytes:
    opening = b'"contained":[{"resourceType":"Patient",'
    return b'{"resourceType":"Patient",' + opening * depth + b'"gender":"male"' + b"}]" * depth + b"}"


def nested_xml(depth: int = DEPTH) -> bytes:
    opening = b'<extension url="http://example.org/x">'
    return (
        b'<Patient xmlns="http://hl7.org/fhir">'
        + opening * depth
        + b'<valueString value="a"/>'
        + b"</extension>" * depth
        + b"</Patient>"
    )


def many_unknown_elements(count: int = 50_000) -> bytes:
    return ('{"resourceType":"Patient",' + ",".join(f'"x{i}":1' for i in range(count)) + "}").encode()


def patch_nested(depth: int = DEPTH) -> bytes:
    return b'[{"op":"add","path":"/x","value":' + b"[" * depth + b"]" * depth + b"}]"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Patient xmlns="http://hl7.org/fhir"><name><family value="&lol9;"/></name></Patient>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Patient [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Patient xmlns="http://hl7.org/fhir"><name><family value="&xxe;"/></name></Patient>"""
XXE_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE Patient [<!ENTITY % xxe SYSTEM "file:///etc/passwd"> %xxe;]>
<Patient xmlns="http://hl7.org/fhir"><gender value="male"/></Patient>"""
EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE Patient SYSTEM "http://127.0.0.1:9/evil.dtd">
<Patient xmlns="http://hl7.org/fhir"><gender value="male"/></Patient>"""
PATIENT_JSON = b'{"resourceType":"Patient","gender":"male"}'


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    body: bytes | Callable[[], bytes] | None
    content_type: str | None
    status: int | tuple[int, ...]
    existing: bool = False  # Patient/p1 is stored before the request
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def post(name: str, body: Any, status: int | tuple[int, ...] = 400, content_type: str | None = FHIR_JSON) -> Case:
    return Case(name, "POST", "/fhir/Patient", body, content_type, status)


def post_xml(name: str, body: Any, status: int = 400) -> Case:
    return Case(name, "POST", "/fhir/Patient", body, FHIR_XML, status)


def patch_p1(name: str, body: Any, status: int = 400, content_type: str = JSON_PATCH) -> Case:
    return Case(name, "PATCH", "/fhir/Patient/p1", body, content_type, status, existing=True)


def get(name: str, path: str, status: int, query: dict[str, str] | None = None, **headers: str) -> Case:
    return Case(name, "GET", path, None, None, status, existing=True, query=query or {}, headers=dict(headers))


CASES: list[Case] = [
    # broken JSON
    post("broken-json", b'{"resourceType": "Patient",'),
    post("truncated-string", b'{"resourceType": "Pat'),
    post("json-garbage", b"\x00\x01\x02garbage"),
    post("bom-then-garbage", b"\xef\xbb\xbf{,}"),
    post("single-quotes", b"{'resourceType': 'Patient'}"),
    post("trailing-comma", b'{"resourceType": "Patient", "gender": "male",}'),
    post("duplicate-property", b'{"resourceType":"Patient","gender":"male","gender":"female"}'),
    post("nan", b'{"resourceType":"Patient","multipleBirthInteger":NaN}'),
    post("infinity", b'{"resourceType":"Patient","multipleBirthInteger":Infinity}'),
    post("integer-5000-digits", b'{"resourceType":"Patient","multipleBirthInteger":' + b"9" * 5000 + b"}"),
    # encodings and characters
    post("invalid-utf8", b'{"resourceType":"Patient","name":[{"family":"\xff\xfe"}]}'),
    post("utf8-encoded-surrogate", b'{"resourceType":"Patient","name":[{"family":"\xed\xa0\x80"}]}'),
    post("overlong-utf8", b'{"resourceType":"Patient","name":[{"family":"\xc0\xaf"}]}'),
    post("nul-byte-raw", b'{"resourceType":"Patient","name":[{"family":"a\x00b"}]}'),
    post("nul-byte-raw-outside-string", b'{"resourceType":"Patient",\x00"gender":"male"}'),
    post("nul-escaped", b'{"resourceType":"Patient","name":[{"family":"a\\u0000b"}]}'),
    post("control-char-raw", b'{"resourceType":"Patient","name":[{"family":"a\x07b"}]}'),
    post("control-char-escaped", b'{"resourceType":"Patient","name":[{"family":"a\\u001bb"}]}'),
    post("control-char-in-property-name", b'{"resourceType":"Patient","bad\\u0001name":true}'),
    post("lone-surrogate-in-value", b'{"resourceType":"Patient","name":[{"family":"\\ud800"}]}'),
    post("lone-surrogate-in-property-name", b'{"resourceType":"Patient","\\udc00":1}'),
    post("lone-surrogate-resource-type", b'{"resourceType":"\\udc00"}'),
    # nesting
    post("nested-arrays-10000", nested_arrays),
    post("nested-objects-10000", nested_objects),
    post("nested-extensions-10000", nested_extensions),
    post("nested-contained-10000", nested_contained),
    post("nested-extensions-200", lambda: nested_extensions(200)),
    post("nested-contained-100", lambda: nested_contained(100)),
    # size
    post("junk-10MB-default-limit", lambda: b"x" * 10_000_000, (400, 413)),
    post("junk-17MB-over-default-limit", lambda: b"{" * (17 * 1024 * 1024), 413),
    post("50000-unknown-elements", many_unknown_elements),
    # shape
    post("json-array", b'[{"resourceType":"Patient","gender":"male"}]'),
    post("json-string", b'"Patient"'),
    post("json-number", b"42"),
    post("json-null", b"null"),
    post("empty-object", b"{}"),
    post("no-resource-type", b'{"gender":"male"}'),
    post("resource-type-not-a-string", b'{"resourceType":["Patient"]}'),
    post("resource-type-mismatch", b'{"resourceType":"Observation","status":"final","code":{"text":"x"}}'),
    post("unknown-element", b'{"resourceType":"Patient","favouriteColour":"blue"}'),
    post("wrong-json-type", b'{"resourceType":"Patient","gender":["male"]}'),
    post("null-value", b'{"resourceType":"Patient","gender":null}'),
    post("empty-string", b'{"resourceType":"Patient","gender":""}'),
    post("code-outside-required-value-set", b'{"resourceType":"Patient","gender":"banana"}', 422),
    post("empty-body", b""),
    post("whitespace-body", b" \r\n\t "),
    Case("unknown-resource-type", "POST", "/fhir/Foo", b'{"resourceType":"Foo"}', FHIR_JSON, 404),
    # ids
    Case("update-id-mismatch", "PUT", "/fhir/Patient/abc", b'{"resourceType":"Patient","id":"xyz"}', FHIR_JSON, 400),
    Case("update-without-id", "PUT", "/fhir/Patient/abc", PATIENT_JSON, FHIR_JSON, 400),
    Case("update-type-mismatch", "PUT", "/fhir/Patient/abc", b'{"resourceType":"Goal","id":"abc"}', FHIR_JSON, 400),
    Case("update-id-underscore", "PUT", "/fhir/Patient/a_b", b'{"resourceType":"Patient","id":"a_b"}', FHIR_JSON, 400),
    Case(
        "update-id-65-chars",
        "PUT",
        "/fhir/Patient/" + "a" * 65,
        ('{"resourceType":"Patient","id":"' + "a" * 65 + '"}').encode(),
        FHIR_JSON,
        400,
    ),
    Case("update-id-with-nul", "PUT", "/fhir/Patient/a%00b", b'{"resourceType":"Patient","id":"a"}', FHIR_JSON, 400),
    Case("update-id-not-a-string", "PUT", "/fhir/Patient/abc", b'{"resourceType":"Patient","id":7}', FHIR_JSON, 400),
    get("read-id-underscore", "/fhir/Patient/a_b", 400),
    get("read-id-65-chars", "/fhir/Patient/" + "a" * 65, 400),
    get("read-id-with-control-char", "/fhir/Patient/a%01b", 400),
    get("read-unknown-type-with-control-char", "/fhir/Pat%01ient/p1", 404),
    # content types
    post("text-plain", PATIENT_JSON, 415, "text/plain"),
    post("charset-latin-1", PATIENT_JSON, 415, "application/fhir+json; charset=latin-1"),
    post("charset-iso-8859-1", PATIENT_JSON, 415, "application/fhir+json; charset=ISO-8859-1"),
    post("charset-utf-16", PATIENT_JSON.decode().encode("utf-16"), 415, "application/fhir+json; charset=utf-16"),
    post("octet-stream", PATIENT_JSON, 415, "application/octet-stream"),
    post("form-urlencoded", b"resourceType=Patient", 415, "application/x-www-form-urlencoded"),
    post("multipart", b"--x\r\n\r\n--x--\r\n", 415, "multipart/form-data; boundary=x"),
    post("json-patch-on-create", b"[]", 415, JSON_PATCH),
    patch_p1("patch-with-fhir-json", b'[{"op":"remove","path":"/gender"}]', 415, FHIR_JSON),
    # XML
    post_xml("xml-billion-laughs", BILLION_LAUGHS),
    post_xml(
        "xml-billion-laughs-utf16",
        BILLION_LAUGHS.replace(b'"1.0"', b'"1.0" encoding="UTF-16"').decode().encode("utf-16"),
    ),
    post_xml("xml-xxe-file", XXE),
    post_xml("xml-xxe-parameter-entity", XXE_PARAMETER),
    post_xml("xml-external-dtd", EXTERNAL_DTD),
    post_xml("xml-nested-10000", nested_xml),
    post_xml("xml-nested-200", lambda: nested_xml(200)),
    post_xml("xml-malformed", b'<Patient xmlns="http://hl7.org/fhir"><gender value="male"></Patient>'),
    post_xml("xml-truncated", b'<Patient xmlns="http://hl7.org/fhir"><gender value="ma'),
    post_xml("xml-invalid-utf8", b'<Patient xmlns="http://hl7.org/fhir"><name><family value="\xff"/></name></Patient>'),
    post_xml("xml-nul-byte", b'<Patient xmlns="http://hl7.org/fhir"><name><family value="a\x00"/></name></Patient>'),
    post_xml("xml-charref-nul", b'<Patient xmlns="http://hl7.org/fhir"><name><family value="&#0;"/></name></Patient>'),
    post_xml(
        "xml-undefined-entity", b'<Patient xmlns="http://hl7.org/fhir"><name><family value="&x;"/></name></Patient>'
    ),
    post_xml("xml-no-namespace", b'<Patient><gender value="male"/></Patient>'),
    post_xml("xml-wrong-root", b'<Observation xmlns="http://hl7.org/fhir"><status value="final"/></Observation>'),
    post_xml("xml-unknown-element", b'<Patient xmlns="http://hl7.org/fhir"><colour value="blue"/></Patient>'),
    post_xml(
        "xml-xinclude",
        b'<Patient xmlns="http://hl7.org/fhir" xmlns:xi="http://www.w3.org/2001/XInclude">'
        b'<xi:include href="file:///etc/passwd" parse="text"/></Patient>',
    ),
    post("xml-declared-as-json", b'<Patient xmlns="http://hl7.org/fhir"><gender value="male"/></Patient>'),
    post("json-declared-as-xml", PATIENT_JSON, 400, FHIR_XML),
    # JSON Patch
    patch_p1("patch-not-an-array", b'{"op":"remove","path":"/gender"}'),
    patch_p1("patch-broken-json", b'[{"op":'),
    patch_p1("patch-nested-10000", patch_nested),
    patch_p1("patch-unknown-op", b'[{"op":"explode","path":"/gender"}]'),
    patch_p1("patch-replace-id", b'[{"op":"replace","path":"/id","value":"p2"}]'),
    patch_p1("patch-remove-resource-type", b'[{"op":"remove","path":"/resourceType"}]'),
    patch_p1("patch-adds-unknown-element", b'[{"op":"add","path":"/bogus","value":1}]'),
    patch_p1("patch-adds-control-char-name", b'[{"op":"add","path":"/a\\u0001","value":1}]'),
    patch_p1("patch-missing-target", b'[{"op":"remove","path":"/name/5"}]', 422),
    patch_p1("patch-root-to-array", b'[{"op":"replace","path":"","value":[1]}]', 422),
    # URLs, query parameters and headers
    get("vread-version-beyond-int64", "/fhir/Patient/p1/_history/99999999999999999999", 404),
    get("vread-version-superscript-digit", "/fhir/Patient/p1/_history/\u00b2", 404),
    get("vread-version-negative", "/fhir/Patient/p1/_history/-1", 404),
    get("history-cursor-beyond-int64", "/fhir/_history", 400, {"_cursor": "99999999999999999999"}),
    get("history-cursor-superscript-digit", "/fhir/_history", 400, {"_cursor": "\u00b2"}),
    get("history-count-superscript-digit", "/fhir/_history", 400, {"_count": "\u00b2"}),
    get("history-count-negative", "/fhir/_history", 400, {"_count": "-1"}),
    get("history-since-garbage", "/fhir/_history", 400, {"_since": "yesterday"}),
    get("history-since-past-year-9999", "/fhir/_history", 400, {"_since": "9999-12-31T23:59:59.9995+00:00"}),
    get("history-since-before-year-1", "/fhir/_history", 400, {"_since": "0001-01-01T00:00:00+01:00"}),
    get("history-unknown-parameter", "/fhir/Patient/_history", 400, {"bogus": "1"}),
    Case(
        "read-if-modified-since-garbage",
        "GET",
        "/fhir/Patient/p1",
        None,
        None,
        400,
        existing=True,
        headers={"If-Modified-Since": "not a date"},
    ),
    get("read-prefer-garbage", "/fhir/Patient/p1", 400, Prefer="return=everything"),
    get("read-pretty-garbage", "/fhir/Patient/p1", 400, {"_pretty": "very"}),
    Case(
        "update-if-match-garbage",
        "PUT",
        "/fhir/Patient/p1",
        b'{"resourceType":"Patient","id":"p1"}',
        FHIR_JSON,
        400,
        existing=True,
        headers={"If-Match": "banana"},
    ),
    Case(
        "update-if-match-stale",
        "PUT",
        "/fhir/Patient/p1",
        b'{"resourceType":"Patient","id":"p1"}',
        FHIR_JSON,
        412,
        existing=True,
        headers={"If-Match": 'W/"7"'},
    ),
    Case("delete-id-underscore", "DELETE", "/fhir/Patient/a_b", None, None, 400, existing=True),
]

CASE_BY_NAME = {case.name: case for case in CASES}
assert len(CASE_BY_NAME) == len(CASES), "case names must be unique"


# -- checks -------------------------------------------------------------------


def outcome_issues(status: int, content_type: str, data: bytes, kind: str) -> list[dict[str, str]]:
    """The issues of an OperationOutcome in ``kind`` (json or xml); fails if it is anything else."""
    if kind == "json":
        assert content_type.startswith(FHIR_JSON), f"{status}: Content-Type {content_type}, not JSON"
        outcome = json.loads(data)
        assert outcome["resourceType"] == "OperationOutcome"
        issues = outcome["issue"]
    else:
        assert content_type.startswith(FHIR_XML), f"{status}: Content-Type {content_type}, not XML"
        root = ElementTree.fromstring(data)
        assert root.tag == NS + "OperationOutcome", root.tag
        issues = []
        for issue in root.findall(NS + "issue"):
            values = {}
            for name in ("severity", "code", "diagnostics"):
                element = issue.find(NS + name)
                if element is not None:
                    values[name] = element.get("value", "")
            issues.append(values)
    assert issues, "an OperationOutcome without issues"
    for issue in issues:
        assert issue.get("severity") in SEVERITIES, issue
        assert issue.get("code"), issue
        assert issue.get("diagnostics"), issue
        assert MASKED_500 not in issue["diagnostics"].lower(), f"an internal server error answered as {status}: {issue}"
    assert b"root:x:0:0" not in data, "the response leaks /etc/passwd"
    return issues


def expected(status: int | tuple[int, ...]) -> tuple[int, ...]:
    return status if isinstance(status, tuple) else (status,)


def history_total(client: Any) -> int:
    response = client.get("/fhir/_history", query_string={"_count": "0"})
    assert response.status_code == 200
    return int(response.get_json()["total"])


def unexpected_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


# -- the table through the Flask test client ------------------------------------------


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_request(client: Any, caplog: pytest.LogCaptureFixture, case: Case, fmt: str) -> None:
    query, format_headers, kind = FORMATS[fmt]
    if case.existing:
        created = client.put(
            "/fhir/Patient/p1", data=b'{"resourceType":"Patient","id":"p1","gender":"male"}', content_type=FHIR_JSON
        )
        assert created.status_code == 201
    before = history_total(client)
    body = case.body() if callable(case.body) else case.body
    headers = {**case.headers, **format_headers}
    if case.content_type is not None:
        headers["Content-Type"] = case.content_type
    caplog.clear()

    started = time.monotonic()
    response = client.open(
        case.path, method=case.method, data=body, headers=headers, query_string={**case.query, **query}
    )
    elapsed = time.monotonic() - started

    assert response.status_code != 500, response.data[:1000]
    assert MASKED_500 not in response.get_data(as_text=True).lower(), (
        f"an internal server error answered as {response.status_code}: {response.data[:300]!r};"
        f" log: {unexpected_errors(caplog)}"
    )
    assert response.status_code in expected(case.status), response.data[:1000]
    outcome_issues(response.status_code, response.content_type, response.data, kind)
    assert not unexpected_errors(caplog), unexpected_errors(caplog)
    assert history_total(client) == before, "a refused request wrote something"
    assert elapsed < 30, f"{case.name} took {elapsed:.1f} s"


def test_every_error_outcome_in_each_format_is_consistent(client: Any) -> None:
    """The same refusal is the same OperationOutcome in JSON and in XML."""
    for case in (CASE_BY_NAME["broken-json"], CASE_BY_NAME["nested-arrays-10000"], CASE_BY_NAME["text-plain"]):
        body = case.body() if callable(case.body) else case.body
        results = []
        for fmt in FORMATS:
            query, headers, kind = FORMATS[fmt]
            response = client.open(
                case.path,
                method=case.method,
                data=body,
                query_string=query,
                headers={**headers, "Content-Type": case.content_type or FHIR_JSON},
            )
            issues = outcome_issues(response.status_code, response.content_type, response.data, kind)
            results.append((response.status_code, [(i["severity"], i["code"], i["diagnostics"]) for i in issues]))
        assert results[0] == results[1] == results[2], (case.name, results)


# -- body limits --------------------------------------------------------------------


@pytest.fixture
def small_client(tmp_path: Path) -> Iterator[Any]:
    app = create_app({"database": str(tmp_path / "small.db"), "max_body_bytes": 1000})
    yield app.test_client()
    app.extensions["fhir_ccm.store"].close()


def padded_patient(size: int, id: str | None = None) -> bytes:
    """A valid Patient of exactly ``size`` bytes (padded with spaces)."""
    head = {"resourceType": "Patient", **({"id": id} if id else {}), "gender": "male"}
    text = json.dumps(head).encode()
    assert len(text) <= size
    return text + b" " * (size - len(text))


LIMIT_CASES = [
    ("junk-10MB", "POST", "/fhir/Patient", lambda: b"x" * 10_000_000, FHIR_JSON),
    ("valid-but-1001-bytes", "POST", "/fhir/Patient", lambda: padded_patient(1001), FHIR_JSON),
    ("xml-10MB", "POST", "/fhir/Patient", lambda: b"<Patient>" + b" " * 10_000_000 + b"</Patient>", FHIR_XML),
    ("update-1001-bytes", "PUT", "/fhir/Patient/p1", lambda: padded_patient(1001, "p1"), FHIR_JSON),
    ("patch-10MB", "PATCH", "/fhir/Patient/p1", lambda: b"[" + b" " * 10_000_000 + b"]", JSON_PATCH),
    ("text-plain-10MB", "POST", "/fhir/Patient", lambda: b"x" * 10_000_000, "text/plain"),
]


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("name, method, path, body, content_type", LIMIT_CASES, ids=[c[0] for c in LIMIT_CASES])
def test_body_over_configured_limit_is_413(
    small_client: Any,
    caplog: pytest.LogCaptureFixture,
    fmt: str,
    name: str,
    method: str,
    path: str,
    body: Callable[[], bytes],
    content_type: str,
) -> None:
    query, headers, kind = FORMATS[fmt]
    response = small_client.open(
        path, method=method, data=body(), query_string=query, headers={**headers, "Content-Type": content_type}
    )
    assert response.status_code == 413, response.data[:500]
    issues = outcome_issues(413, response.content_type, response.data, kind)
    assert issues[0]["code"] == "too-long"
    assert not unexpected_errors(caplog)
    assert history_total(small_client) == 0


def test_body_at_configured_limit_is_read(small_client: Any) -> None:
    response = small_client.post("/fhir/Patient", data=padded_patient(1000), content_type=FHIR_JSON)
    assert response.status_code == 201, response.data[:500]
    assert history_total(small_client) == 1


# -- amplification --------------------------------------------------------------------


def test_tiny_decimal_does_not_explode_in_xml(client: Any) -> None:
    """A 120-byte Observation must not render as megabytes of XML.

    ``1e-10000000`` is a valid JSON number and a valid FHIR decimal (exponent
    notation is allowed in both JSON and XML). Either the server refuses it or
    it renders it compactly; writing it out digit by digit turns a request of a
    few bytes into a response of any size the client likes (1e-999999999: 1 GB).
    """
    body = b'{"resourceType":"Observation","status":"final","code":{"text":"x"},"valueQuantity":{"value":1e-10000000}}'
    created = client.post("/fhir/Observation", data=body, content_type=FHIR_JSON)
    if created.status_code in (400, 422):
        outcome_issues(created.status_code, created.content_type, created.data, "json")
        return
    assert created.status_code == 201, created.data[:500]
    as_json = client.get(f"/fhir/Observation/{created.get_json()['id']}")
    assert len(as_json.data) < 1000
    as_xml = client.get(f"/fhir/Observation/{created.get_json()['id']}", query_string={"_format": "xml"})
    assert as_xml.status_code == 200
    assert len(as_xml.data) < 100_000, f"a {len(body)}-byte resource is served as {len(as_xml.data):,} bytes of XML"


# -- over the real server ---------------------------------------------------------------


@pytest.fixture
def server(live_server: LiveServer) -> Iterator[LiveServer]:
    drain = StderrDrain(live_server)
    try:
        yield live_server
    finally:
        drain.close()
    assert "Traceback" not in drain.text, drain.text[-5000:]


@pytest.fixture
def small_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[LiveServer]:
    """A live server whose body limit is 1000 bytes (set through FHIR_CCM_MAX_BODY_BYTES)."""
    monkeypatch.setenv("FHIR_CCM_MAX_BODY_BYTES", "1000")
    server = LiveServer(tmp_path / "small-live.db", free_port()).start()
    drain = StderrDrain(server)
    try:
        yield server
    finally:
        drain.close()
        server.stop()
    assert "Traceback" not in drain.text, drain.text[-5000:]


def live_total(server: LiveServer) -> int:
    response = requests.get(f"{server.base_url}/_history", params={"_count": "0"}, timeout=10)
    assert response.status_code == 200
    return int(response.json()["total"])


def assert_still_serving(server: LiveServer) -> None:
    created = requests.post(
        f"{server.base_url}/Patient", data=PATIENT_JSON, headers={"Content-Type": FHIR_JSON}, timeout=10
    )
    assert created.status_code == 201


LIVE_CASES = [
    case
    for case in CASES
    if case.name
    in {
        "broken-json",
        "invalid-utf8",
        "nul-byte-raw",
        "nested-arrays-10000",
        "nested-extensions-10000",
        "junk-10MB-default-limit",
        "resource-type-mismatch",
        "text-plain",
        "charset-latin-1",
        "xml-billion-laughs",
        "xml-xxe-file",
        "xml-external-dtd",
        "xml-nested-10000",
        "xml-malformed",
        "update-id-mismatch",
        "update-id-underscore",
        "empty-body",
    }
]


def test_hostile_requests_over_http(server: LiveServer) -> None:
    assert len(LIVE_CASES) == 17
    with requests.Session() as http:
        for case in LIVE_CASES:
            body = case.body() if callable(case.body) else case.body
            for fmt, (query, format_headers, kind) in FORMATS.items():
                headers = {**case.headers, **format_headers}
                if case.content_type:
                    headers["Content-Type"] = case.content_type
                response = http.request(
                    case.method,
                    server.base_url.removesuffix("/fhir") + case.path,
                    data=body,
                    params={**case.query, **query},
                    headers=headers,
                    timeout=30,
                )
                assert response.status_code in expected(case.status), (case.name, fmt, response.text[:300])
                outcome_issues(response.status_code, response.headers["Content-Type"], response.content, kind)
    assert live_total(server) == 0
    assert_still_serving(server)


def test_body_over_limit_over_http(small_server: LiveServer) -> None:
    url = f"{small_server.base_url}/Patient"
    for body in (b"x" * 10_000_000, padded_patient(1001)):
        for query, headers, kind in FORMATS.values():
            response = requests.post(
                url, data=body, params=query, headers={**headers, "Content-Type": FHIR_JSON}, timeout=30
            )
            assert response.status_code == 413, response.text[:300]
            outcome_issues(413, response.headers["Content-Type"], response.content, kind)
    assert live_total(small_server) == 0
    assert (
        requests.post(url, data=padded_patient(1000), headers={"Content-Type": FHIR_JSON}, timeout=10).status_code
        == 201
    )


def test_chunked_body_over_limit_is_413(small_server: LiveServer) -> None:
    """A body sent with Transfer-Encoding: chunked has no Content-Length to check up front.

    The limit must still hold: the server must answer 413, not parse the
    first ``max_body_bytes`` bytes as if they were the whole body.
    """
    url = f"{small_server.base_url}/Patient"

    def chunks(data: bytes) -> Iterator[bytes]:
        for start in range(0, len(data), 500):
            yield data[start : start + 500]

    # A valid Patient followed by padding: 5,000 bytes, five times the limit.
    padded = requests.post(url, data=chunks(padded_patient(5000)), headers={"Content-Type": FHIR_JSON}, timeout=30)
    assert padded.request.headers.get("Transfer-Encoding") == "chunked"
    # Junk of 200 kB.
    junk = requests.post(url, data=chunks(b"x" * 200_000), headers={"Content-Type": FHIR_JSON}, timeout=30)
    stored = live_total(small_server)
    assert (padded.status_code, junk.status_code, stored) == (413, 413, 0), (
        f"chunked 5,000-byte body with a 1,000-byte limit: {padded.status_code} {padded.text[:200]};"
        f" chunked 200 kB junk: {junk.status_code} {junk.text[:200]}; versions stored: {stored}"
    )


def test_huge_exponent_integer_is_refused_quickly(server: LiveServer) -> None:
    """``1e999999999`` for an integer element: a 60-byte body must not occupy a worker.

    Converting that Decimal to an int means building a billion-digit number;
    a gevent worker doing it serves none of its other connections until
    gunicorn kills it after its timeout.
    """
    body = b'{"resourceType":"Patient","multipleBirthInteger":1e999999999}'
    started = time.monotonic()
    try:
        response = requests.post(
            f"{server.base_url}/Patient", data=body, headers={"Content-Type": FHIR_JSON}, timeout=10
        )
    except requests.Timeout:
        pytest.fail(f"POST of a {len(body)}-byte Patient with multipleBirthInteger 1e999999999: no answer in 10 s")
    assert time.monotonic() - started < 10
    assert response.status_code == 400, response.text[:300]
    outcome_issues(400, response.headers["Content-Type"], response.content, "json")


def test_many_invalid_elements_are_refused_quickly(server: LiveServer) -> None:
    """50,000 wrongly typed values (a 150 kB body) must be refused in seconds, not hours.

    Each invalid value is one issue; the cost of reporting them must not grow
    with the square of their number.
    """
    body = json.dumps({"resourceType": "Patient", "name": [{"given": [1] * 50_000}]}).encode()
    started = time.monotonic()
    try:
        response = requests.post(
            f"{server.base_url}/Patient", data=body, headers={"Content-Type": FHIR_JSON}, timeout=15
        )
    except requests.Timeout:
        pytest.fail(f"POST of a {len(body):,}-byte Patient with 50,000 non-string given names: no answer in 15 s")
    assert time.monotonic() - started < 15
    assert response.status_code == 400, response.text[:300]
    outcome_issues(400, response.headers["Content-Type"], response.content, "json")


RAW_REQUESTS = {
    "request-line-too-long": b"GET /fhir/Patient/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    "too-many-header-fields": b"GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    + b"".join(b"X-Filler-%d: y\r\n" % n for n in range(150))
    + b"\r\n",
    "garbage-request-line": b"\x00\xff\xfe garbage\r\n\r\n",
}


def raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` as it is and read the response until the server closes (5 s at most)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(data) < 1_000_000:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1."), data[:300]
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("name", list(RAW_REQUESTS))
def test_malformed_http_is_answered_with_an_outcome(server: LiveServer, name: str) -> None:
    """Requests the HTTP layer refuses still get a 4xx OperationOutcome, as every error must."""
    status, headers, body = raw_exchange(server.port, RAW_REQUESTS[name])
    assert 400 <= status < 500, status
    assert headers.get("content-type", "").startswith(FHIR_JSON), (
        f"{status} answered with Content-Type {headers.get('content-type')!r}: {body[:200]!r}"
    )
    outcome_issues(status, headers["content-type"], body, "json")
    assert_still_serving(server)
