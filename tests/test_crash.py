"""Crash safety: ``kill -9`` of the server in the middle of writes loses no acknowledged write.

Client threads create and update Patients over HTTP and record every write the
server acknowledged (201/200 with an ETag). The whole server (master and
workers) is killed with SIGKILL while they write. Afterwards the SQLite file
must pass ``PRAGMA integrity_check``, every acknowledged version must be stored
with its content, the current version of each resource must be its newest, and
a new server on the same file must serve all of it, find each by a search, and
accept new writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from conftest import LiveServer, free_port

from fhir_ccm.store.sqlite import SQLiteStore

FHIR_JSON = "application/fhir+json"
HEADERS = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
THREADS = 6
WRITE_SECONDS = 2.0
UPDATES_PER_RESOURCE = 4


@dataclass(frozen=True)
class Ack:
    """A write the server acknowledged: this version of this Patient holds this marker."""

    id: str
    version: int
    marker: str


@dataclass
class Writers:
    """Client threads writing until told to stop; they never raise."""

    base_url: str
    round: int
    existing: dict[int, str] = field(default_factory=dict)  # thread -> id of a Patient to go on updating
    acks: list[Ack] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)  # answers that were neither an ack nor a dead server
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for number in range(THREADS):
            thread = threading.Thread(target=self._run, args=(number,), name=f"writer-{number}", daemon=True)
            self.threads.append(thread)
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in self.threads), "a writer thread did not stop"

    def count(self) -> int:
        with self.lock:
            return len(self.acks)

    def _run(self, number: int) -> None:
        try:
            self._write(number)
        except BaseException as error:  # noqa: BLE001 - a thread must report, not raise
            with self.lock:
                self.unexpected.append(f"writer {number} crashed: {error!r}")

    def _write(self, number: int) -> None:
        target = self.existing.get(number)  # the Patient this thread updates next, if any
        updates, previous_version = 0, None
        deadline = time.monotonic() + 60
        with requests.Session() as http:
            for attempt in range(100_000):
                if self.stop.is_set() or time.monotonic() > deadline:
                    return
                marker = f"r{self.round}-t{number}-w{attempt}"
                resource: dict[str, Any] = {
                    "resourceType": "Patient",
                    "name": [{"family": f"Crash{number}", "given": [marker]}],
                }
                creating = target is None or updates >= UPDATES_PER_RESOURCE
                try:
                    if creating:
                        response = http.post(f"{self.base_url}/Patient", json=resource, headers=HEADERS, timeout=5)
                    else:
                        resource["id"] = target
                        response = http.put(
                            f"{self.base_url}/Patient/{target}", json=resource, headers=HEADERS, timeout=5
                        )
                except requests.RequestException:
                    # The server is gone (or going): this write was not acknowledged.
                    if self.stop.wait(0.05):
                        return
                    continue
                etag = response.headers.get("ETag", "")
                if response.status_code != (201 if creating else 200) or not etag.startswith('W/"'):
                    self._unexpected(f"{response.status_code} {etag!r} {response.text[:200]}")
                    continue
                try:
                    body = response.json()
                except ValueError:  # a response cut short by the kill is not an acknowledgement
                    continue
                version = int(etag[3:-1])
                if body["meta"]["versionId"] != str(version) or body["name"][0]["given"] != [marker]:
                    self._unexpected(f"acknowledged body does not match: {etag} {body}")
                    continue
                if creating:
                    if version != 1:
                        self._unexpected(f"a create answered {etag}")
                    target, updates = body["id"], 0
                else:
                    if previous_version is not None and version != previous_version + 1:
                        self._unexpected(f"Patient/{target}: version {version} after {previous_version}")
                    updates += 1
                previous_version = version
                with self.lock:
                    self.acks.append(Ack(body["id"], version, marker))

    def _unexpected(self, message: str) -> None:
        with self.lock:
            self.unexpected.append(message)


def write_then_kill(server: LiveServer, round: int, existing: dict[int, str] | None = None) -> Writers:
    """Write from several threads, then ``kill -9`` the server while they are still writing."""
    writers = Writers(server.base_url, round, dict(existing or {}))
    writers.start()
    try:
        started = time.monotonic()
        # Let writes flow for a while (at least some acknowledged), then kill mid-stream.
        while time.monotonic() - started < WRITE_SECONDS or writers.count() < 20:
            if time.monotonic() - started > 20:
                break
            time.sleep(0.05)
        acknowledged_before_kill = writers.count()
        server.kill()
    finally:
        writers.join()
        server.stop()  # the process is dead already; this closes its stderr pipe
    assert acknowledged_before_kill >= 20, f"only {acknowledged_before_kill} writes acknowledged before the kill"
    assert not writers.unexpected, writers.unexpected[:10]
    return writers


def check_database(database: Path, acks: list[Ack]) -> None:
    """The file is sound, and every acknowledged write is in it."""
    connection = sqlite3.connect(database, timeout=30)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        versions: dict[tuple[str, str], list[int]] = {}
        for type_, id, version in connection.execute(
            "SELECT type, id, version FROM resource_versions ORDER BY type, id, version"
        ):
            versions.setdefault((type_, id), []).append(version)
        current = {
            (type_, id): (version, seq)
            for type_, id, version, seq in connection.execute("SELECT type, id, version, seq FROM resources")
        }
        pointed_at = dict(  # the history row each current row points at
            ((r_type, r_id), (v_type, v_id, v_version))
            for r_type, r_id, v_type, v_id, v_version in connection.execute(
                "SELECT r.type, r.id, v.type, v.id, v.version"
                " FROM resources r JOIN resource_versions v ON v.seq = r.seq"
            )
        )
    finally:
        connection.close()

    # Every resource has versions 1..n with no gap, and its current row is version n.
    assert set(versions) == set(current)
    for key, numbers in versions.items():
        assert numbers == list(range(1, len(numbers) + 1)), (key, numbers)
        assert current[key][0] == numbers[-1], (key, current[key][0], numbers)
        assert pointed_at[key] == (*key, numbers[-1])

    store = SQLiteStore(database)
    try:
        for ack in acks:
            stored = store.vread("Patient", ack.id, ack.version)
            assert stored is not None, f"acknowledged Patient/{ack.id} version {ack.version} is lost"
            resource = json.loads(stored.json or "null")
            assert resource["name"][0]["given"] == [ack.marker], (ack, resource)
            assert resource["meta"]["versionId"] == str(ack.version)
            latest = store.read("Patient", ack.id)
            assert latest is not None and latest.version >= ack.version
    finally:
        store.close()


def latest_acks(acks: list[Ack]) -> dict[str, Ack]:
    latest: dict[str, Ack] = {}
    for ack in acks:
        if ack.id not in latest or ack.version > latest[ack.id].version:
            latest[ack.id] = ack
    return latest


def test_kill_9_during_writes_loses_no_acknowledged_write(tmp_path: Path) -> None:
    started = time.monotonic()
    database = tmp_path / "crash.db"

    # Round 1: write, kill -9 in the middle.
    first = write_then_kill(LiveServer(database, free_port()).start(), round=1)
    check_database(database, first.acks)

    # A new server on the same file serves every acknowledged version...
    server = LiveServer(database, free_port()).start()
    try:
        with requests.Session() as http:
            for ack in latest_acks(first.acks).values():
                read = http.get(f"{server.base_url}/Patient/{ack.id}", headers=HEADERS, timeout=10)
                assert read.status_code == 200, (ack, read.text[:200])
                assert int(read.headers["ETag"][3:-1]) >= ack.version
                # Its search index rows survived with it: a search by its current content finds it.
                (given,) = read.json()["name"][0]["given"]
                found = http.get(f"{server.base_url}/Patient", params={"given:exact": given}, timeout=10)
                assert [entry["resource"]["id"] for entry in found.json().get("entry", [])] == [ack.id], given
            for ack in first.acks:
                old = http.get(f"{server.base_url}/Patient/{ack.id}/_history/{ack.version}", timeout=10)
                assert old.status_code == 200, (ack, old.text[:200])
                assert old.json()["name"][0]["given"] == [ack.marker]
        # ...and takes new writes, continuing round-1 resources' versions; kill it again mid-stream.
        resumed = sorted(latest_acks(first.acks))[:THREADS]
        second = write_then_kill(server, round=2, existing=dict(enumerate(resumed)))
    finally:
        server.stop()

    check_database(database, first.acks + second.acks)
    # Updates to round-1 resources continued their version numbers.
    continued = {ack.id for ack in second.acks} & {ack.id for ack in first.acks}
    assert continued, "no round-1 resource was updated after the restart"
    for id in continued:
        before = max(ack.version for ack in first.acks if ack.id == id)
        assert min(ack.version for ack in second.acks if ack.id == id) > before
    elapsed = time.monotonic() - started
    assert elapsed < 120, f"the crash test took {elapsed:.0f} s"
