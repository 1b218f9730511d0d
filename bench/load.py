"""The load generator: closed-loop clients in separate processes, each on one keep-alive connection.

Every client process sends one request, reads the whole answer, and sends the
next, for a warm-up and then a fixed measuring window; only requests started
inside the window are counted. The client processes share the machine with
the server under test, so at high rates they take CPU from it: the reported
``client_cpu_s`` shows how much.
"""

from __future__ import annotations

import http.client
import math
import multiprocessing
import time
from array import array
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier
from typing import Any

from bench.cpu import machine_busy_seconds
from bench.servers import HOST, Server

FHIR_JSON = "application/fhir+json"
CONNECT_TIMEOUT_S = 30.0
SYNC_TIMEOUT_S = 30.0
MAX_REQUESTS_PER_CLIENT = 2_000_000  # a bound on every loop besides the clock
MAX_ERROR_SAMPLES = 3
ERROR_BACKOFF_S = 0.01
ROUNDS = 4  # measuring windows per scenario and server, the servers taking turns
WINDOW_SHARE = 0.5  # each window lasts this share of --duration: 4 windows measure twice --duration per server
WINDOW_WARMUP_S = 0.5  # unmeasured requests before each window (the servers are warm after the first)


@dataclass(frozen=True)
class RequestShape:
    """What each client sends: one method, a body or none, and paths taken in turn."""

    method: str
    paths: tuple[str, ...]
    body: bytes | None = None
    content_type: str = FHIR_JSON

    def headers(self) -> dict[str, str]:
        headers = {"Accept": FHIR_JSON}
        if self.body is not None:
            headers["Content-Type"] = self.content_type
        return headers


@dataclass(frozen=True)
class LoadSpec:
    port: int
    shape: RequestShape
    clients: int
    warmup_s: float
    duration_s: float


@dataclass
class LoadResult:
    clients: int
    duration_s: float
    requests: int
    per_client_requests: list[int]  # how evenly the server served the clients
    errors: int
    statuses: dict[int, int]
    latencies_ms: list[float] = field(repr=False)
    error_samples: list[str]
    client_cpu_s: float  # the client processes, inside the window
    server_cpu_s: float  # the server's master and workers, inside the window
    machine_cpu_s: float  # every process on the machine, inside the window

    @property
    def other_cpu_s(self) -> float:
        """CPU used by neither the server nor the load generator: noise from the rest of the machine."""
        return max(0.0, self.machine_cpu_s - self.server_cpu_s - self.client_cpu_s)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    def percentile_ms(self, p: float) -> float:
        """Nearest-rank percentile of the latencies; NaN when nothing was measured."""
        if not self.latencies_ms:
            return float("nan")
        rank = max(1, math.ceil(p / 100 * len(self.latencies_ms)))
        return self.latencies_ms[rank - 1]

    @classmethod
    def combined(cls, results: list[LoadResult]) -> LoadResult:
        """Several measuring windows of the same load as one: their requests, latencies and CPU summed."""
        first = results[0]
        per_client = [sum(counts) for counts in zip(*(r.per_client_requests for r in results), strict=True)]
        statuses: Counter[int] = Counter()
        for result in results:
            statuses.update(result.statuses)
        return cls(
            clients=first.clients,
            duration_s=sum(result.duration_s for result in results),
            requests=sum(result.requests for result in results),
            per_client_requests=per_client,
            errors=sum(result.errors for result in results),
            statuses=dict(statuses),
            latencies_ms=sorted(latency for result in results for latency in result.latencies_ms),
            error_samples=[sample for result in results for sample in result.error_samples][:10],
            client_cpu_s=sum(result.client_cpu_s for result in results),
            server_cpu_s=sum(result.server_cpu_s for result in results),
            machine_cpu_s=sum(result.machine_cpu_s for result in results),
        )

    def summary(self) -> dict[str, Any]:
        """The figures, JSON-ready."""
        return {
            "clients": self.clients,
            "duration_s": self.duration_s,
            "requests": self.requests,
            "per_client_requests": self.per_client_requests,
            "requests_per_s": round(self.requests_per_s, 1),
            "p50_ms": round(self.percentile_ms(50), 3),
            "p90_ms": round(self.percentile_ms(90), 3),
            "p99_ms": round(self.percentile_ms(99), 3),
            "max_ms": round(self.latencies_ms[-1], 3) if self.latencies_ms else None,
            "errors": self.errors,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "error_samples": self.error_samples,
            "client_cpu_s": round(self.client_cpu_s, 3),
            "server_cpu_s": round(self.server_cpu_s, 3),
            "machine_cpu_s": round(self.machine_cpu_s, 3),
            "other_cpu_s": round(self.other_cpu_s, 3),
        }


