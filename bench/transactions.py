"""The transactions suite: bulk ingest through transaction Bundles, against the storage limit.

Transactions of 100 and 1,000 realistic CCM resources (a Patient with its
Conditions, CarePlans, Goals, MedicationStatements and CareTeams, linked by
``urn:uuid`` references) are posted by 1 and 4 concurrent clients to the real
server; each resource is validated, indexed and stored. The same rows inserted
by raw sqlite3 in one transaction (no validation, no index rows) give the
storage limit of this machine. A profile of one 1,000-entry transaction, run
in-process, shows where the time goes.
"""

from __future__ import annotations

import copy
import cProfile
import json
import pstats
import sqlite3
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.load import LoadSpec, RequestShape, run_load
from bench.report import environment, table, write_json
from bench.servers import fhir_ccm_server
from bench.suite import Options

NAME = "transactions"
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PATIENT = ROOT / "examples" / "maria-garcia"
TARGET_RESOURCES_PER_S = 2000
SCENARIOS = ((100, 1), (100, 4), (1000, 1), (1000, 4))
# The shortest warm-up and measuring window per transaction size. A 1,000-entry transaction takes
# one to two seconds under load: the warm-up lets every client finish one (the workers' first
# transactions compile the profiles they meet), and since only transactions started inside the
# window are counted, each client starting one more or one fewer moves the rate by 1 / (window /
# latency): about 11 % in a 15-second window, 5 % in 30 seconds.
MIN_WARMUP_S = {100: 1.0, 1000: 4.0}
MIN_WINDOW_S = {100: 6.0, 1000: 30.0}
CLINICAL_TYPES = ("Condition", "CarePlan", "Goal", "MedicationStatement", "CareTeam")
# Where the time of a transaction goes, by the module a function belongs to.
PROFILE_BUCKETS = (
    ("validation (base R4 and profiles)", ("fhir_ccm/validation",)),
    ("search index extraction", ("fhir_ccm/search",)),
    ("SQLite", ("sqlite3",)),
    ("JSON parse and dump", ("simplejson", "json_format")),
    ("reference rewriting", ("interactions/bundle",)),
)


def _template() -> list[dict[str, Any]]:
    """One example patient's clinical resources, as templates."""
    resources = []
    for path in sorted(EXAMPLE_PATIENT.glob("*.json")):
        resource = json.loads(path.read_text())
        if resource["resourceType"] in CLINICAL_TYPES:
            resources.append(resource)
    return resources


def _relink(value: Any, ids: dict[str, str]) -> Any:
    """Point references at the Bundle's urn:uuid fullUrls; drop those to resources outside it."""
    if isinstance(value, dict):
        result = {}
        for key, child in value.items():
            if key == "reference" and isinstance(child, str):
                result[key] = ids.get(child, child)
            else:
                result[key] = _relink(child, ids)
        return result
    if isinstance(value, list):
        return [_relink(item, ids) for item in value]
    return value


def transaction(entries: int) -> dict[str, Any]:
    """A transaction Bundle of ``entries`` resources: whole patients with their care plans."""
    templates = _template()
    bundle_entries: list[dict[str, Any]] = []
    while len(bundle_entries) < entries:
        ids = {"Patient/ccm-garcia": f"urn:uuid:{uuid.uuid4()}"}
        for template in templates:
            ids[f"{template['resourceType']}/{template['id']}"] = f"urn:uuid:{uuid.uuid4()}"
        patient = {
            "resourceType": "Patient",
            "identifier": [{"system": "http://bench.fhir-ccm.org/mrn", "value": str(uuid.uuid4())}],
            "name": [{"family": "Bench", "given": ["Ingest"]}],
            "gender": "female",
            "birthDate": "1951-06-02",
        }
        group = [(ids["Patient/ccm-garcia"], patient)]
        for template in templates:
            resource = _relink({k: v for k, v in copy.deepcopy(template).items() if k != "id"}, ids)
            group.append((ids[f"{template['resourceType']}/{template['id']}"], resource))
        for full_url, resource in group:
            bundle_entries.append(
                {
                    "fullUrl": full_url,
                    "resource": resource,
                    "request": {"method": "POST", "url": resource["resourceType"]},
                }
            )
    bundle_entries = bundle_entries[:entries]
    kept = {entry["fullUrl"] for entry in bundle_entries}
    for entry in bundle_entries:
        entry["resource"] = _without_dangling(entry["resource"], kept)
    return {"resourceType": "Bundle", "type": "transaction", "entry": bundle_entries}


def _without_dangling(resource: dict[str, Any], kept: set[str]) -> dict[str, Any]:
    """Cut the last patient's references to resources the size cap left out of the Bundle.

    A resource that lost references no longer claims its profile: the CCM
    CarePlan, for one, must cite the medications it manages.
    """
    cut = _cut_references(resource, kept)
    if cut != resource:
        cut.pop("meta", None)
    return cut


def _cut_references(value: Any, kept: set[str]) -> Any:
    if isinstance(value, dict):
        reference = value.get("reference")
        if isinstance(reference, str) and reference.startswith("urn:uuid:") and reference not in kept:
            return {"display": "not in this transaction"}
        return {k: _cut_references(v, kept) for k, v in value.items()}
    if isinstance(value, list):
        return [_cut_references(item, kept) for item in value]
    return value


