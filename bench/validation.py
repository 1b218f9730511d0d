"""The validation suite: validator throughput, timed in-process on one core (no HTTP, no server).

Scenarios, each repeated for the warm-up and then the measured duration of the options:

* ``careplan base``: the primary-care CarePlan of ``examples/robert-johnson`` (4.4 KB of compact
  JSON) against base R4, its ``meta.profile`` claim left out (target >= 500 resources/s);
* ``careplan ccm-careplan``: the same plan against base R4 and ``ccm-careplan``, the profile
  it claims (target >= 300 resources/s);
* ``on write``: every check a write of that plan passes (structure, bindings and its
  ``ccm-careplan`` claim, in one walk): ``interactions.validate.check_on_write`` with the
  policy of an app on a SQLite store, so including the check that the registry is current
  with the stored definitions;
* ``bundle base`` and ``bundle with entry profiles``: a collection Bundle of 1,000 example
  resources (the 126 of ``examples/`` repeated under new ids, 57 % of them claiming a CCM
  profile) validated as one resource, then also each entry against the profiles it claims
  (what ``$validate`` and ``fhir-ccm validate`` do); figures are entries per second.

Results go to ``bench-results/validation.json``; a figure under its target prints ``BELOW``
but does not fail the run.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.report import environment, table, write_json
from bench.servers import ROOT
from bench.suite import Options
from fhir_ccm.config import Config
from fhir_ccm.interactions.validate import ProfilePolicy, check_on_write, use_policy
from fhir_ccm.store.sqlite import SQLiteStore
from fhir_ccm.validation.profiles import validate

NAME = "validation"
EXAMPLES = ROOT / "examples"
PLAN_FILE = EXAMPLES / "robert-johnson" / "CarePlan-ccm-johnson-careplan-primary-care.json"
CCM_CAREPLAN = "http://fhir-ccm.org/StructureDefinition/ccm-careplan"
BUNDLE_SIZE = 1_000
TARGETS = {"careplan base": 500.0, "careplan ccm-careplan": 300.0}


@dataclass(frozen=True)
class Measured:
    scenario: str
    per_call: int  # resources validated by one call
    calls: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.calls * self.per_call / self.seconds if self.seconds else float("nan")

    @property
    def ms_per_call(self) -> float:
        return 1000 * self.seconds / self.calls if self.calls else float("nan")


def load(path: Path) -> dict[str, Any]:
    resource: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    return resource


def example_bundle(size: int = BUNDLE_SIZE) -> dict[str, Any]:
    """A collection Bundle of ``size`` example resources, repeated under new ids."""
    folders = sorted(p for p in EXAMPLES.iterdir() if p.is_dir() and p.name != "reconcile")
    resources = [load(path) for folder in folders for path in sorted(folder.glob("*.json"))]
    entries = []
    for index in range(size):
        resource = copy.deepcopy(resources[index % len(resources)])
        round_ = index // len(resources)
        if round_:
            resource["id"] = f"{resource['id']}-{round_}"
        entries.append(
            {"fullUrl": f"http://example.org/fhir/{resource['resourceType']}/{resource['id']}", "resource": resource}
        )
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def measure(scenario: str, call: Callable[[], Any], per_call: int, options: Options) -> Measured:
    deadline = time.perf_counter() + options.warmup_s
    call()
    while time.perf_counter() < deadline:
        call()
    calls = 0
    start = time.perf_counter()
    deadline = start + options.duration_s
    while True:
        call()
        calls += 1
        now = time.perf_counter()
        if now >= deadline:
            return Measured(scenario, per_call, calls, now - start)


def _check(issues: list[Any], what: str) -> None:
    errors = [issue for issue in issues if issue.severity in ("error", "fatal")]
    if errors:
        raise RuntimeError(f"{what} is not valid: {errors[:3]}")


def run(options: Options) -> bool:
    """Run the suite, print its table, write ``bench-results/validation.json``; False on errors."""
    plan = load(PLAN_FILE)
    bare = {key: value for key, value in plan.items() if key != "meta"}
    size = len(json.dumps(plan, separators=(",", ":"), ensure_ascii=False, default=str).encode())
    bundle = example_bundle()
    claiming = sum(1 for entry in bundle["entry"] if entry["resource"].get("meta", {}).get("profile"))
    print(
        f"validation: in-process, one core, {options.warmup_s:g} s warm-up + {options.duration_s:g} s measured"
        f" per scenario; CarePlan {PLAN_FILE.name} {size:,} bytes; Bundle of {BUNDLE_SIZE:,} resources"
        f" ({claiming:,} claiming a profile)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-validation-") as tmp:
        store = SQLiteStore(str(Path(tmp) / "validation.db"))
        try:
            policy = ProfilePolicy.from_config(Config(), store)
            registry = policy.registry()
            _check(validate(bare, (), registry), "the CarePlan")
            _check(validate(bare, [CCM_CAREPLAN], registry), "the CarePlan against ccm-careplan")
            _check(policy.issues(bundle), "the Bundle")
            with use_policy(policy):
                scenarios = [
                    measure("careplan base", lambda: validate(bare, (), registry), 1, options),
                    measure("careplan ccm-careplan", lambda: validate(bare, [CCM_CAREPLAN], registry), 1, options),
                    measure("on write", lambda: check_on_write(plan), 1, options),
                    measure("bundle base", lambda: validate(bundle, (), registry), BUNDLE_SIZE, options),
                    measure("bundle with entry profiles", lambda: policy.issues(bundle), BUNDLE_SIZE, options),
                ]
        finally:
            store.close()
    return report(scenarios, size, claiming)


def report(scenarios: list[Measured], size: int, claiming: int) -> bool:
    rows = []
    results = []
    for measured in scenarios:
        target = TARGETS.get(measured.scenario)
        verdict = "-" if target is None else "PASS" if measured.rate >= target else "BELOW"
        rows.append(
            (measured.scenario, measured.rate, measured.ms_per_call, measured.calls, target or float("nan"), verdict)
        )
        results.append(
            {
                "scenario": measured.scenario,
                "resources_per_s": round(measured.rate, 1),
                "ms_per_call": round(measured.ms_per_call, 3),
                "calls": measured.calls,
                "resources_per_call": measured.per_call,
                "target_resources_per_s": target,
                "verdict": verdict,
            }
        )
    print()
    print(table(["scenario", "resources/s", "ms/call", "calls", "target", "verdict"], rows))
    path = write_json(
        NAME,
        {
            "environment": environment(),
            "careplan": {"file": str(PLAN_FILE.relative_to(ROOT)), "bytes": size},
            "bundle": {"resources": BUNDLE_SIZE, "claiming_a_profile": claiming},
            "results": results,
        },
    )
    print(f"\nwrote {path.relative_to(ROOT)}")
    return True