def _client(index: int, spec: LoadSpec, barrier: Barrier, start: Any, results: Any) -> None:
    """One client process: connect, synchronise with the others, run the loop, send back what it saw."""
    shape = spec.shape
    headers = shape.headers()
    connection = http.client.HTTPConnection(HOST, spec.port, timeout=CONNECT_TIMEOUT_S)
    latencies = array("d")
    statuses: Counter[int] = Counter()
    samples: list[str] = []
    cpu_start = cpu_end = 0.0
    try:
        try:
            connection.connect()
        except OSError:
            barrier.abort()  # the parent and the other clients give up at once
            raise
        barrier.wait(SYNC_TIMEOUT_S)  # everyone connected
        barrier.wait(SYNC_TIMEOUT_S)  # the parent has set the start time
        measure_from = start.value + spec.warmup_s
        measure_to = measure_from + spec.duration_s
        path_count = len(shape.paths)
        position = index * path_count // spec.clients
        measuring = False
        for _ in range(MAX_REQUESTS_PER_CLIENT):
            began = time.monotonic()
            if began >= measure_to:
                break
            if not measuring and began >= measure_from:
                measuring, cpu_start = True, time.process_time()
            path = shape.paths[position % path_count]
            position += 1
            try:
                connection.request(shape.method, path, shape.body, headers)
                response = connection.getresponse()
                body = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as error:
                status, body = 0, repr(error).encode()
                connection.close()  # reopened by the next request
                time.sleep(ERROR_BACKOFF_S)
            ended = time.monotonic()
            if measuring:
                latencies.append((ended - began) * 1000)
                statuses[status] += 1
                if not 200 <= status < 300 and len(samples) < MAX_ERROR_SAMPLES:
                    samples.append(f"{status} {shape.method} {path}: {body[:300].decode(errors='replace')}")
        cpu_end = time.process_time() if measuring else cpu_start
    except KeyboardInterrupt:
        return
    finally:
        connection.close()
    results.put((index, latencies.tobytes(), dict(statuses), samples, cpu_end - cpu_start))


def run_load(spec: LoadSpec, server_cpu: Callable[[], float] | None = None) -> LoadResult:
    """Run ``spec.clients`` client processes against ``127.0.0.1:spec.port`` and gather their figures.

    ``server_cpu``, a callable returning the server's CPU seconds so far, is
    sampled at both ends of the measuring window.
    """
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(spec.clients + 1)
    start = context.Value("d", 0.0)
    results = context.Queue()
    processes = [
        context.Process(target=_client, args=(index, spec, barrier, start, results), daemon=True)
        for index in range(spec.clients)
    ]
    gathered: list[tuple[int, bytes, dict[int, int], list[str], float]] = []
    server_cpu_s = machine_cpu_s = float("nan")
    try:
        for process in processes:
            process.start()
        barrier.wait(SYNC_TIMEOUT_S)
        start.value = time.monotonic()
        barrier.wait(SYNC_TIMEOUT_S)
        measure_from = start.value + spec.warmup_s
        time.sleep(max(0.0, measure_from - time.monotonic()))
        cpu_before, machine_before = server_cpu() if server_cpu else float("nan"), machine_busy_seconds()
        time.sleep(max(0.0, measure_from + spec.duration_s - time.monotonic()))
        cpu_after, machine_after = server_cpu() if server_cpu else float("nan"), machine_busy_seconds()
        server_cpu_s, machine_cpu_s = cpu_after - cpu_before, machine_after - machine_before
        for _ in processes:
            gathered.append(results.get(timeout=CONNECT_TIMEOUT_S + 10))
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    samples: list[str] = []
    client_cpu_s = 0.0
    per_client: list[int] = []
    for _index, raw, client_statuses, client_samples, cpu in sorted(gathered):
        values = array("d")
        values.frombytes(raw)
        latencies.extend(values)
        per_client.append(len(values))
        statuses.update(client_statuses)
        samples.extend(client_samples)
        client_cpu_s += cpu
    latencies.sort()
    errors = sum(count for status, count in statuses.items() if not 200 <= status < 300)
    return LoadResult(
        clients=spec.clients,
        duration_s=spec.duration_s,
        requests=len(latencies),
        per_client_requests=per_client,
        errors=errors,
        statuses=dict(statuses),
        latencies_ms=latencies,
        error_samples=samples[:10],
        client_cpu_s=client_cpu_s,
        server_cpu_s=server_cpu_s,
        machine_cpu_s=machine_cpu_s,
    )


def measure_in_turns(
    servers: Mapping[str, Server], shapes: Mapping[str, RequestShape], clients: int, duration_s: float
) -> dict[str, LoadResult]:
    """One load against several servers, in ``ROUNDS`` windows each, the servers taking turns.

    The machine is shared and has slow spells lasting seconds to minutes: measured
    one server after the other, a spell falls on one of them and moves their ratio
    by 10-20 %. In turns (the order reversed every round, so neither always goes
    first) a spell falls on all of them alike.
    """
    windows: dict[str, list[LoadResult]] = {name: [] for name in servers}
    names = list(servers)
    for round_number in range(ROUNDS):
        order = names if round_number % 2 == 0 else names[::-1]
        for name in order:
            server = servers[name]
            spec = LoadSpec(server.port, shapes[name], clients, WINDOW_WARMUP_S, duration_s * WINDOW_SHARE)
            windows[name].append(run_load(spec, server.cpu_seconds))
    return {name: LoadResult.combined(results) for name, results in windows.items()}
