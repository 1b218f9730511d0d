"""End to end: the real server (gunicorn, gevent workers) over real HTTP, and the command line.

Every test here talks to ``python -m fhir_ccm serve`` through sockets on
127.0.0.1 (the ``live_server`` fixture of conftest) or runs ``python -m
fhir_ccm`` as a subprocess. Every request and socket has a timeout, every loop
is bounded, and every process started here is stopped here.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
import requests
from conftest import LiveServer, StderrDrain, free_port

from fhir_ccm.store import HistoryQuery
from fhir_ccm.store.sqlite import SQLiteStore

FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"
JSON_PATCH = "application/json-patch+json"
NS = "{http://hl7.org/fhir}"
TIMEOUT = 10  # seconds, for every HTTP request in this file
JSON_HEADERS = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
XML_HEADERS = {"Content-Type": FHIR_XML, "Accept": FHIR_XML}


# -- helpers ------------------------------------------------------------------


@pytest.fixture
def server(live_server: LiveServer) -> Iterator[LiveServer]:
    """The live server, its stderr drained; no test may make it log a traceback."""
    drain = StderrDrain(live_server)
    try:
        yield live_server
    finally:
        drain.close()
    assert "Traceback" not in drain.text, drain.text[-5000:]


def patient(family: str = "Doe", gender: str = "female", id: str | None = None) -> dict:
    resource: dict = {"resourceType": "Patient"}
    if id is not None:
        resource["id"] = id
    resource["name"] = [{"family": family}]
    resource["gender"] = gender
    return resource


def assert_outcome_json(response: requests.Response, status: int) -> dict:
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"].startswith(FHIR_JSON)
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"] and all(issue["severity"] and issue["code"] for issue in outcome["issue"])
    return outcome


def xml_value(element: ElementTree.Element, path: str) -> str | None:
    """The ``value`` attribute of the FHIR element at ``path`` (``name/family``)."""
    found = element.find("/".join(NS + step for step in path.split("/")))
    return None if found is None else found.get("value")


def parse_xml(response: requests.Response, root: str) -> ElementTree.Element:
    assert response.headers["Content-Type"].startswith(FHIR_XML), response.headers["Content-Type"]
    element = ElementTree.fromstring(response.content)
    assert element.tag == NS + root, element.tag
    return element


def http_date_matches(header: str, instant: str) -> bool:
    """Last-Modified (second precision) is meta.lastUpdated truncated to the second."""
    last_modified = parsedate_to_datetime(header)
    last_updated = datetime.fromisoformat(instant.replace("Z", "+00:00")).replace(microsecond=0)
    return last_modified == last_updated


def group_processes(leader_pid: int) -> list[int]:
    """Pids in the process group of the server (master and workers), from /proc."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == leader_pid and fields[0] != "Z":  # fields[2] is pgrp
            pids.append(int(entry))
    return pids


# -- lifecycle ------------------------------------------------------------------


