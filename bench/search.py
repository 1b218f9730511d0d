"""The search suite: patient-scoped and global searches on stores of 10,000 and 100,000 CCM resources.

For each store size (``ccm_data.STORES``: the same per-patient data, 10x the
patients), the real server runs on the generated database, and the trivial
endpoint of the REST-core suite runs beside it. Every scenario sends searches
for many random patients (or months, or family names) over HTTP with the
REST-core load generator. The figures that matter:

* p99 of patient-scoped searches at 100,000 resources (target < 25 ms);
* growth from 10k to 100k of p50 and p99 for the same searches (target < 1.5x):
  with the same data per patient, a search that uses its indexes well costs
  about the same on 10x the data;
* search-by-patient requests/s over the trivial endpoint's GET-by-id
  requests/s at the same concurrency (target >= 0.6).

Each scenario's SQL is captured while the real search interaction runs
in-process and each statement is explained (``EXPLAIN QUERY PLAN``) against
the generated database: a ``SCAN`` of a large table without an index fails
the run; a full index scan, or a search that visits every live resource of a
type, is flagged.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, urlencode, urlsplit

from bench import ccm_data, rest_core
from bench.ccm_data import LoadedStore, PatientFacts
from bench.load import FHIR_JSON, LoadResult, LoadSpec, RequestShape, measure_in_turns, run_load
from bench.report import environment, print_problems, table, write_json
from bench.servers import HOST, Server, fhir_ccm_server, trivial_server
from bench.suite import Options

NAME = "search"
RESULTS_NAME = "search"
P99_TARGET_MS = 25.0  # patient-scoped searches at the largest store
GROWTH_TARGET = 1.5  # latency at 100k / latency at 10k, patient-scoped searches
RATE_TARGET = 0.6  # search-by-patient req/s / trivial GET-by-id req/s, same concurrency
THROUGHPUT_CLIENTS = 8  # like rest_core's "read x8"
PATHS_PER_SCENARIO = 2_000  # distinct random searches each scenario cycles through
PROBES = 20  # searches of each scenario sent once beforehand, to check they find something
IN_PROCESS_RUNS = 40  # searches of each scenario timed in-process, without HTTP
OURS, TRIVIAL = "fhir-ccm", "trivial"
LARGE_TABLES = re.compile(r"^(resources|resource_versions|idx_\w+)$")
WHOLE_TYPE_COLUMNS = {"type", "deleted", "param"}  # an index search on these alone reads a whole type or parameter
IN_PROCESS_BUDGET_S = 2.0  # time spent timing one scenario in-process, at most (after the first search)
MONTHS = [date(year, month, 1) for year in range(2023, 2027) for month in range(1, 13)][:43]  # 2023-01..2026-07

Params = list[tuple[str, str]]


@dataclass(frozen=True)
class Scenario:
    key: str
    resource_type: str
    params: Callable[[PatientFacts, random.Random], Params]  # for one random patient
    patient_scoped: bool  # the latency and growth targets apply
    clients: int = 1
    describe: str = ""

    @property
    def label(self) -> str:
        return f"{self.key} x{self.clients}"


def _month_range(rng: random.Random, months: int) -> Params:
    """``date=ge<first of a month>&date=lt<first of the month ``months`` later>``, within the plans' periods."""
    start = rng.randrange(len(MONTHS) - months)
    return [("date", f"ge{MONTHS[start].isoformat()}"), ("date", f"lt{MONTHS[start + months].isoformat()}")]


def _patient(facts: PatientFacts) -> Params:
    return [("patient", f"Patient/{facts.id}")]


