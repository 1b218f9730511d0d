"""Parallel clients against a real multi-worker server: no lost update, no duplicate, no partial transaction.

Every test talks HTTP to ``python -m fhir_ccm serve`` (gunicorn, 2 worker
processes) on 127.0.0.1 from several threads, each with its own ``requests``
session, started together by a barrier. The assertions hold for any
interleaving the scheduler picks.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import LiveServer, StderrDrain, free_port

FHIR_JSON = "application/fhir+json"
HEADERS = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON}
TIMEOUT = 20  # seconds, for every HTTP request of this file
CLIENTS = 16
MRN = "http://hospital.example.org/mrn"
TX_TAG = "http://example.org/fhir-ccm/test-transaction"

Version = tuple[str, str, int]  # (type, id, version)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One server for the tests that do not kill it; each test uses resources of its own."""
    live = LiveServer(tmp_path_factory.mktemp("concurrency") / "live.db", free_port(), workers=2).start()
    drain = StderrDrain(live)
    try:
        yield live
    finally:
        live.kill()  # nothing to keep: no need to wait for a graceful shutdown
        log = drain.close()
        live.stop()
    assert "Traceback" not in log, log[-5000:]


def in_parallel(count: int, work: Callable[[int, requests.Session], Any]) -> list[Any]:
    """Run ``work(n, session)`` in ``count`` threads started together; their results in thread order."""
    barrier = threading.Barrier(count, timeout=30)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(n: int) -> None:
        with requests.Session() as session:
            session.headers.update(HEADERS)
            try:
                barrier.wait()
                results[n] = work(n, session)
            except BaseException as error:  # reported in the main thread
                errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a client thread hung"
    if errors:
        raise errors[0]
    return results


def database_rows(database: Path, sql: str, *args: Any) -> list[tuple]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


def patient(mrn: str, family: str = "Garcia", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": MRN, "value": mrn}],
        "name": [{"family": family}],
        **extra,
    }