def test_lifecycle_json(server: LiveServer) -> None:
    base = server.base_url
    with requests.Session() as http:
        # create
        created = http.post(f"{base}/Patient", json=patient(), headers=JSON_HEADERS, timeout=TIMEOUT)
        assert created.status_code == 201, created.text
        body = created.json()
        pid = body["id"]
        assert re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", pid)
        assert created.headers["Location"] == f"{base}/Patient/{pid}/_history/1"
        assert created.headers["ETag"] == 'W/"1"'
        assert body["meta"]["versionId"] == "1"
        assert http_date_matches(created.headers["Last-Modified"], body["meta"]["lastUpdated"])
        assert created.headers["Content-Type"].startswith(FHIR_JSON)

        # read
        read = http.get(f"{base}/Patient/{pid}", headers={"Accept": FHIR_JSON}, timeout=TIMEOUT)
        assert read.status_code == 200
        assert read.json() == body
        assert read.headers["ETag"] == 'W/"1"'
        assert http_date_matches(read.headers["Last-Modified"], body["meta"]["lastUpdated"])

        # conditional read: the client's copy is current
        not_modified = http.get(f"{base}/Patient/{pid}", headers={"If-None-Match": 'W/"1"'}, timeout=TIMEOUT)
        assert not_modified.status_code == 304
        assert not_modified.content == b""

        # update
        updated = http.put(f"{base}/Patient/{pid}", json=patient("Roe", id=pid), headers=JSON_HEADERS, timeout=TIMEOUT)
        assert updated.status_code == 200, updated.text
        assert updated.headers["ETag"] == 'W/"2"'
        assert updated.headers["Location"] == f"{base}/Patient/{pid}/_history/2"
        assert updated.json()["name"] == [{"family": "Roe"}]
        assert updated.json()["meta"]["versionId"] == "2"
        assert updated.json()["meta"]["lastUpdated"] >= body["meta"]["lastUpdated"]

        # an update with a stale If-Match is refused and writes nothing
        stale = http.put(
            f"{base}/Patient/{pid}",
            json=patient("Stale", id=pid),
            headers={**JSON_HEADERS, "If-Match": 'W/"1"'},
            timeout=TIMEOUT,
        )
        assert_outcome_json(stale, 412)

        # patch
        patched = http.patch(
            f"{base}/Patient/{pid}",
            data=json.dumps([{"op": "replace", "path": "/gender", "value": "other"}]),
            headers={"Content-Type": JSON_PATCH, "Accept": FHIR_JSON, "If-Match": 'W/"2"'},
            timeout=TIMEOUT,
        )
        assert patched.status_code == 200, patched.text
        assert patched.headers["ETag"] == 'W/"3"'
        assert patched.json()["gender"] == "other"
        assert patched.json()["name"] == [{"family": "Roe"}]

        # vread of every version so far
        for version, family, gender in ((1, "Doe", "female"), (2, "Roe", "female"), (3, "Roe", "other")):
            old = http.get(f"{base}/Patient/{pid}/_history/{version}", timeout=TIMEOUT)
            assert old.status_code == 200
            assert old.headers["ETag"] == f'W/"{version}"'
            assert old.json()["meta"]["versionId"] == str(version)
            assert (old.json()["name"][0]["family"], old.json()["gender"]) == (family, gender)

        # delete, then read answers 410 with an OperationOutcome
        deleted = http.delete(f"{base}/Patient/{pid}", timeout=TIMEOUT)
        assert deleted.status_code == 204
        assert deleted.content == b""
        gone = http.get(f"{base}/Patient/{pid}", headers={"Accept": FHIR_JSON}, timeout=TIMEOUT)
        assert_outcome_json(gone, 410)
        assert_outcome_json(http.get(f"{base}/Patient/{pid}/_history/4", timeout=TIMEOUT), 410)
        assert http.get(f"{base}/Patient/{pid}/_history/1", timeout=TIMEOUT).status_code == 200
        assert_outcome_json(http.get(f"{base}/Patient/{pid}/_history/5", timeout=TIMEOUT), 404)

        # history: newest first, one entry per version
        history = http.get(f"{base}/Patient/{pid}/_history", timeout=TIMEOUT)
        assert history.status_code == 200
        bundle = history.json()
        assert (bundle["resourceType"], bundle["type"], bundle["total"]) == ("Bundle", "history", 4)
        entries = bundle["entry"]
        assert [entry["response"]["etag"] for entry in entries] == ['W/"4"', 'W/"3"', 'W/"2"', 'W/"1"']
        assert [entry["request"]["method"] for entry in entries] == ["DELETE", "PATCH", "PUT", "POST"]
        assert "resource" not in entries[0]
        assert [entry["resource"]["meta"]["versionId"] for entry in entries[1:]] == ["3", "2", "1"]
        instants = [entry["response"]["lastModified"] for entry in entries]
        assert instants == sorted(instants, reverse=True)

        # an update brings it back as version 5 (201: it is created again)
        revived = http.put(f"{base}/Patient/{pid}", json=patient(id=pid), headers=JSON_HEADERS, timeout=TIMEOUT)
        assert revived.status_code == 201, revived.text
        assert revived.headers["ETag"] == 'W/"5"'