SCENARIOS = (
    Scenario("patient", "CarePlan", lambda p, r: _patient(p), True, describe="CarePlan?patient=Patient/<id>"),
    Scenario(
        "patient+status",
        "CarePlan",
        lambda p, r: [*_patient(p), ("status", r.choice(("active", "completed")))],
        True,
        describe="CarePlan?patient=Patient/<id>&status=active|completed",
    ),
    Scenario(
        "patient+date",
        "CarePlan",
        lambda p, r: [*_patient(p), *_month_range(r, 12)],
        True,
        describe="CarePlan?patient=Patient/<id>&date=ge<month>&date=lt<month+12>",
    ),
    Scenario(
        "chain identifier",
        "CarePlan",
        lambda p, r: [("subject:Patient.identifier", f"{p.mrn_system}|{p.mrn}")],
        True,
        describe="CarePlan?subject:Patient.identifier=<mrn system>|<mrn>",
    ),
    Scenario(
        "include",
        "CarePlan",
        lambda p, r: [*_patient(p), ("_include", "CarePlan:subject")],
        True,
        describe="CarePlan?patient=Patient/<id>&_include=CarePlan:subject",
    ),
    Scenario(
        "date range",
        "CarePlan",
        lambda p, r: [*_month_range(r, 1), ("_count", "20")],
        False,
        describe="CarePlan?date=ge<month>&date=lt<month+1>&_count=20 (all patients)",
    ),
    Scenario(
        "chain name",
        "MedicationStatement",
        lambda p, r: [("subject:Patient.name", p.family)],
        False,
        describe="MedicationStatement?subject:Patient.name=<family> (all patients of that name)",
    ),
    Scenario(
        "patient",
        "CarePlan",
        lambda p, r: _patient(p),
        True,
        clients=THROUGHPUT_CLIENTS,
        describe="CarePlan?patient=Patient/<id>, for the ratio to trivial",
    ),
)
TRIVIAL_CLIENTS = (1, THROUGHPUT_CLIENTS)


def search_paths(scenario: Scenario, facts: list[PatientFacts], base: str) -> tuple[str, ...]:
    """``PATHS_PER_SCENARIO`` searches for random patients of the store; the same ones on every run."""
    rng = random.Random(f"{ccm_data.SEED}-search-{scenario.label}-{len(facts)}")
    paths = []
    for _ in range(PATHS_PER_SCENARIO):
        params = scenario.params(rng.choice(facts), rng)
        paths.append(f"{base}/{scenario.resource_type}?{urlencode(params)}")
    return tuple(paths)


def _warm_page_cache(database: Path) -> None:
    """Read the file once, so every store starts hot in the OS page cache, as on a server that has been up."""
    with open(database, "rb") as file:
        while file.read(1 << 22):
            pass


# -- probing: do the searches find anything ----------------------------------------------------


@dataclass
class Probe:
    matches: float  # mean entries with search.mode = match per response
    included: float
    total: float  # mean Bundle.total
    richest: str  # the probed search with the most matches: its plan shows the most statements


def probe(server: Server, paths: tuple[str, ...]) -> Probe:
    """Send the first ``PROBES`` searches once; fail if one errs, report what they found."""
    connection = http.client.HTTPConnection(HOST, server.port, timeout=60)
    matches, included, totals = [], [], []
    try:
        for path in paths[:PROBES]:
            connection.request("GET", path, headers={"Accept": FHIR_JSON})
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path} answered {response.status}: {body[:500].decode(errors='replace')}")
            bundle = json.loads(body)
            modes = [entry.get("search", {}).get("mode") for entry in bundle.get("entry", [])]
            matches.append(modes.count("match"))
            included.append(modes.count("include"))
            totals.append(bundle.get("total", 0))
    finally:
        connection.close()
    richest = paths[max(range(len(matches)), key=lambda n: (matches[n] + included[n], -n))]
    return Probe(statistics.fmean(matches), statistics.fmean(included), statistics.fmean(totals), richest)


# -- query plans ---------------------------------------------------------------------------------


@dataclass
class PlanLine:
    depth: int
    detail: str
    verdict: str = ""  # "", "FAIL: ...", "WARN: ..."


@dataclass
class Statement:
    sql: str
    plan: list[PlanLine] = field(default_factory=list)
    ms: float = float("nan")  # median time to run it to the end, alone, on the store

    @property
    def failures(self) -> list[str]:
        return [line.verdict for line in self.plan if line.verdict.startswith("FAIL")]

    @property
    def warnings(self) -> list[str]:
        return [line.verdict for line in self.plan if line.verdict.startswith("WARN")]


