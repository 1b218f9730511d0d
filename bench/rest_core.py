"""The REST-core suite: create, read, vread and instance history over HTTP, against fhir-ccm and a trivial baseline.

Both servers run side by side on fresh databases, under gunicorn with gevent
workers and the same worker count; each scenario is measured in windows, the
two servers taking turns (``load.measure_in_turns``), with the same request
shapes. The figure that matters is the ratio
ours/trivial of requests per second: it cancels out the machine, and shows
what validation, versioning and the FHIR envelope cost on top of "Flask +
SQLite with fsync per commit".
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load import FHIR_JSON, ROUNDS, WINDOW_SHARE, WINDOW_WARMUP_S, LoadResult, RequestShape, measure_in_turns
from bench.report import environment, print_problems, table, write_json
from bench.resources import patient, patient_body
from bench.servers import HOST, Server, fhir_ccm_server, trivial_server
from bench.suite import Options

NAME = "rest_core"
RESULTS_NAME = "rest-core"
RESOURCE_TYPE = "Patient"
SEED_RESOURCES = 100  # resources created before the read scenarios
SEED_VERSIONS = 3  # versions of each: one create, then updates
TARGETS = {"read": 0.8, "create": 0.4}  # minimum ratio ours/trivial of requests per second
OURS, TRIVIAL = "fhir-ccm", "trivial"


@dataclass(frozen=True)
class Scenario:
    interaction: str  # read, vread, history or create
    clients: int

    @property
    def label(self) -> str:
        return f"{self.interaction} x{self.clients}"


# Reads first, so both servers read the same seeded data; creates last.
SCENARIOS = (
    Scenario("read", 1),
    Scenario("read", 8),
    Scenario("vread", 8),
    Scenario("history", 8),
    Scenario("create", 1),
    Scenario("create", 8),
)


def _send(connection: http.client.HTTPConnection, method: str, path: str, body: bytes) -> http.client.HTTPResponse:
    connection.request(method, path, body, {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON})
    response = connection.getresponse()
    data = response.read()
    if not 200 <= response.status < 300:
        raise RuntimeError(f"{method} {path} answered {response.status}: {data[:500].decode(errors='replace')}")
    return response


def seed(server: Server, count: int = SEED_RESOURCES, versions: int = SEED_VERSIONS) -> list[str]:
    """Create ``count`` Patients with ``versions`` versions each; return their ids. Any non-2xx is fatal."""
    connection = http.client.HTTPConnection(HOST, server.port, timeout=30)
    ids: list[str] = []
    try:
        for index in range(count):
            response = _send(connection, "POST", f"{server.base}/{RESOURCE_TYPE}", patient_body(index))
            location = response.getheader("Location") or ""
            if response.status != 201 or "/_history/1" not in location:
                raise RuntimeError(f"{server.name}: create answered {response.status} with Location {location!r}")
            id = location.rsplit("/_history/", 1)[0].rsplit("/", 1)[1]
            ids.append(id)
            for version in range(2, versions + 1):
                resource = patient(index)
                resource["id"] = id
                resource["telecom"][0]["value"] = f"+1 555 0100 {version:03d}"
                body = json.dumps(resource, separators=(",", ":")).encode()
                _send(connection, "PUT", f"{server.base}/{RESOURCE_TYPE}/{id}", body)
    finally:
        connection.close()
    return ids


def request_shape(scenario: Scenario, server: Server, ids: list[str]) -> RequestShape:
    base = f"{server.base}/{RESOURCE_TYPE}"
    if scenario.interaction == "create":
        return RequestShape("POST", (base,), patient_body(0))
    if scenario.interaction == "read":
        return RequestShape("GET", tuple(f"{base}/{id}" for id in ids))
    if scenario.interaction == "vread":
        return RequestShape(
            "GET", tuple(f"{base}/{id}/_history/{v}" for v in range(1, SEED_VERSIONS + 1) for id in ids)
        )
    if scenario.interaction == "history":
        return RequestShape("GET", tuple(f"{base}/{id}/_history" for id in ids))
    raise ValueError(f"unknown interaction {scenario.interaction}")


def _row(scenario: Scenario, name: str, result: LoadResult) -> list[Any]:
    cpu_per_request = result.server_cpu_s / result.requests * 1000 if result.requests else float("nan")
    return [
        scenario.label,
        name,
        result.requests_per_s,
        result.percentile_ms(50),
        result.percentile_ms(99),
        result.errors,
        100 * result.server_cpu_s / result.duration_s,
        100 * result.client_cpu_s / result.duration_s,
        100 * result.other_cpu_s / result.duration_s,
        cpu_per_request,
        min(result.per_client_requests) / max(result.per_client_requests) if result.requests else float("nan"),
    ]


def _print_result(scenario: Scenario, name: str, result: LoadResult) -> None:
    print(
        f"  {scenario.label:<11} {name:<9} {result.requests_per_s:8.1f} req/s"
        f"  p50 {result.percentile_ms(50):7.2f} ms  p99 {result.percentile_ms(99):7.2f} ms  errors {result.errors}",
        flush=True,
    )


def run(options: Options) -> bool:
    """Run the suite, print its tables, write ``bench-results/rest-core.json``; False on errors or crashes."""
    results: list[dict[str, Any]] = []
    rows: list[list[Any]] = []
    ratios: list[dict[str, Any]] = []
    problems: dict[str, list[str]] = {}
    measured: dict[tuple[str, str], LoadResult] = {}
    body_bytes = len(patient_body(0))
    print(
        f"rest_core: {options.workers} gevent workers per server, each scenario measured in {ROUNDS} windows"
        f" of {options.duration_s * WINDOW_SHARE:g} s per server (after {WINDOW_WARMUP_S:g} s unmeasured),"
        f" the servers taking turns, {body_bytes}-byte Patient,"
        f" {SEED_RESOURCES} seeded resources x {SEED_VERSIONS} versions",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-rest-core-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        servers = {
            OURS: stack.enter_context(fhir_ccm_server(workdir, options.workers)),
            TRIVIAL: stack.enter_context(trivial_server(workdir, options.workers)),
        }
        try:
            seeded = {name: seed(server) for name, server in servers.items()}
            for scenario in SCENARIOS:
                shapes = {name: request_shape(scenario, server, seeded[name]) for name, server in servers.items()}
                in_turns = measure_in_turns(servers, shapes, scenario.clients, options.duration_s)
                for name, server in servers.items():
                    result = in_turns[name]
                    _print_result(scenario, name, result)
                    measured[(scenario.label, name)] = result
                    rows.append(_row(scenario, name, result))
                    results.append(
                        {"scenario": scenario.label, "interaction": scenario.interaction, "server": name}
                        | result.summary()
                    )
                    if not server.alive():
                        raise RuntimeError(f"{name} died during {scenario.label}:\n{server.log_tail()}")
        except BaseException:
            print_problems({name: server.problems() for name, server in servers.items()}, file=sys.stderr)
            raise
        problems = {name: server.problems() for name, server in servers.items()}

    for scenario in SCENARIOS:
        ours, trivial = measured[(scenario.label, OURS)], measured[(scenario.label, TRIVIAL)]
        ratio = ours.requests_per_s / trivial.requests_per_s if trivial.requests_per_s else float("nan")
        target = TARGETS.get(scenario.interaction)
        verdict = "-" if target is None else "PASS" if ratio >= target else "BELOW"
        ratios.append({"scenario": scenario.label, "ratio": round(ratio, 3), "target": target, "verdict": verdict})

    print()
    print(
        table(
            [
                "scenario",
                "server",
                "req/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "srv CPU%",
                "load CPU%",
                "other CPU%",
                "srv CPU ms/req",
                "fairness",
            ],
            rows,
        )
    )
    print()
    print(
        table(
            ["scenario", "ours/trivial req/s", "target", "verdict"],
            [
                [r["scenario"], f"{r['ratio']:.3f}", "-" if r["target"] is None else f">= {r['target']}", r["verdict"]]
                for r in ratios
            ],
        )
    )
    print(
        f"CPU% is of one core ({os.cpu_count()} cores = {100 * (os.cpu_count() or 1)}%); load = the client processes;"
        " other = the rest of the machine, during the measured window;"
        " fairness = fewest / most requests served to one client (1 = even)"
    )
    noisy = [r["scenario"] + " " + r["server"] for r in results if r["other_cpu_s"] > 0.2 * r["duration_s"]]
    if noisy:
        print(f"WARNING: other processes used > 20% of a core during: {', '.join(noisy)}; those figures are noisy")
    errors = sum(r["errors"] for r in results)
    print(f"\nnon-2xx responses or connection errors: {errors}")
    for r in results:
        for sample in r["error_samples"]:
            print(f"  {r['scenario']} {r['server']}: {sample}")
    print_problems(problems)
    path = write_json(
        RESULTS_NAME,
        {
            "suite": NAME,
            "environment": environment(),
            "settings": {
                "workers": options.workers,
                "worker_class": "gevent",
                "windows": ROUNDS,
                "window_s": options.duration_s * WINDOW_SHARE,
                "window_warmup_s": WINDOW_WARMUP_S,
                "resource_type": RESOURCE_TYPE,
                "create_body_bytes": body_bytes,
                "seed_resources": SEED_RESOURCES,
                "seed_versions": SEED_VERSIONS,
            },
            "results": results,
            "ratios": ratios,
            "server_log_problems": problems,
        },
    )
    print(f"results written to {path}", file=sys.stderr)
    return errors == 0 and not any(problems.values())
