"""Starting and stopping the servers under test, each on a free port with its own temporary database.

A server runs in its own process group so that stopping it stops gunicorn's
master and every worker, also when the benchmark is interrupted.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from bench import trivial_app
from bench.cpu import children, process_cpu_seconds

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent  # the repository: where ``bench`` and ``fhir_ccm`` import from
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
READY_PATH = "/fhir/metadata"
# Lines of a server log that mean something went wrong.
PROBLEM = re.compile(r"Traceback|\bERROR\b|CRITICAL|WORKER TIMEOUT|Worker .*(exited|was sent)|Exception", re.IGNORECASE)


def free_port() -> int:
    """A TCP port nobody listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


class Server:
    """A server process: ``with Server(...) as server:`` starts it, waits until it answers, and always stops it."""

    def __init__(
        self, name: str, command: Sequence[str], port: int, log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.command = list(command)
        self.port = port
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        """The base path of the FHIR API; both servers under test serve ``/fhir``."""
        return "/fhir"

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=ROOT,
                start_new_session=True,
            )
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Poll ``/fhir/metadata`` until it answers 200; raise if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited while starting:\n{self.log_tail()}")
            try:
                connection = http.client.HTTPConnection(HOST, self.port, timeout=2)
                try:
                    connection.request("GET", READY_PATH)
                    response = connection.getresponse()
                    response.read()
                    if response.status == 200:
                        return
                finally:
                    connection.close()
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer {READY_PATH} within {timeout:.0f} s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM the process group (gunicorn stops gracefully), SIGKILL it if it lingers."""
        process = self.process
        if process is None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # Workers may outlive the master by a moment; make sure the group is gone.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process = None

    def pids(self) -> list[int]:
        """The master and its worker processes (Linux ``/proc``); empty when not running."""
        if self.process is None:
            return []
        return [self.process.pid, *children(self.process.pid)]

    def cpu_seconds(self) -> float:
        """User + system CPU seconds used so far by the master and its live workers; NaN off Linux."""
        return process_cpu_seconds(self.pids())

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def problems(self, limit: int = 20) -> list[str]:
        """Lines of the server's log that report errors, crashes or worker restarts."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if PROBLEM.search(line)][:limit]


def fhir_ccm_server(workdir: Path, workers: int, database: Path | None = None) -> Server:
    """The real server: ``python -m fhir_ccm serve`` on ``database`` (a fresh one in ``workdir`` by default)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "fhir_ccm",
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--database",
        str(database or workdir / "fhir-ccm.db"),
        "--workers",
        str(workers),
    ]
    # The benchmark Patient claims US Core, whose profiles the server does not hold: store such claims.
    log = workdir / (f"fhir-ccm-{database.stem}.log" if database else "fhir-ccm.log")
    return Server("fhir-ccm", command, port, log, env={"FHIR_CCM_UNKNOWN_PROFILES": "warn"})


def trivial_server(workdir: Path, workers: int) -> Server:
    """The baseline: ``bench.trivial_app`` under gunicorn with the real server's worker class and settings."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{HOST}:{port}",
        "--worker-class",
        "gevent",
        "--workers",
        str(workers),
        "--worker-connections",
        "1000",
        "--timeout",
        "60",
        "--graceful-timeout",
        "10",
        "--keep-alive",
        "5",
        "--log-level",
        "warning",
        "--error-logfile",
        "-",
        "bench.trivial_app:create_app()",
    ]
    database = workdir / "trivial.db"
    # Made here, before the workers start: two workers creating a new file at once can collide.
    trivial_app.initialize(str(database))
    env = {"BENCH_TRIVIAL_DATABASE": str(database)}
    return Server("trivial", command, port, workdir / "trivial.log", env)