@dataclass
class ScenarioPlan:
    scenario: str
    path: str
    statements: list[Statement]
    in_process_ms: list[float]  # the search interaction alone, sorted


@contextmanager
def traced_connections(sink: list[str]) -> Iterator[None]:
    """Every statement the store's connections run, with bound values inlined, appended to ``sink``."""
    from fhir_ccm.store import sqlite as sqlite_store

    original = sqlite_store._connect

    def connect(path: str | Path) -> sqlite3.Connection:
        connection = original(path)
        connection.set_trace_callback(sink.append)
        return connection

    with mock.patch.object(sqlite_store, "_connect", connect):
        yield


def _aliases(sql: str) -> dict[str, str]:
    """Alias (or name) -> table, for the tables a statement reads."""
    found: dict[str, str] = {}
    for match in re.finditer(r"\b(?:FROM|JOIN)\s+(\w+)(?:\s+(?:AS\s+)?(\w+))?", sql, re.IGNORECASE):
        table_name, alias = match.group(1), match.group(2)
        found[table_name] = table_name
        if alias and alias.upper() not in ("WHERE", "ORDER", "GROUP", "LIMIT", "JOIN", "ON", "AS", "UNION"):
            found[alias] = table_name
    return found


def judge(detail: str, aliases: dict[str, str]) -> str:
    """FAIL for a scan of a large table without an index; WARN for a full index scan or a whole-type search.

    ``detail`` is one line of ``EXPLAIN QUERY PLAN``, e.g. ``SEARCH i USING INDEX idx_token_0 (param=? AND code=?)``.
    """
    match = re.match(r"(SCAN|SEARCH) (\w+)(.*)", detail)
    if not match:
        return ""
    kind, alias, rest = match.groups()
    table_name = aliases.get(alias, alias)
    if not LARGE_TABLES.match(table_name):
        return ""
    if kind == "SCAN" and "USING" not in rest:
        return f"FAIL: scans all of {table_name} without an index"
    if kind == "SCAN":
        return f"WARN: reads the whole index of {table_name} ({rest.strip()})"
    constrained = re.search(r"\((.*)\)", rest)
    columns = {part.split("=")[0].strip() for part in constrained.group(1).split(" AND ")} if constrained else set()
    if columns and columns <= WHOLE_TYPE_COLUMNS:
        return (
            f"WARN: reads every row of {table_name} for the type or parameter (index on {', '.join(sorted(columns))})"
        )
    return ""


def explain(connection: sqlite3.Connection, sql: str) -> list[PlanLine]:
    rows = connection.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
    depth_of: dict[int, int] = {0: -1}
    aliases = _aliases(sql)
    lines = []
    for node, parent, _unused, detail in rows:
        depth = depth_of.get(parent, -1) + 1
        depth_of[node] = depth
        lines.append(PlanLine(depth, detail, judge(detail, aliases)))
    return lines


def plan_scenario(database: Path, scenario: Scenario, path: str, base_url: str) -> ScenarioPlan:
    """Run one search in-process with the real interaction, capture its SQL, and explain each statement."""
    from fhir_ccm.interactions import Context
    from fhir_ccm.interactions.search import search_type
    from fhir_ccm.store.sqlite import SQLiteStore

    params = parse_qsl(urlsplit(path).query)
    statements: list[str] = []
    store = SQLiteStore(database)  # before tracing: opening the store runs its schema statements
    try:
        with traced_connections(statements):
            search_type(store, Context(base_url=base_url), scenario.resource_type, params)
    finally:
        store.close()
    captured = [s for s in statements if re.match(r"\s*(SELECT|WITH)\b", s, re.IGNORECASE)]
    explained = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        result = [Statement(sql, explain(explained, sql), _time(explained, sql)) for sql in dict.fromkeys(captured)]
    finally:
        explained.close()
    return ScenarioPlan(scenario.label, path, result, [])