def test_lifecycle_xml(server: LiveServer) -> None:
    base = server.base_url
    with requests.Session() as http:
        document = (
            '<Patient xmlns="http://hl7.org/fhir"><name><family value="Xml"/></name><gender value="female"/></Patient>'
        )
        created = http.post(f"{base}/Patient", data=document.encode(), headers=XML_HEADERS, timeout=TIMEOUT)
        assert created.status_code == 201, created.text
        root = parse_xml(created, "Patient")
        pid = xml_value(root, "id")
        assert pid
        assert xml_value(root, "meta/versionId") == "1"
        assert xml_value(root, "name/family") == "Xml"
        assert created.headers["Location"] == f"{base}/Patient/{pid}/_history/1"
        assert created.headers["ETag"] == 'W/"1"'
        assert http_date_matches(created.headers["Last-Modified"], xml_value(root, "meta/lastUpdated") or "")

        # read as XML, by Accept and by _format
        for params, headers in (({}, {"Accept": FHIR_XML}), ({"_format": "xml"}, {})):
            read = http.get(f"{base}/Patient/{pid}", params=params, headers=headers, timeout=TIMEOUT)
            assert read.status_code == 200
            assert xml_value(parse_xml(read, "Patient"), "gender") == "female"
            assert read.headers["ETag"] == 'W/"1"'

        # the same resource in JSON
        as_json = http.get(f"{base}/Patient/{pid}", headers={"Accept": FHIR_JSON}, timeout=TIMEOUT).json()
        assert as_json["name"] == [{"family": "Xml"}] and as_json["gender"] == "female"

        # update in XML
        document = (
            f'<Patient xmlns="http://hl7.org/fhir"><id value="{pid}"/><name><family value="Xml2"/></name>'
            '<gender value="male"/></Patient>'
        )
        updated = http.put(f"{base}/Patient/{pid}", data=document.encode(), headers=XML_HEADERS, timeout=TIMEOUT)
        assert updated.status_code == 200, updated.text
        root = parse_xml(updated, "Patient")
        assert xml_value(root, "meta/versionId") == "2"
        assert xml_value(root, "name/family") == "Xml2"
        assert updated.headers["ETag"] == 'W/"2"'

        # patch (JSON Patch body), answered in XML
        patched = http.patch(
            f"{base}/Patient/{pid}",
            data=json.dumps([{"op": "replace", "path": "/gender", "value": "unknown"}]),
            headers={"Content-Type": JSON_PATCH, "Accept": FHIR_XML},
            timeout=TIMEOUT,
        )
        assert patched.status_code == 200, patched.text
        root = parse_xml(patched, "Patient")
        assert xml_value(root, "gender") == "unknown"
        assert patched.headers["ETag"] == 'W/"3"'

        # vread in XML
        old = http.get(f"{base}/Patient/{pid}/_history/1", headers={"Accept": FHIR_XML}, timeout=TIMEOUT)
        assert old.status_code == 200
        assert xml_value(parse_xml(old, "Patient"), "name/family") == "Xml"

        # delete; read answers 410 with an XML OperationOutcome
        assert http.delete(f"{base}/Patient/{pid}", timeout=TIMEOUT).status_code == 204
        gone = http.get(f"{base}/Patient/{pid}", headers={"Accept": FHIR_XML}, timeout=TIMEOUT)
        assert gone.status_code == 410
        outcome = parse_xml(gone, "OperationOutcome")
        assert xml_value(outcome, "issue/severity") in ("error", "fatal")
        assert xml_value(outcome, "issue/code")

        # history in XML, newest first
        history = http.get(f"{base}/Patient/{pid}/_history", params={"_format": "xml"}, timeout=TIMEOUT)
        assert history.status_code == 200
        bundle = parse_xml(history, "Bundle")
        assert xml_value(bundle, "type") == "history"
        assert xml_value(bundle, "total") == "4"
        entries = bundle.findall(NS + "entry")
        assert [xml_value(entry, "response/etag") for entry in entries] == ['W/"4"', 'W/"3"', 'W/"2"', 'W/"1"']
        assert [xml_value(entry, "request/method") for entry in entries] == ["DELETE", "PATCH", "PUT", "POST"]
        assert entries[0].find(NS + "resource") is None
        assert xml_value(entries[3], "resource/Patient/name/family") == "Xml"

        # errors come as OperationOutcomes in the format asked for
        missing = http.get(f"{base}/Patient/nope", headers={"Accept": FHIR_JSON}, timeout=TIMEOUT)
        assert_outcome_json(missing, 404)
        missing_xml = http.get(f"{base}/Patient/nope", params={"_format": "xml"}, timeout=TIMEOUT)
        assert missing_xml.status_code == 404
        parse_xml(missing_xml, "OperationOutcome")
        broken = http.post(
            f"{base}/Patient", data=b"{", headers={"Content-Type": FHIR_JSON, "Accept": FHIR_XML}, timeout=TIMEOUT
        )
        assert broken.status_code == 400
        parse_xml(broken, "OperationOutcome")
        assert_outcome_json(http.get(f"{base}/NoSuchType/1", timeout=TIMEOUT), 404)