def history_pages(session: requests.Session | None, url: str, params: dict[str, str]) -> list[dict]:
    """Every entry of a history, following next links; newest first, as the server sends them."""
    if session is None:
        with requests.Session() as own:
            return history_pages(own, url, params)
    entries: list[dict] = []
    next_url: str | None = url
    query: dict[str, str] | None = params
    while next_url:
        response = session.get(next_url, params=query, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        page = response.json()
        entries += page.get("entry", [])
        next_url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
        query = None
    return entries


def version_of(entry: dict) -> Version:
    resource_type, id = entry["fullUrl"].rsplit("/", 2)[-2:]
    return resource_type, id, int(entry["response"]["etag"][3:-1])


# -- conditional create -------------------------------------------------------------------


def test_simultaneous_conditional_creates_leave_exactly_one_resource(server):
    for round_number in range(3):
        value = f"race-{round_number}"

        def create(n: int, session: requests.Session, value: str = value) -> tuple[int, str]:
            response = session.post(
                f"{server.base_url}/Patient",
                data=json.dumps(patient(value, family=f"Client{n}")),
                headers={"If-None-Exist": f"identifier={MRN}|{value}"},
                timeout=TIMEOUT,
            )
            assert response.status_code in (200, 201), response.text
            return response.status_code, response.json()["id"]

        results = in_parallel(CLIENTS, create)
        statuses = Counter(status for status, _ in results)
        assert statuses == {201: 1, 200: CLIENTS - 1}
        assert len({id for _, id in results}) == 1
        found = requests.get(f"{server.base_url}/Patient", params={"identifier": f"{MRN}|{value}"}, timeout=TIMEOUT)
        assert found.json()["total"] == 1
        rows = database_rows(
            server.database,
            "SELECT count(*) FROM resource_versions WHERE type = 'Patient' AND json LIKE ?",
            f'%"value":"{value}"%',
        )
        assert rows == [(1,)]


def test_simultaneous_identical_transactions_create_one_set(server):
    def bundle(n: int) -> dict:
        return {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {
                    "fullUrl": "urn:uuid:11111111-2222-4333-8444-555555555555",
                    "resource": patient("tx-race"),
                    "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={MRN}|tx-race"},
                },
                {
                    "resource": {
                        "resourceType": "Observation",
                        "identifier": [{"system": "http://example.org/obs", "value": "tx-race"}],
                        "status": "final",
                        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
                        "subject": {"reference": "urn:uuid:11111111-2222-4333-8444-555555555555"},
                    },
                    "request": {"method": "PUT", "url": "Observation?identifier=http://example.org/obs|tx-race"},
                },
            ],
        }

    def send(n: int, session: requests.Session) -> list[str]:
        response = session.post(server.base_url, data=json.dumps(bundle(n)), timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        return [entry["response"]["location"] for entry in response.json()["entry"]]

    locations = in_parallel(CLIENTS, send)
    assert len({tuple(location) for location in locations}) == 1  # everyone got the same resources
    patient_location, observation_location = locations[0]
    assert patient_location.endswith("/_history/1") and observation_location.endswith("/_history/1")
    patients = requests.get(f"{server.base_url}/Patient", params={"identifier": "tx-race"}, timeout=TIMEOUT).json()
    assert patients["total"] == 1
    observations = requests.get(
        f"{server.base_url}/Observation", params={"subject": patient_location.rsplit("/", 2)[0]}, timeout=TIMEOUT
    ).json()
    assert observations["total"] == 1


# -- read, then update with If-Match --------------------------------------------------------


def test_read_then_update_with_if_match_never_loses_an_update(server):
    url = f"{server.base_url}/Patient/counter"
    created = requests.put(
        url, data=json.dumps({**patient("counter"), "id": "counter"}), headers=HEADERS, timeout=TIMEOUT
    )
    assert created.status_code == 201
    attempts = 12

    def update(n: int, session: requests.Session) -> list[tuple[int, str]]:
        written: list[tuple[int, str]] = []
        for attempt in range(attempts):
            current = session.get(url, timeout=TIMEOUT)
            assert current.status_code == 200
            version = int(current.headers["ETag"][3:-1])
            resource = current.json()
            marker = f"client{n}-attempt{attempt}"
            resource["name"][0]["given"] = [marker]
            response = session.put(
                url, data=json.dumps(resource), headers={"If-Match": f'W/"{version}"'}, timeout=TIMEOUT
            )
            assert response.status_code in (200, 412), response.text
            if response.status_code == 200:
                assert response.headers["ETag"] == f'W/"{version + 1}"'
                written.append((version + 1, marker))
            else:
                assert response.json()["resourceType"] == "OperationOutcome"
        return written

    results = in_parallel(CLIENTS, update)
    written = sorted(write for client_writes in results for write in client_writes)
    versions = [version for version, _ in written]
    assert len(versions) == len(set(versions)), "a version number was written twice"
    final = requests.get(url, timeout=TIMEOUT)
    final_version = int(final.headers["ETag"][3:-1])
    assert final_version == len(written) + 1
    assert versions == list(range(2, final_version + 1))
    history = history_pages(None, f"{url}/_history", {"_count": "50"})
    assert [int(e["resource"]["meta"]["versionId"]) for e in history] == list(range(final_version, 0, -1))
    assert len(history) == final_version
    markers = {
        int(e["resource"]["meta"]["versionId"]): e["resource"]["name"][0].get("given", [None])[0] for e in history
    }
    assert all(markers[version] == marker for version, marker in written), "a version holds another client's update"


# -- sync: history paging while writes continue ----------------------------------------------


def test_history_followers_see_every_version_once_in_order_while_writes_continue(server):
    """Two followers (system and type level) poll ``_history?_since=`` with ``_count=3`` while a writer writes.

    The writer writes in bursts and, between bursts, waits until each follower
    has finished two more passes, so every burst is first seen by a pass of its
    own and the followers stitch passes together at their ``_since`` boundaries;
    within a burst they page while writes land.
    """
    newest = requests.get(f"{server.base_url}/_history", params={"_count": "1"}, timeout=TIMEOUT).json()
    first_since = newest["entry"][0]["response"]["lastModified"] if newest.get("entry") else "2000-01-01T00:00:00Z"
    done = threading.Event()
    passes = [0, 0]  # completed passes of each follower
    progress = threading.Condition()
    written: list[Version] = []

    def write(session: requests.Session, n: int) -> None:
        id = f"sync{n % 7}"
        if n % 5 == 4:
            response = session.delete(f"{server.base_url}/Patient/{id}", timeout=TIMEOUT)
            assert response.status_code == 204
            if "ETag" in response.headers:  # absent when there was nothing to delete
                written.append(("Patient", id, int(response.headers["ETag"][3:-1])))
        elif n % 6 == 5:
            bundle = {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "resource": {**patient(f"s{n}", family=f"V{n}"), "id": id},
                        "request": {"method": "PUT", "url": f"Patient/{id}"},
                    },
                    {
                        "resource": {"resourceType": "Basic", "code": {"text": f"b{n}"}},
                        "request": {"method": "POST", "url": "Basic"},
                    },
                ],
            }
            response = session.post(server.base_url, data=json.dumps(bundle), timeout=TIMEOUT)
            assert response.status_code == 200, response.text
            for entry in reversed(response.json()["entry"]):  # the POST runs before the PUT
                resource_type, rid, _, version = entry["response"]["location"].split("/")
                written.append((resource_type, rid, int(version)))
        else:
            resource = {**patient(f"s{n}", family=f"V{n}"), "id": id}
            response = session.put(f"{server.base_url}/Patient/{id}", data=json.dumps(resource), timeout=TIMEOUT)
            assert response.status_code in (200, 201), response.text
            written.append(("Patient", id, int(response.headers["ETag"][3:-1])))

    def passes_done(targets: list[int]) -> Callable[[], bool]:
        return lambda: all(count >= target for count, target in zip(passes, targets, strict=True))

    def writer(session: requests.Session) -> None:
        try:
            for burst in range(4):
                for n in range(burst * 12, burst * 12 + 12):
                    write(session, n)
                with progress:  # the second pass starts after this burst: it sees all of it
                    assert progress.wait_for(passes_done([count + 2 for count in passes]), 30)
        finally:
            done.set()

    def follower(session: requests.Session, number: int, path: str) -> tuple[list[tuple[Version, str]], int]:
        """Poll ``_history?_since=`` and page it with next links, as a system keeping a copy in sync would."""
        log: list[tuple[Version, str]] = []
        since = first_since
        seen: set[Version] = set()
        quiet_passes = fruitful_passes = 0
        while quiet_passes < 2:
            writing = not done.is_set()
            entries = history_pages(session, f"{server.base_url}/{path}", {"_since": since, "_count": "3"})
            versions = [version_of(entry) for entry in entries]
            assert len(versions) == len(set(versions)), "one pass saw a version twice"
            new = []
            for entry in reversed(entries):  # oldest first
                version, modified = version_of(entry), entry["response"]["lastModified"]
                assert modified >= since
                if version in seen:
                    assert modified == since, "only the versions at the _since instant itself come again"
                    continue
                new.append((version, modified))
                seen.add(version)
            log += new
            if new:
                since = new[-1][1]
                fruitful_passes += 1
            quiet_passes = 0 if (writing or new) else quiet_passes + 1
            with progress:
                passes[number] += 1
                progress.notify_all()
            time.sleep(0.005)
        return log, fruitful_passes

    def run(n: int, session: requests.Session) -> Any:
        if n == 0:
            return writer(session)
        return follower(session, n - 1, "_history" if n == 1 else "Patient/_history")

    _, (system_log, system_passes), (type_log, type_passes) = in_parallel(3, run)
    assert system_passes >= 4 and type_passes >= 4  # several passes were stitched together
    everything = history_pages(None, f"{server.base_url}/_history", {"_since": first_since})
    baseline = [version_of(e) for e in reversed(everything)]
    system_versions = [version for version, _ in system_log]
    assert system_versions == baseline  # every version, once, in the order the server wrote them
    assert [v for v in system_versions if v in set(written)] == written  # the order the writer wrote them
    assert len(written) > 40
    type_versions = [version for version, _ in type_log]
    assert type_versions == [v for v in system_versions if v[0] == "Patient"]
    for log in (system_log, type_log):
        modified = [m for _, m in log]
        assert modified == sorted(modified)

    # _at: the versions current at some instants of the run, at system and type level, paged the same way
    for _, moment in system_log[len(system_log) // 4 :: max(1, len(system_log) // 4)]:
        for path, log in (("_history", system_versions), ("Patient/_history", type_versions)):
            current: dict[tuple[str, str], Version] = {}
            for version, modified in system_log:
                if modified <= moment and version in set(log):
                    current[version[:2]] = version
            at = {
                version_of(e) for e in history_pages(None, f"{server.base_url}/{path}", {"_at": moment, "_count": "2"})
            }
            older = {version for version in at if version not in set(log)}  # written before this test
            assert at - older == set(current.values()), (path, moment)


# -- durability: kill -9 while transactions arrive ------------------------------------------


def tagged_transaction(code: str, size: int = 20) -> dict:
    """``size`` entries, half Patients, half Observations pointing at them, all tagged ``code``."""
    meta = {"tag": [{"system": TX_TAG, "code": code}]}
    entries = []
    for n in range(size // 2):
        full_url = f"urn:uuid:00000000-0000-4000-8000-{n:012d}"
        entries.append(
            {
                "fullUrl": full_url,
                "resource": {**patient(f"{code}-{n}", family=f"Tx{code}"), "meta": meta},
                "request": {"method": "POST", "url": "Patient"},
            }
        )
        entries.append(
            {
                "resource": {
                    "resourceType": "Observation",
                    "meta": meta,
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
                    "subject": {"reference": full_url},
                    "valueQuantity": {"value": n, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
                },
                "request": {"method": "POST", "url": "Observation"},
            }
        )
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


CURRENT_JSON = "SELECT v.json FROM resources r JOIN resource_versions v ON v.seq = r.seq WHERE v.json LIKE ?"
EVERY_VERSION_JSON = "SELECT json FROM resource_versions WHERE json LIKE ?"


def tagged_codes(database: Path, sql: str) -> Counter[str]:
    """How many current resources (``CURRENT_JSON``) or versions each test transaction left."""
    found: Counter[str] = Counter()
    for (text,) in database_rows(database, sql, f"%{TX_TAG}%"):
        for tag in json.loads(text)["meta"].get("tag", []):
            if tag.get("system") == TX_TAG:
                found[tag["code"]] += 1
    return found


def test_kill_9_leaves_acknowledged_transactions_whole_and_no_transaction_partial(server):
    """The last test of the file: it kills the shared server, then serves its database again."""
    acknowledged: list[str] = []
    killed = threading.Event()
    size = 20

    def post_transactions(n: int, session: requests.Session) -> None:
        for number in range(1000):
            code = f"c{n}-{number}"
            try:
                response = session.post(
                    server.base_url, data=json.dumps(tagged_transaction(code, size)), timeout=TIMEOUT
                )
            except requests.RequestException:
                assert killed.is_set(), "the server failed before it was killed"
                return
            assert response.status_code == 200, response.text
            acknowledged.append(code)
            if killed.is_set():
                return

    def killer() -> None:
        deadline = time.monotonic() + 40
        while len(acknowledged) < 20 and time.monotonic() < deadline:
            time.sleep(0.02)
        killed.set()
        server.kill()  # kill -9 of the master and both workers, transactions in flight

    kill_thread = threading.Thread(target=killer)
    kill_thread.start()
    try:
        in_parallel(6, post_transactions)
    finally:
        kill_thread.join(60)
        server.kill()
    assert len(acknowledged) >= 20

    restarted = LiveServer(server.database, free_port(), workers=2).start()
    drain = StderrDrain(restarted)
    try:
        assert database_rows(server.database, "PRAGMA integrity_check") == [("ok",)]
        assert database_rows(server.database, "PRAGMA foreign_key_check") == []
        stored = tagged_codes(server.database, CURRENT_JSON)
        assert all(stored[code] == size for code in acknowledged), "an acknowledged transaction was lost"
        partial = {code: found for code, found in stored.items() if found != size}
        assert not partial, f"transactions partly stored: {partial}"
        assert tagged_codes(server.database, EVERY_VERSION_JSON) == stored  # one version each, no strays
        with requests.Session() as session:
            for code in list(stored)[:: max(1, len(stored) // 10)]:  # the search indexes agree
                for resource_type in ("Patient", "Observation"):
                    found = session.get(
                        f"{restarted.base_url}/{resource_type}",
                        params={"_tag": f"{TX_TAG}|{code}", "_summary": "count"},
                        timeout=TIMEOUT,
                    )
                    assert found.json()["total"] == size // 2, (code, resource_type)
            after = session.post(
                restarted.base_url, data=json.dumps(tagged_transaction("after")), headers=HEADERS, timeout=TIMEOUT
            )
            assert after.status_code == 200
        assert tagged_codes(server.database, CURRENT_JSON)["after"] == size
    finally:
        restarted.kill()
        log = drain.close()
        restarted.stop()
    assert "Traceback" not in log, log[-5000:]
