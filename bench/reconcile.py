"""The reconcile suite: the coordination engine alone, and ``$reconcile`` end to end over HTTP.

The workload is the issue's: one patient, 4 providers, each listing 30
medications and 10 goals (oral products of the drug table, some shared across
providers with other doses, so the engine finds real conflicts). Targets: the
engine under 50 ms, the HTTP operation under 200 ms at p99.
"""

from __future__ import annotations

import http.client
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.report import environment, table, write_json
from bench.servers import HOST, fhir_ccm_server
from bench.suite import Options
from fhir_ccm.coordination import reconcile
from fhir_ccm.coordination.drugs import RXNORM_SYSTEM, all_products

NAME = "reconcile"
PROVIDERS = 4
MEDICATIONS = 30
GOALS = 10
ENGINE_RUNS = 30
HTTP_RUNS = 40
ENGINE_TARGET_MS = 50
HTTP_TARGET_P99_MS = 200
PATIENT_ID = "bench-patient"
LOINC = "http://loinc.org"
GOAL_MEASURES = (("4548-4", "%", 7), ("8480-6", "mm[Hg]", 130), ("8462-4", "mm[Hg]", 80), ("2093-3", "mg/dL", 200))


def _medication(provider: int, number: int, product: Any, dose: int) -> dict[str, Any]:
    return {
        "resourceType": "MedicationStatement",
        "id": f"bench-ms-{provider}-{number}",
        "status": "active",
        "medicationCodeableConcept": {
            "coding": [{"system": RXNORM_SYSTEM, "code": product.rxcui, "display": product.name}],
            "text": product.name,
        },
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "dateAsserted": f"2026-0{provider + 1}-10",
        "informationSource": {"reference": f"Practitioner/bench-practitioner-{provider}"},
        "dosage": [
            {
                "text": f"{dose} tablet(s) daily",
                "timing": {"repeat": {"frequency": dose, "period": 1, "periodUnit": "d"}},
                "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006"}]},
                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
            }
        ],
    }


def _goal(provider: int, number: int) -> dict[str, Any]:
    code, unit, target = GOAL_MEASURES[number % len(GOAL_MEASURES)]
    return {
        "resourceType": "Goal",
        "id": f"bench-goal-{provider}-{number}",
        "lifecycleStatus": "active",
        "description": {"text": f"Goal {number} of provider {provider}"},
        "subject": {"reference": f"Patient/{PATIENT_ID}"},
        "target": [
            {
                "measure": {"coding": [{"system": LOINC, "code": code}]},
                "detailQuantity": {
                    "value": target + provider,
                    "comparator": "<",
                    "unit": unit,
                    "system": "http://unitsofmeasure.org",
                    "code": unit,
                },
                "dueDate": "2026-12-31",
            }
        ],
    }


def sources(seed: int = 7) -> list[dict[str, Any]]:
    """The Patient, 4 Practitioners, and per provider a CarePlan, 30 MedicationStatements, 10 Goals."""
    rng = random.Random(seed)
    oral = [p for p in all_products() if p.rxcui and p.route == "oral" and p.brand is None and len(p.ingredients) == 1]
    shared = rng.sample(oral, MEDICATIONS)
    resources: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": PATIENT_ID, "name": [{"family": "Bench", "given": ["Reconcile"]}]}
    ]
    for provider in range(PROVIDERS):
        resources.append(
            {
                "resourceType": "Practitioner",
                "id": f"bench-practitioner-{provider}",
                "name": [{"family": f"Provider{provider}"}],
            }
        )
        goals = [_goal(provider, number) for number in range(GOALS)]
        # Providers mostly list the same medications: the first 25 shared (every seventh at another
        # dose), the last 5 their own.
        own = rng.sample(oral, MEDICATIONS - 25)
        medications = [
            _medication(provider, number, product, 2 if number % 7 == provider else 1)
            for number, product in enumerate([*shared[:25], *own])
        ]
        resources += goals + medications
        resources.append(
            {
                "resourceType": "CarePlan",
                "id": f"bench-careplan-{provider}",
                "status": "active",
                "intent": "plan",
                "subject": {"reference": f"Patient/{PATIENT_ID}"},
                "goal": [{"reference": f"Goal/{goal['id']}"} for goal in goals],
            }
        )
    return resources


def _counter_ids() -> Any:
    counter = iter(range(10**6))
    return lambda resource_type: f"{resource_type.lower()}-{next(counter)}"


def engine_times(resources: list[dict[str, Any]]) -> list[float]:
    """Wall milliseconds per run; CPU milliseconds are printed too: other load inflates wall time."""
    times = []
    cpu_started = time.process_time()
    for run in range(ENGINE_RUNS):
        new_id = _counter_ids()
        started = time.perf_counter()
        result = reconcile(resources, PATIENT_ID, "2026-11-23T10:00:00Z", new_id, {"reference": "Device/fhir-ccm"})
        times.append((time.perf_counter() - started) * 1000)
        if run == 0:
            entries = len(result.medication_list.get("entry", []))
            print(f"  engine: {entries} list entries, {len(result.conflicts)} conflicts")
    print(f"  engine CPU per run: {(time.process_time() - cpu_started) * 1000 / ENGINE_RUNS:.1f} ms")
    return times


def http_times(resources: list[dict[str, Any]], options: Options) -> list[float]:
    with tempfile.TemporaryDirectory() as directory, fhir_ccm_server(Path(directory), options.workers) as server:
        connection = http.client.HTTPConnection(HOST, server.port, timeout=60)
        bundle = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [
                {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                for r in resources
            ],
        }
        connection.request("POST", server.base, json.dumps(bundle), {"Content-Type": "application/fhir+json"})
        loaded = connection.getresponse()
        loaded.read()
        if loaded.status != 200:
            raise RuntimeError(f"loading the sources answered {loaded.status}")
        times = []
        for _ in range(HTTP_RUNS + 3):
            started = time.perf_counter()
            connection.request("POST", f"{server.base}/Patient/{PATIENT_ID}/$reconcile", b"", {})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"$reconcile answered {response.status}")
            times.append((time.perf_counter() - started) * 1000)
        connection.close()
    return times[3:]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def run(options: Options) -> bool:
    resources = sources()
    engine = engine_times(resources)
    over_http = http_times(resources, options)
    engine_p50 = statistics.median(engine)
    rows = [
        [
            "engine (in-process)",
            engine_p50,
            _percentile(engine, 0.99),
            f"p50 < {ENGINE_TARGET_MS} ms",
            "PASS" if engine_p50 < ENGINE_TARGET_MS else "BELOW",
        ],
        [
            "$reconcile over HTTP",
            statistics.median(over_http),
            _percentile(over_http, 0.99),
            f"p99 < {HTTP_TARGET_P99_MS} ms",
            "PASS" if _percentile(over_http, 0.99) < HTTP_TARGET_P99_MS else "BELOW",
        ],
    ]
    print(f"workload: {PROVIDERS} providers x {MEDICATIONS} medications x {GOALS} goals")
    print(table(["what", "p50 ms", "p99 ms", "target", "verdict"], rows))
    path = write_json(NAME, {"suite": NAME, "environment": environment(), "engine_ms": engine, "http_ms": over_http})
    print(f"results written to {path}")
    return True