# -- connections ----------------------------------------------------------------


def test_keep_alive_reuses_one_connection(server: LiveServer) -> None:
    """Ten requests, reads and writes, over a single HTTP/1.1 connection."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        connection.connect()
        first_socket = connection.sock
        body = json.dumps(patient("Keep")).encode()
        connection.request("POST", "/fhir/Patient", body=body, headers=JSON_HEADERS)
        response = connection.getresponse()
        created = json.loads(response.read())
        assert response.status == 201
        assert not response.will_close
        for number in range(9):
            if number % 3 == 2:
                resource = patient(f"Keep{number}", id=created["id"])
                connection.request(
                    "PUT", f"/fhir/Patient/{created['id']}", body=json.dumps(resource).encode(), headers=JSON_HEADERS
                )
            else:
                connection.request("GET", f"/fhir/Patient/{created['id']}", headers={"Accept": FHIR_JSON})
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            assert not response.will_close, f"request {number} closed the connection"
            assert connection.sock is first_socket
    finally:
        connection.close()

    with requests.Session() as session:
        statuses = [session.get(f"{server.base_url}/metadata", timeout=TIMEOUT).status_code for _ in range(5)]
    assert statuses == [200] * 5


def test_head_answers_as_get_without_a_body_on_a_kept_connection(server: LiveServer) -> None:
    """HEAD (an R4 http-verb) gets GET's status and headers, no body, and the connection stays usable."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=TIMEOUT)
    try:
        connection.request("POST", "/fhir/Patient", body=json.dumps(patient("Head")).encode(), headers=JSON_HEADERS)
        response = connection.getresponse()
        id = json.loads(response.read())["id"]
        for path, status in (
            (f"/fhir/Patient/{id}", 200),
            (f"/fhir/Patient/{id}/_history", 200),
            ("/fhir/Patient?family=head", 200),
            ("/fhir/Patient/missing", 404),
            ("/fhir/$reconcile", 405),
        ):
            connection.request("GET", path, headers={"Accept": FHIR_JSON})
            got = connection.getresponse()
            got_body = got.read()
            connection.request("HEAD", path, headers={"Accept": FHIR_JSON})
            head = connection.getresponse()
            assert head.read() == b"" and head.status == got.status == status, (path, head.status, got.status)
            assert head.getheader("Content-Type") == got.getheader("Content-Type")
            assert head.getheader("ETag") == got.getheader("ETag")
            if status == 200:
                assert int(head.getheader("Content-Length")) == len(got_body)
            assert not head.will_close
        assert head.getheader("Allow") == "POST"
    finally:
        connection.close()