def _time(connection: sqlite3.Connection, sql: str, runs: int = 3) -> float:
    """Median milliseconds to run ``sql`` and fetch every row."""
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        connection.execute(sql).fetchall()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def time_in_process(database: Path, scenario: Scenario, paths: tuple[str, ...], base_url: str) -> list[float]:
    """Milliseconds of the search interaction alone (parse, SQL, Bundle JSON) for the first searches, sorted."""
    from fhir_ccm.interactions import Context
    from fhir_ccm.interactions.search import search_type
    from fhir_ccm.store.sqlite import SQLiteStore

    store = SQLiteStore(database)
    context = Context(base_url=base_url)
    timings: list[float] = []
    deadline = time.perf_counter() + IN_PROCESS_BUDGET_S
    try:
        for path in paths[:IN_PROCESS_RUNS]:
            if timings and time.perf_counter() > deadline:
                break
            params = parse_qsl(urlsplit(path).query)
            started = time.perf_counter()
            search_type(store, context, scenario.resource_type, params)
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        store.close()
    return sorted(timings)


def _printable(sql: str) -> str:
    return sql.replace("\U0010ffff", "\\U0010ffff")


def print_plan(plan: ScenarioPlan) -> None:
    print(f"\n[{plan.scenario}] {plan.path}")
    for number, statement in enumerate(plan.statements, 1):
        print(f"  statement {number} ({statement.ms:.3f} ms): {_printable(statement.sql)}")
        for line in statement.plan:
            print(f"    {'  ' * line.depth}{line.detail}{'   <-- ' + line.verdict if line.verdict else ''}")


# -- measuring -----------------------------------------------------------------------------------


@dataclass
class Row:
    store: str
    scenario: str
    server: str
    clients: int
    result: LoadResult
    probe: Probe | None = None
    in_process_p50_ms: float = float("nan")

    def summary(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"store": self.store, "scenario": self.scenario, "server": self.server}
        if self.probe is not None:
            extra |= {
                "matches_per_response": self.probe.matches,
                "included_per_response": self.probe.included,
                "mean_total": self.probe.total,
            }
        if self.in_process_p50_ms == self.in_process_p50_ms:
            extra["in_process_p50_ms"] = round(self.in_process_p50_ms, 3)
        return extra | self.result.summary()


def _print_result(label: str, server: Server, result: LoadResult) -> None:
    print(
        f"  {label:<22} {server.name:<9} {result.requests_per_s:8.1f} req/s  p50 {result.percentile_ms(50):7.2f} ms"
        f"  p99 {result.percentile_ms(99):7.2f} ms  errors {result.errors}",
        flush=True,
    )


def _measure(server: Server, label: str, shape: RequestShape, clients: int, options: Options) -> LoadResult:
    spec = LoadSpec(server.port, shape, clients, options.warmup_s, options.duration_s)
    result = run_load(spec, server.cpu_seconds)
    _print_result(label, server, result)
    return result


