"""The baseline: the least a Flask + SQLite server can do for the same requests.

It stores and returns JSON blobs in one table ``(type, id, version, json)``
with the real store's durability settings (WAL, ``synchronous=FULL``,
``busy_timeout``, each write in ``BEGIN IMMEDIATE``) and no validation, no
content negotiation, no search columns. The benchmark serves it with gunicorn
and the real server's worker class and worker count:

    BENCH_TRIVIAL_DATABASE=/tmp/t.db gunicorn -k gevent -w 2 'bench.trivial_app:create_app()'

One connection per worker process: gevent greenlets share it safely because
no SQLite call yields, so a transaction never interleaves with another.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid

from flask import Flask, Response, request

DATABASE_ENV = "BENCH_TRIVIAL_DATABASE"
BUSY_TIMEOUT_MS = 30_000
FHIR_JSON = "application/fhir+json"

_connections: dict[int, sqlite3.Connection] = {}


def connect(path: str) -> sqlite3.Connection:
    """A connection with the real store's pragmas; one per process (made after gunicorn forks)."""
    pid = os.getpid()
    connection = _connections.get(pid)
    if connection is None:
        connection = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        _connections[pid] = connection
    return connection


def initialize(path: str) -> None:
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS blobs ("
            " type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, json TEXT NOT NULL,"
            " PRIMARY KEY (type, id, version))"
        )
    finally:
        connection.close()


def _json(body: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status=status, headers=headers, content_type=FHIR_JSON)


def _not_found() -> Response:
    return _json('{"resourceType":"OperationOutcome"}', 404)


def create_app() -> Flask:
    """The WSGI app on the SQLite file named by ``$BENCH_TRIVIAL_DATABASE``."""
    path = os.environ[DATABASE_ENV]
    initialize(path)
    app = Flask(__name__)

    def write(resource_type: str, id: str, status: int) -> Response:
        resource = json.loads(request.get_data())
        connection = connect(path)
        connection.execute("BEGIN IMMEDIATE")
        try:
            (latest,) = connection.execute(
                "SELECT coalesce(max(version), 0) FROM blobs WHERE type = ? AND id = ?", (resource_type, id)
            ).fetchone()
            version = latest + 1
            resource["id"] = id
            resource["meta"] = {**resource.get("meta", {}), "versionId": str(version)}
            blob = json.dumps(resource, separators=(",", ":"))
            connection.execute("INSERT INTO blobs VALUES (?, ?, ?, ?)", (resource_type, id, version, blob))
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
        location = f"{request.host_url}fhir/{resource_type}/{id}/_history/{version}"
        return _json(blob, status, {"Location": location, "ETag": f'W/"{version}"'})

    @app.get("/fhir/metadata")
    def metadata() -> Response:
        return _json('{"resourceType":"CapabilityStatement","status":"active","kind":"instance"}')

    @app.post("/fhir/<resource_type>")
    def create(resource_type: str) -> Response:
        return write(resource_type, str(uuid.uuid4()), 201)

    @app.put("/fhir/<resource_type>/<id>")
    def update(resource_type: str, id: str) -> Response:
        return write(resource_type, id, 200)

    @app.get("/fhir/<resource_type>/<id>")
    def read(resource_type: str, id: str) -> Response:
        row = (
            connect(path)
            .execute(
                "SELECT version, json FROM blobs WHERE type = ? AND id = ? ORDER BY version DESC LIMIT 1",
                (resource_type, id),
            )
            .fetchone()
        )
        return _json(row[1], headers={"ETag": f'W/"{row[0]}"'}) if row else _not_found()

    @app.get("/fhir/<resource_type>/<id>/_history/<int:version>")
    def vread(resource_type: str, id: str, version: int) -> Response:
        row = (
            connect(path)
            .execute("SELECT json FROM blobs WHERE type = ? AND id = ? AND version = ?", (resource_type, id, version))
            .fetchone()
        )
        return _json(row[0], headers={"ETag": f'W/"{version}"'}) if row else _not_found()

    @app.get("/fhir/<resource_type>/<id>/_history")
    def history(resource_type: str, id: str) -> Response:
        rows = (
            connect(path)
            .execute(
                "SELECT version, json FROM blobs WHERE type = ? AND id = ? ORDER BY version DESC",
                (resource_type, id),
            )
            .fetchall()
        )
        full_url = f"{request.host_url}fhir/{resource_type}/{id}"
        entries = ",".join(
            f'{{"fullUrl":"{full_url}","resource":{blob},"response":{{"status":"200","etag":"W/\\"{version}\\""}}}}'
            for version, blob in rows
        )
        return _json(f'{{"resourceType":"Bundle","type":"history","total":{len(rows)},"entry":[{entries}]}}')

    return app