def test_concurrent_creates_on_several_workers(server: LiveServer) -> None:
    assert server.process is not None
    workers = [pid for pid in group_processes(server.process.pid) if pid != server.process.pid]
    assert len(workers) >= 2, f"expected at least 2 worker processes, found {workers}"

    base = server.base_url
    threads, per_thread = 8, 20

    def create_many(thread: int) -> list[tuple[int, str, str]]:
        results = []
        with requests.Session() as http:
            for number in range(per_thread):
                response = http.post(
                    f"{base}/Patient", json=patient(f"T{thread}N{number}"), headers=JSON_HEADERS, timeout=TIMEOUT
                )
                results.append((response.status_code, response.json().get("id", ""), f"T{thread}N{number}"))
        return results

    deadline = time.monotonic() + 120
    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(create_many, thread) for thread in range(threads)]
        results = [item for future in futures for item in future.result(timeout=max(1, deadline - time.monotonic()))]

    assert len(results) == threads * per_thread
    assert [status for status, _, _ in results] == [201] * len(results)
    ids = [pid for _, pid, _ in results]
    assert len(set(ids)) == len(ids)

    with requests.Session() as http:
        for _, pid, family in results:
            read = http.get(f"{base}/Patient/{pid}", timeout=TIMEOUT)
            assert read.status_code == 200
            assert read.json()["name"] == [{"family": family}]
            assert read.json()["meta"]["versionId"] == "1"
        history = http.get(f"{base}/Patient/_history", params={"_count": "0"}, timeout=TIMEOUT).json()
    assert history["total"] == threads * per_thread


# -- stalled clients ----------------------------------------------------------


PARTIAL_HEADERS = (
    b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/fhir+json\r\nContent-Len"
)
PARTIAL_BODY = (
    b"POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/fhir+json\r\n"
    b"Content-Length: 1000\r\n\r\n" + b'{"resource'
)