def measure_stores(
    stores: list[LoadedStore], trivial: Server, trivial_ids: list[str], workdir: Path, options: Options
) -> tuple[list[Row], dict[str, list[ScenarioPlan]], dict[str, list[str]]]:
    """Every scenario against a real server on each store, and the trivial reads; plus the query plans.

    The servers of all stores run at once and each scenario is measured in windows per
    store, the stores taking turns (``load.measure_in_turns``): a slow spell of the machine then falls
    on both stores alike instead of on one, so the growth from 10k to 100k measures
    the data, not the moment.
    """
    rows: list[Row] = []
    plans: dict[str, list[ScenarioPlan]] = {loaded.spec.name: [] for loaded in stores}
    facts = {loaded.spec.name: ccm_data.patient_facts(loaded.spec) for loaded in stores}
    with ExitStack() as stack:
        servers: dict[str, Server] = {}
        for loaded in stores:
            _warm_page_cache(loaded.path)
            directory = workdir / loaded.spec.name
            directory.mkdir()
            servers[loaded.spec.name] = stack.enter_context(fhir_ccm_server(directory, options.workers, loaded.path))
        try:
            for scenario in SCENARIOS:
                measured: dict[str, tuple[tuple[str, ...], Probe, list[float]]] = {}
                for loaded in stores:
                    name, server = loaded.spec.name, servers[loaded.spec.name]
                    paths = search_paths(scenario, facts[name], server.base)
                    found = probe(server, paths)
                    timings: list[float] = []
                    if scenario.clients == 1:
                        base_url = f"http://{HOST}:{server.port}{server.base}"
                        plan = plan_scenario(loaded.path, scenario, found.richest, base_url)
                        plan.in_process_ms = timings = time_in_process(loaded.path, scenario, paths, base_url)
                        plans[name].append(plan)
                    measured[name] = (paths, found, timings)
                shapes = {name: RequestShape("GET", measured[name][0]) for name in servers}
                results = measure_in_turns(servers, shapes, scenario.clients, options.duration_s)
                for name, server in servers.items():
                    result = results[name]
                    _print_result(f"{name} {scenario.label}", server, result)
                    _, found, timings = measured[name]
                    in_process = statistics.median(timings) if timings else float("nan")
                    rows.append(Row(name, scenario.label, OURS, scenario.clients, result, found, in_process))
                    if not server.alive():
                        raise RuntimeError(f"fhir-ccm died during {scenario.label}:\n{server.log_tail()}")
            read_paths = tuple(f"{trivial.base}/{rest_core.RESOURCE_TYPE}/{id}" for id in trivial_ids)
            for loaded in stores:
                for clients in TRIVIAL_CLIENTS:
                    label = f"read x{clients}"
                    shape = RequestShape("GET", read_paths)
                    result = _measure(trivial, f"{loaded.spec.name} {label}", shape, clients, options)
                    rows.append(Row(loaded.spec.name, label, TRIVIAL, clients, result))
        except BaseException:
            found_problems = {f"{OURS} {name}": server.problems() for name, server in servers.items()}
            print_problems(found_problems | {TRIVIAL: trivial.problems()}, file=sys.stderr)
            raise
        problems = {f"{OURS} {name}": server.problems() for name, server in servers.items()}
    for loaded in stores:
        for leftover in ccm_data._files_of(loaded.path)[3:]:  # the search snapshots the run left
            leftover.unlink(missing_ok=True)
    return rows, plans, problems


# -- the suite -----------------------------------------------------------------------------------


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _verdict(ok: bool | None) -> str:
    return "-" if ok is None else "PASS" if ok else "BELOW"


def run(options: Options) -> bool:
    """Run the suite, print its tables and plans, write ``bench-results/search.json``; False on errors."""
    sizes = ", ".join(f"{s.name} = {s.total:,} resources over {s.patients:,} patients" for s in ccm_data.STORES)
    print(
        f"search: {options.workers} gevent workers, {options.warmup_s:g} s warm-up + {options.duration_s:g} s measured"
        f" per scenario; stores: {sizes}",
        flush=True,
    )
    stores = []
    for spec in ccm_data.STORES:
        loaded = ccm_data.ensure_store(spec)
        how = "cached" if loaded.cached else f"loaded in {loaded.load_s:.1f} s, {loaded.rate:,.0f} resources/s"
        size = loaded.path.stat().st_size / 2**20
        print(f"  store {spec.name}: {loaded.path.name}, {size:,.0f} MiB, {how}", flush=True)
        stores.append(loaded)

    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        trivial = stack.enter_context(trivial_server(workdir, options.workers))
        trivial_ids = rest_core.seed(trivial)
        rows, plans, problems = measure_stores(stores, trivial, trivial_ids, workdir, options)
        problems[TRIVIAL] = trivial.problems()

    return report(stores, rows, plans, problems, options)


