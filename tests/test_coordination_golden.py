"""Golden scenarios: examples/reconcile/<scenario>/input/*.json reconciled give expected.json, in any input order.

Regenerate the expected Bundles after a deliberate change with
``.venv/bin/python tests/test_coordination_golden.py --write`` and review the diff.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_coordination_builders import ASSEMBLER, CLOCK, assert_valid, counter_ids  # noqa: E402

from fhir_ccm.coordination import Reconciliation, reconcile  # noqa: E402
from fhir_ccm.formats.json_format import canonical_json, dump_json, parse_json, parse_resource  # noqa: E402
from fhir_ccm.validation import check_issues  # noqa: E402

SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "examples" / "reconcile"
SCENARIOS = sorted(path for path in SCENARIOS_DIR.iterdir() if path.is_dir())
ALL_RULES = {"M1", "M2", "M3", "M4", "M5", "M5b", "M6", "M7", "G1", "G2", "T1", "T2", "T3", "C1"}
CONFLICT_RULES = {"M2", "M3", "M4", "M5", "M5b", "M6", "G2", "T2", "T3"}
ON_BEHALF_OF = {"reference": "Organization/fhir-ccm-operator", "display": "fhir-ccm operator"}


def inputs(scenario: Path) -> list[dict[str, Any]]:
    return [parse_resource(path.read_bytes()) for path in sorted((scenario / "input").glob("*.json"))]


def patient_of(sources: list[dict[str, Any]]) -> str:
    (patient,) = [s["id"] for s in sources if s["resourceType"] == "Patient"]
    return patient


def reconciled(sources: list[dict[str, Any]]) -> Reconciliation:
    return reconcile(sources, patient_of(sources), CLOCK, counter_ids(), ASSEMBLER, on_behalf_of=ON_BEHALF_OF)


def rules_of(scenario: Path) -> set[str]:
    match = re.search(r"^Rules: (.+)$", (scenario / "README.md").read_text(encoding="utf-8"), re.M)
    assert match, f"{scenario.name}/README.md names no rules"
    return {rule.strip() for rule in match.group(1).split(",")}


def test_the_scenarios_cover_every_rule():
    assert set().union(*(rules_of(s) for s in SCENARIOS)) == ALL_RULES


def test_there_is_a_scenario_with_three_providers_and_one_with_thirty_medications():
    providers = {s.name: len({r["id"] for r in inputs(s) if r["resourceType"] == "Organization"}) for s in SCENARIOS}
    assert max(providers.values()) >= 3
    entries = max(len(reconciled(inputs(s)).medication_list.get("entry", [])) for s in SCENARIOS)
    assert entries >= 30


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_inputs_are_valid_and_named_for_their_resource(scenario):
    for path in sorted((scenario / "input").glob("*.json")):
        resource = parse_resource(path.read_bytes())
        assert check_issues(resource) == [], path.name
        assert path.name == f"{resource['resourceType']}-{resource['id']}.json"


def test_input_ids_are_unique_across_all_examples():
    keys = [path.name for path in SCENARIOS_DIR.parent.rglob("*.json") if path.name != "expected.json"]
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("order", ["given", "reversed"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_gives_the_expected_bundle(scenario, order):
    sources = inputs(scenario)
    if order == "reversed":
        sources.reverse()
    result = reconciled(sources)
    expected = parse_json((scenario / "expected.json").read_bytes())
    assert canonical_json(result.bundle()) == canonical_json(expected)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario_output_is_valid_fhir_and_raises_the_rules_it_names(scenario):
    result = reconciled(inputs(scenario))
    assert_valid(result)
    assert {c.rule for c in result.conflicts} == rules_of(scenario) & CONFLICT_RULES


def write_expected() -> None:
    for scenario in SCENARIOS:
        bundle = reconciled(inputs(scenario)).bundle()
        (scenario / "expected.json").write_text(dump_json(bundle, pretty=True) + "\n", encoding="utf-8")
        print(f"wrote {scenario.name}/expected.json")


if __name__ == "__main__" and "--write" in sys.argv:
    write_expected()