def open_stalled(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that send part of a request and then say nothing."""
    sockets = []
    try:
        for number in range(count):
            stalled = socket.create_connection(("127.0.0.1", port), timeout=5)
            sockets.append(stalled)
            stalled.sendall(PARTIAL_HEADERS if number % 2 else PARTIAL_BODY)
    except BaseException:
        for stalled in sockets:
            stalled.close()
        raise
    return sockets


def still_open(stalled: socket.socket) -> bool:
    """True when the server has neither answered nor closed the connection."""
    stalled.setblocking(False)  # with a timeout set, recv would wait for it first
    try:
        stalled.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False  # an answer, or b"" for a closed connection


def test_stalled_clients_do_not_block_others(server: LiveServer) -> None:
    base = server.base_url
    stalled = open_stalled(server.port, 50)
    try:
        started = time.monotonic()
        with requests.Session() as http:
            for number in range(10):
                before = time.monotonic()
                assert http.get(f"{base}/metadata", timeout=5).status_code == 200
                created = http.post(f"{base}/Patient", json=patient(f"S{number}"), headers=JSON_HEADERS, timeout=5)
                assert created.status_code == 201
                assert http.get(f"{base}/Patient/{created.json()['id']}", timeout=5).status_code == 200
                assert time.monotonic() - before < 3, "a normal client waited behind stalled ones"
                if number == 0 and time.monotonic() - started < 4:
                    # Served while every stalled connection was still open and unanswered
                    # (half-sent headers are dropped after 5 s of silence).
                    assert all(still_open(sock) for sock in stalled)
            # a fresh connection for each request too
            for _ in range(5):
                before = time.monotonic()
                assert requests.get(f"{base}/metadata", timeout=5).status_code == 200
                assert time.monotonic() - before < 3
        # Connections stalled in the middle of a body are still held open.
        assert all(still_open(sock) for sock in stalled[0::2])
    finally:
        for sock in stalled:
            sock.close()
    assert requests.get(f"{base}/metadata", timeout=5).status_code == 200


def test_stalled_uploads_are_eventually_dropped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """More stalled uploads than the server has connection slots must not lock everyone out.

    A client that sends headers and part of a body and then stalls holds a
    gevent connection slot; ``worker_connections`` slots per worker bound how
    many can be held. Half-sent headers are dropped after 5 s (gunicorn's
    keepalive) and a half-sent body after ``FHIR_CCM_BODY_TIMEOUT`` seconds
    (408). The limits are lowered here so few sockets suffice; a normal client
    must be answered once the stalled uploads time out.
    """
    monkeypatch.setenv("FHIR_CCM_WORKER_CONNECTIONS", "10")
    monkeypatch.setenv("FHIR_CCM_BODY_TIMEOUT", "3")
    server = LiveServer(tmp_path / "slots.db", free_port(), workers=2).start()
    drain = StderrDrain(server)
    stalled: list[socket.socket] = []
    try:
        # 30 uploads for 2 x 10 slots; the server accepts the surplus into its backlog.
        for _ in range(30):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            stalled.append(sock)
            sock.sendall(PARTIAL_BODY)
        time.sleep(0.5)
        started = time.monotonic()
        try:
            status = requests.get(f"{server.base_url}/metadata", timeout=20).status_code
        except requests.Timeout:
            pytest.fail(
                "with every connection slot held by a stalled upload (headers sent, 10 of 1000 body bytes),"
                f" a normal client got no answer in {time.monotonic() - started:.0f} s:"
                " the server never times out a request body that stops arriving"
            )
        assert status == 200
    finally:
        for sock in stalled:
            sock.close()
        drain.close()
        server.stop()


# -- the command line ---------------------------------------------------------------


def cli_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("FHIR_CCM_")}
    env.update(extra)
    return env


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fhir_ccm", *args],
        cwd=cwd,
        env=env if env is not None else cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_load_files(folder: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """A single resource, a collection Bundle and an ndjson file; returns the resources by (type, id)."""
    folder.mkdir(parents=True, exist_ok=True)
    single: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "cli-single",
        "gender": "female",
        "name": [{"family": "Single"}],
    }
    in_bundle: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": "cli-bundled", "gender": "male"},
        {
            "resourceType": "Goal",
            "id": "cli-goal",
            "lifecycleStatus": "active",
            "description": {"text": "walk 30 minutes a day"},
            "subject": {"reference": "Patient/cli-bundled"},
        },
    ]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in in_bundle]}
    lines: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": "cli-line-1", "gender": "other"},
        {"resourceType": "Patient", "id": "cli-line-2", "gender": "unknown", "birthDate": "1950-02-03"},
    ]
    (folder / "single.json").write_text(json.dumps(single, indent=2), encoding="utf-8")
    (folder / "bundle.json").write_text(json.dumps(bundle), encoding="utf-8")
    (folder / "lines.ndjson").write_text("\n".join(json.dumps(line) for line in lines) + "\n\n", encoding="utf-8")
    return {(r["resourceType"], r["id"]): r for r in [single, *in_bundle, *lines]}


def stored_state(database: Path) -> tuple[int, dict[tuple[str, str], int]]:
    """Total versions and the current version of every resource."""
    store = SQLiteStore(database)
    try:
        total = store.history(HistoryQuery(count=1000)).total
        current = {(v.resource_type, v.id): v.version for v in store.iter_current()}
    finally:
        store.close()
    return total, current


def test_cli_init_db_creates_the_database(tmp_path: Path) -> None:
    database = tmp_path / "sub" / "new.db"
    database.parent.mkdir()
    result = run_cli("init-db", "--database", str(database), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert database.is_file()
    connection = sqlite3.connect(database)
    try:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        connection.close()
    assert {"resources", "resource_versions"} <= tables
    assert stored_state(database) == (0, {})
    # init-db on an existing database keeps it as it is
    assert run_cli("init-db", "--database", str(database), cwd=tmp_path).returncode == 0


def test_cli_load_is_idempotent_and_served(tmp_path: Path) -> None:
    data = tmp_path / "data"
    expected = write_load_files(data)
    database = tmp_path / "load.db"
    assert run_cli("init-db", "--database", str(database), cwd=tmp_path).returncode == 0

    first = run_cli("load", "--database", str(database), str(data), cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "5 created" in first.stdout and "0 failed" in first.stdout, first.stdout
    total, current = stored_state(database)
    assert total == len(expected)
    assert current == {key: 1 for key in expected}

    # The same files again: nothing new, not even a version.
    second = run_cli("load", "--database", str(database), str(data), cwd=tmp_path)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "0 created, 0 updated, 5 unchanged" in second.stdout, second.stdout
    assert stored_state(database) == (total, current)

    # Loading the files one by one changes nothing either.
    third = run_cli("load", "--database", str(database), *(str(p) for p in sorted(data.iterdir())), cwd=tmp_path)
    assert third.returncode == 0
    assert stored_state(database) == (total, current)

    # The loaded database is what a server on it serves.
    server = LiveServer(database, free_port()).start()
    try:
        with requests.Session() as http:
            for (resource_type, id), resource in expected.items():
                read = http.get(f"{server.base_url}/{resource_type}/{id}", timeout=TIMEOUT)
                assert read.status_code == 200, (resource_type, id)
                body = read.json()
                assert body["meta"]["versionId"] == "1"
                assert {k: v for k, v in body.items() if k != "meta"} == resource
                history = http.get(f"{server.base_url}/{resource_type}/{id}/_history", timeout=TIMEOUT).json()
                assert history["total"] == 1
    finally:
        server.stop()


def test_cli_load_reports_failures_and_loads_the_rest(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_load_files(data)
    (data / "broken.json").write_text('{"resourceType": "Patient", ', encoding="utf-8")
    (data / "invalid.ndjson").write_text(
        '{"resourceType": "Patient", "id": "bad", "gender": "banana"}\n', encoding="utf-8"
    )
    database = tmp_path / "partial.db"
    result = run_cli("load", "--database", str(database), str(data), cwd=tmp_path)
    assert result.returncode == 1
    assert "broken.json" in result.stderr and "invalid.ndjson" in result.stderr, result.stderr
    assert "5 created" in result.stdout and "2 failed" in result.stdout, result.stdout
    total, current = stored_state(database)
    assert total == 5 and ("Patient", "bad") not in current


def test_cli_load_skips_a_broken_ndjson_line_and_loads_the_others(tmp_path: Path) -> None:
    """One line of a large export that is not JSON is reported by its number; the lines around it load."""
    data = tmp_path / "export"
    data.mkdir()
    lines = [
        '{"resourceType": "Patient", "id": "nd-1"}',
        "",
        '{"resourceType": "Patient", "id": "nd-2"',
        '{"resourceType": "Patient", "id": "nd-3"}\r',
    ]
    (data / "export.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")
    database = tmp_path / "export.db"
    result = run_cli("load", "--database", str(database), str(data), cwd=tmp_path)
    assert result.returncode == 1
    assert "export.ndjson line 3" in result.stderr, result.stderr
    assert "2 created" in result.stdout and "1 failed" in result.stdout, result.stdout
    _, current = stored_state(database)
    assert set(current) == {("Patient", "nd-1"), ("Patient", "nd-3")}


def test_cli_load_uses_the_database_from_the_environment(tmp_path: Path) -> None:
    data = tmp_path / "data"
    expected = write_load_files(data)
    database = tmp_path / "from-env.db"
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    result = run_cli("load", str(data), cwd=workdir, env=cli_env(FHIR_CCM_DATABASE=str(database)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert database.is_file()
    assert list(workdir.iterdir()) == [], "load wrote a database in the working directory instead"
    assert stored_state(database)[1] == {key: 1 for key in expected}

    # --database wins over the environment
    other = tmp_path / "option.db"
    result = run_cli(
        "load",
        "--database",
        str(other),
        str(data / "single.json"),
        cwd=workdir,
        env=cli_env(FHIR_CCM_DATABASE=str(database)),
    )
    assert result.returncode == 0, result.stderr
    assert stored_state(other)[1] == {("Patient", "cli-single"): 1}
    assert stored_state(database)[1] == {key: 1 for key in expected}