def report(
    stores: list[LoadedStore],
    rows: list[Row],
    plans: dict[str, list[ScenarioPlan]],
    problems: dict[str, list[str]],
    options: Options,
) -> bool:
    by_key = {(row.store, row.scenario, row.server): row for row in rows}
    small, large = (spec.name for spec in ccm_data.STORES)
    scoped = {s.label: s.patient_scoped for s in SCENARIOS}

    print()
    print(
        table(
            [
                "store",
                "scenario",
                "server",
                "matches",
                "incl",
                "req/s",
                "p50 ms",
                "p99 ms",
                "in-proc p50",
                "errors",
                "srv CPU ms/req",
                "other CPU%",
                "p99 < 25 ms",
            ],
            [
                [
                    row.store,
                    row.scenario,
                    row.server,
                    row.probe.matches if row.probe else float("nan"),
                    row.probe.included if row.probe else float("nan"),
                    row.result.requests_per_s,
                    row.result.percentile_ms(50),
                    row.result.percentile_ms(99),
                    row.in_process_p50_ms,
                    row.result.errors,
                    _ratio(row.result.server_cpu_s * 1000, row.result.requests),
                    100 * row.result.other_cpu_s / row.result.duration_s,
                    _verdict(row.result.percentile_ms(99) < P99_TARGET_MS)
                    if row.store == large and row.server == OURS and scoped.get(row.scenario) and row.clients == 1
                    else "-",
                ]
                for row in rows
            ],
        )
    )
    print(
        "matches / incl = mean match / include entries per response (first page, _count 20); in-proc p50 = the search"
        " interaction in-process, without HTTP; the p99 target applies to patient-scoped searches at 1 client"
    )

    growth = []
    for scenario in SCENARIOS:
        a, b = by_key.get((small, scenario.label, OURS)), by_key.get((large, scenario.label, OURS))
        if a is None or b is None:
            continue
        p50 = _ratio(b.result.percentile_ms(50), a.result.percentile_ms(50))
        p99 = _ratio(b.result.percentile_ms(99), a.result.percentile_ms(99))
        ok = max(p50, p99) < GROWTH_TARGET if scenario.patient_scoped else None
        growth.append(
            {
                "scenario": scenario.label,
                "p50_small_ms": a.result.percentile_ms(50),
                "p50_large_ms": b.result.percentile_ms(50),
                "p50_growth": round(p50, 3),
                "p99_small_ms": a.result.percentile_ms(99),
                "p99_large_ms": b.result.percentile_ms(99),
                "p99_growth": round(p99, 3),
                "target": GROWTH_TARGET if scenario.patient_scoped else None,
                "verdict": _verdict(ok),
            }
        )
    print()
    print(
        table(
            [
                "scenario",
                f"p50 {small}",
                f"p50 {large}",
                "p50 x",
                f"p99 {small}",
                f"p99 {large}",
                "p99 x",
                "target",
                "verdict",
            ],
            [
                [
                    g["scenario"],
                    g["p50_small_ms"],
                    g["p50_large_ms"],
                    g["p50_growth"],
                    g["p99_small_ms"],
                    g["p99_large_ms"],
                    g["p99_growth"],
                    f"< {g['target']}" if g["target"] else "-",
                    g["verdict"],
                ]
                for g in growth
            ],
        )
    )
    print(f"growth {small} -> {large} (10x the resources, same data per patient); global searches also find 10x more")

    ratios = []
    for spec in ccm_data.STORES:
        for clients in TRIVIAL_CLIENTS:
            ours = by_key.get((spec.name, f"patient x{clients}", OURS))
            trivial = by_key.get((spec.name, f"read x{clients}", TRIVIAL))
            if ours is None or trivial is None:
                continue
            ratio = _ratio(ours.result.requests_per_s, trivial.result.requests_per_s)
            target = RATE_TARGET if clients == THROUGHPUT_CLIENTS else None
            ratios.append(
                {
                    "store": spec.name,
                    "clients": clients,
                    "search_by_patient_rps": round(ours.result.requests_per_s, 1),
                    "trivial_read_rps": round(trivial.result.requests_per_s, 1),
                    "ratio": round(ratio, 3),
                    "target": target,
                    "verdict": _verdict(None if target is None else ratio >= target),
                }
            )
    print()
    print(
        table(
            ["store", "clients", "search by patient req/s", "trivial GET by id req/s", "ratio", "target", "verdict"],
            [
                [
                    r["store"],
                    r["clients"],
                    r["search_by_patient_rps"],
                    r["trivial_read_rps"],
                    r["ratio"],
                    f">= {r['target']}" if r["target"] else "-",
                    r["verdict"],
                ]
                for r in ratios
            ],
        )
    )

    print("\nQuery plans (EXPLAIN QUERY PLAN of every statement the search ran, on the store it ran against):")
    plan_failures = []
    for store_name, store_plans in plans.items():
        print(f"\n== store {store_name}")
        for plan in store_plans:
            print_plan(plan)
            for statement in plan.statements:
                plan_failures += [f"{store_name} {plan.scenario}: {f}" for f in statement.failures]
    warnings = sorted(
        {
            f"{plan.scenario}: {w}"
            for store_plans in plans.values()
            for plan in store_plans
            for statement in plan.statements
            for w in statement.warnings
        }
    )
    print()
    print(f"plan failures (SCAN of a large table without an index): {len(plan_failures)}")
    for failure in plan_failures:
        print(f"  {failure}")
    if warnings:
        print("plan warnings:")
        for warning in warnings:
            print(f"  {warning}")

    for loaded in stores:
        if loaded.load_s is not None:
            print(
                f"load {loaded.spec.name}: {loaded.spec.total:,} resources in {loaded.load_s:.1f} s ="
                f" {loaded.rate:,.0f} resources/s (update interaction, {ccm_data.BATCH} per transaction)"
            )
    noisy = [f"{r.store} {r.scenario} {r.server}" for r in rows if r.result.other_cpu_s > 0.2 * r.result.duration_s]
    if noisy:
        print(f"WARNING: other processes used > 20% of a core during: {', '.join(noisy)}; those figures are noisy")
    errors = sum(row.result.errors for row in rows)
    print(f"\nnon-2xx responses or connection errors: {errors}")
    for row in rows:
        for sample in row.result.error_samples:
            print(f"  {row.store} {row.scenario} {row.server}: {sample}")
    print_problems(problems)
    path = write_json(
        RESULTS_NAME,
        {
            "suite": NAME,
            "environment": environment(),
            "settings": {
                "workers": options.workers,
                "worker_class": "gevent",
                "warmup_s": options.warmup_s,
                "duration_s": options.duration_s,
                "paths_per_scenario": PATHS_PER_SCENARIO,
                "generator_version": ccm_data.GENERATOR_VERSION,
                "seed": ccm_data.SEED,
                "targets": {"p99_ms": P99_TARGET_MS, "growth": GROWTH_TARGET, "rate_ratio": RATE_TARGET},
            },
            "stores": [
                {
                    "name": s.spec.name,
                    "resources": s.spec.total,
                    "patients": s.spec.patients,
                    "file": s.path.name,
                    "bytes": s.path.stat().st_size,
                    "cached": s.cached,
                    "load_s": s.load_s,
                    "load_resources_per_s": s.rate,
                }
                for s in stores
            ],
            "scenarios": {s.label: s.describe for s in SCENARIOS},
            "results": [row.summary() for row in rows],
            "growth": growth,
            "ratios": ratios,
            "plans": {
                name: [
                    {
                        "scenario": p.scenario,
                        "path": p.path,
                        "in_process_ms": [round(t, 3) for t in p.in_process_ms],
                        "statements": [
                            {
                                "sql": _printable(s.sql),
                                "ms": round(s.ms, 3),
                                "plan": [" " * 2 * line.depth + line.detail for line in s.plan],
                                "failures": s.failures,
                                "warnings": s.warnings,
                            }
                            for s in p.statements
                        ],
                    }
                    for p in store_plans
                ]
                for name, store_plans in plans.items()
            },
            "server_log_problems": problems,
        },
    )
    print(f"results written to {path}", file=sys.stderr)
    return errors == 0 and not plan_failures and not any(problems.values())