def storage_limit(bundle: dict[str, Any], rounds: int = 3) -> float:
    """Rows per second that raw sqlite3 stores in one transaction, with the server's pragmas and two tables."""
    rows = [
        (entry["resource"]["resourceType"], str(uuid.uuid4()), json.dumps(entry["resource"]))
        for entry in bundle["entry"]
    ]
    best = 0.0
    with tempfile.TemporaryDirectory() as directory:
        connection = sqlite3.connect(Path(directory) / "raw.db", isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(
            "CREATE TABLE versions (seq INTEGER PRIMARY KEY, type TEXT, id TEXT, version INTEGER, json TEXT,"
            " UNIQUE (type, id, version))"
        )
        connection.execute(
            "CREATE TABLE current (type TEXT, id TEXT, version INTEGER, json TEXT, PRIMARY KEY (type, id))"
        )
        for _ in range(rounds):
            started = time.perf_counter()
            connection.execute("BEGIN IMMEDIATE")
            for type_, id_, text in rows:
                connection.execute(
                    "INSERT INTO versions (type, id, version, json) VALUES (?, ?, 1, ?)", (type_, id_, text)
                )
                connection.execute("INSERT INTO current VALUES (?, ?, 1, ?)", (type_, id_, text))
            connection.execute("COMMIT")
            best = max(best, len(rows) / (time.perf_counter() - started))
            rows = [(t, str(uuid.uuid4()), j) for t, _, j in rows]
        connection.close()
    return best


def profile(bundle: dict[str, Any]) -> tuple[float, list[tuple[str, float]]]:
    """Run one transaction in-process under cProfile; the share of time per bucket."""
    from fhir_ccm.app import create_app

    with tempfile.TemporaryDirectory() as directory:
        app = create_app({"database": str(Path(directory) / "profile.db")})
        client = app.test_client()
        body = json.dumps(bundle)
        client.post("/fhir", data=body, content_type="application/fhir+json")  # warm caches
        profiler = cProfile.Profile()
        started = time.perf_counter()
        profiler.enable()
        response = client.post("/fhir", data=body, content_type="application/fhir+json")
        profiler.disable()
        elapsed = time.perf_counter() - started
        app.extensions["fhir_ccm.store"].close()
    if response.status_code != 200:
        raise RuntimeError(f"profiled transaction answered {response.status_code}: {response.data[:300]!r}")
    stats = pstats.Stats(profiler)
    total = sum(entry[2] for entry in stats.stats.values())  # type: ignore[attr-defined]
    buckets: dict[str, float] = defaultdict(float)
    for (filename, _, function), entry in stats.stats.items():  # type: ignore[attr-defined]
        own = entry[2]
        where = f"{filename}:{function}"
        bucket = next((name for name, marks in PROFILE_BUCKETS if any(m in where for m in marks)), "other")
        buckets[bucket] += own
    shares = sorted(((name, 100 * seconds / total) for name, seconds in buckets.items()), key=lambda x: -x[1])
    return elapsed, shares


def run(options: Options) -> bool:
    bundles = {size: json.dumps(transaction(size)).encode() for size, _ in SCENARIOS}
    rows, results = [], []
    errors = 0
    with tempfile.TemporaryDirectory() as directory:
        for size, clients in SCENARIOS:
            workdir = Path(directory) / f"tx-{size}-{clients}"
            workdir.mkdir()
            with fhir_ccm_server(workdir, options.workers) as server:
                spec = LoadSpec(
                    port=server.port,
                    shape=RequestShape("POST", (server.base,), bundles[size]),
                    clients=clients,
                    warmup_s=max(options.warmup_s, MIN_WARMUP_S[size]),
                    duration_s=max(options.duration_s, MIN_WINDOW_S[size]),
                )
                result = run_load(spec, server.cpu_seconds)
            per_s = result.requests_per_s * size
            errors += result.errors
            verdict = "PASS" if per_s >= TARGET_RESOURCES_PER_S else "BELOW"
            print(
                f"  {size} entries x{clients}: {per_s:8.0f} resources/s  p50 {result.percentile_ms(50):.0f} ms",
                flush=True,
            )
            rows.append(
                [
                    f"{size} entries",
                    clients,
                    result.requests_per_s,
                    per_s,
                    result.percentile_ms(50),
                    result.percentile_ms(99),
                    result.errors,
                    verdict,
                ]
            )
            results.append(
                {
                    "entries": size,
                    "clients": clients,
                    "transactions_per_s": result.requests_per_s,
                    "resources_per_s": per_s,
                    "p50_ms": result.percentile_ms(50),
                    "p99_ms": result.percentile_ms(99),
                    "errors": result.errors,
                    "error_samples": result.error_samples,
                }
            )
    limit = storage_limit(transaction(1000))
    elapsed, shares = profile(transaction(1000))
    print()
    print(
        table(
            [
                "transaction",
                "clients",
                "tx/s",
                "resources/s",
                "p50 ms",
                "p99 ms",
                "errors",
                f">= {TARGET_RESOURCES_PER_S}/s",
            ],
            rows,
        )
    )
    print(f"storage limit (raw sqlite3, same rows, one transaction, no validation or index): {limit:,.0f} rows/s")
    print(
        f"one 1,000-entry transaction in-process: {elapsed * 1000:.0f} ms"
        f" ({1000 / elapsed:,.0f} resources/s on one core)"
    )
    print(table(["where the time goes", "% of profiled time"], [[name, share] for name, share in shares]))
    path = write_json(
        NAME,
        {
            "suite": NAME,
            "environment": environment(),
            "results": results,
            "storage_limit_rows_per_s": limit,
            "profile": shares,
            "profile_elapsed_s": elapsed,
        },
    )
    print(f"results written to {path}")
    return errors == 0
