"""Fixtures: a fresh app and SQLite file per test, and a real gunicorn server."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from fhir_ccm.app import create_app
from fhir_ccm.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# The served data set, without the coordination engine's golden scenarios.
EXAMPLE_DATA = sorted(path for path in EXAMPLES.iterdir() if path.is_dir() and path.name != "reconcile")
FHIR_JSON = "application/fhir+json"


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "fhir-ccm.db"


@pytest.fixture
def app(database: Path):
    app = create_app({"database": str(database)})
    yield app
    app.extensions["fhir_ccm.store"].close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def store(database: Path) -> Iterator[SQLiteStore]:
    store = SQLiteStore(database)
    yield store
    store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    """A real ``python -m fhir_ccm serve`` process on 127.0.0.1."""

    database: Path
    port: int
    workers: int = 2
    process: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def start(self) -> LiveServer:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "fhir_ccm",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--database",
                str(self.database),
                "--workers",
                str(self.workers),
            ],
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited: {self.process.stderr.read().decode() if self.process.stderr else ''}"
                )
            try:
                if requests.get(self.base_url + "/metadata", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not start within 30 s")

    def kill(self) -> None:
        """``kill -9`` of the master and every worker: no chance to clean up."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if self.process and self.process.stderr:
            self.process.stderr.close()


class StderrDrain:
    """Reads the server's stderr pipe while a test runs.

    conftest's LiveServer gives the server a pipe for stderr that nobody
    reads; a server that logs more than a pipe buffer would block. This reads
    it (with ``select``, so the thread always stops when asked) and keeps the
    text, so tests can also check that no traceback was logged.
    """

    def __init__(self, server: LiveServer) -> None:
        assert server.process is not None and server.process.stderr is not None
        self._fd = server.process.stderr.fileno()
        self._stop = threading.Event()
        self._chunks: list[bytes] = []
        self._thread = threading.Thread(target=self._run, name="stderr-drain", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select([self._fd], [], [], 0.1)
                if readable:
                    chunk = os.read(self._fd, 65536)
                    if not chunk:
                        return
                    self._chunks.append(chunk)
        except (OSError, ValueError):
            return

    def close(self) -> str:
        """Stop reading; the text read so far."""
        self._stop.set()
        self._thread.join(5)
        return self.text

    @property
    def text(self) -> str:
        return b"".join(self._chunks).decode("utf-8", "replace")


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "live.db", free_port()).start()
    yield server
    server.stop()
