"""``python -m fhir_ccm validate`` (and ``load`` with profiles), run as subprocesses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import EXAMPLE_DATA, EXAMPLES, ROOT

from fhir_ccm.formats.xml_format import resource_to_xml

CCM = "http://fhir-ccm.org/StructureDefinition/"
PLAN_FILE = EXAMPLES / "maria-garcia" / "CarePlan-ccm-garcia-careplan-primary-care.json"
GOAL_FILE = EXAMPLES / "maria-garcia" / "Goal-ccm-garcia-goal-primary-care-a1c.json"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fhir_ccm", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def write(path: Path, resource: Any) -> Path:
    path.write_text(json.dumps(resource), encoding="utf-8")
    return path


def broken_plan() -> dict[str, Any]:
    plan = load(PLAN_FILE)
    plan["addresses"] = plan["addresses"][:1]
    return plan


def test_valid_files_exit_0_with_a_verdict_per_resource():
    result = run("validate", str(EXAMPLES / "maria-garcia"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("PASS  ") for line in lines) == 27
    assert lines[-1] == "27 resources: 27 valid, 0 invalid; 0 errors, 24 warnings"


def test_errors_exit_1_with_a_table_of_issues(tmp_path):
    path = write(tmp_path / "plan.json", broken_plan())
    result = run("validate", str(path), str(GOAL_FILE))
    assert result.returncode == 1
    assert f"FAIL  {path}  CarePlan/ccm-garcia-careplan-primary-care  (1 error)" in result.stdout
    row = next(line for line in result.stdout.splitlines() if "CarePlan.addresses" in line)
    assert row.split()[:3] == ["error", "required", "CarePlan.addresses"]
    assert "needs at least 2 value(s) by the profile" in row
    assert "2 resources: 1 valid, 1 invalid; 1 error, 1 warning" in result.stdout
    quiet = run("validate", "--quiet", str(path), str(GOAL_FILE))
    assert "PASS" not in quiet.stdout and "FAIL" in quiet.stdout


def test_json_gives_an_operation_outcome_or_a_bundle_of_them(tmp_path):
    path = write(tmp_path / "plan.json", broken_plan())
    single = run("validate", "--json", str(path))
    assert single.returncode == 1
    outcome = json.loads(single.stdout)
    assert outcome["resourceType"] == "OperationOutcome"
    assert [(i["severity"], i["expression"]) for i in outcome["issue"]] == [("error", ["CarePlan.addresses"])]
    several = run("validate", "--json", str(path), str(GOAL_FILE))
    bundle = json.loads(several.stdout)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    assert [entry["fullUrl"] for entry in bundle["entry"]] == [path.resolve().as_uri(), GOAL_FILE.resolve().as_uri()]
    assert bundle["entry"][1]["resource"]["issue"][0]["severity"] == "warning"  # dom-6: no narrative


def test_xml_ndjson_and_bundles(tmp_path):
    xml = tmp_path / "plan.xml"
    xml.write_bytes(resource_to_xml(broken_plan()))
    ndjson = tmp_path / "goals.ndjson"
    goal = load(GOAL_FILE)
    without_target = {key: value for key, value in goal.items() if key != "target"}
    ndjson.write_text(f"{json.dumps(goal)}\n\n{json.dumps(without_target)}\nnot json\n", encoding="utf-8")
    bundle = write(
        tmp_path / "bundle.json",
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": broken_plan()}]},
    )
    result = run("validate", str(xml), str(ndjson), str(bundle))
    assert result.returncode == 1
    verdicts = [line for line in result.stdout.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert [v.split("  ")[:2] for v in verdicts] == [
        ["FAIL", f"{xml}"],
        ["PASS", f"{ndjson}:1"],
        ["FAIL", f"{ndjson}:3"],
        ["FAIL", f"{ndjson}:4"],
        ["FAIL", f"{bundle}"],
    ]
    assert "Bundle.entry[0].resource.addresses" in result.stdout
    assert "Goal.target" in result.stdout
    assert "fatal" in result.stdout  # the line that is not JSON


def test_profile_by_url_applies_to_resources_of_its_type(tmp_path):
    plan = {key: value for key, value in broken_plan().items() if key != "meta"}
    path = write(tmp_path / "plan.json", plan)
    assert run("validate", str(path)).returncode == 0
    result = run("validate", "--profile", CCM + "ccm-careplan", str(path), str(GOAL_FILE))
    assert result.returncode == 1
    assert "CarePlan.addresses" in result.stdout and "PASS" in result.stdout  # the Goal is not a CarePlan


def test_profile_from_a_file_with_the_definitions_it_needs(tmp_path):
    value_set = {
        "resourceType": "ValueSet",
        "url": "http://example.org/fhir/ValueSet/high-only",
        "status": "active",
        "compose": {
            "include": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/goal-priority",
                    "concept": [{"code": "high-priority"}],
                }
            ]
        },
    }
    profile = {
        "resourceType": "StructureDefinition",
        "url": "http://example.org/fhir/StructureDefinition/urgent-goal",
        "name": "UrgentGoal",
        "status": "active",
        "kind": "resource",
        "abstract": False,
        "type": "Goal",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Goal",
        "derivation": "constraint",
        "differential": {
            "element": [
                {
                    "id": "Goal.priority",
                    "path": "Goal.priority",
                    "min": 1,
                    "binding": {"strength": "required", "valueSet": value_set["url"]},
                }
            ]
        },
    }
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    write(definitions / "vs.json", value_set)
    profile_file = write(tmp_path / "urgent-goal.json", profile)
    low = load(GOAL_FILE)
    low["priority"]["coding"][0]["code"] = "low-priority"
    goal = write(tmp_path / "goal.json", low)
    result = run("validate", "--profile", str(profile_file), "--definitions", str(definitions), str(goal))
    assert result.returncode == 1
    assert "Goal.priority" in result.stdout
    assert (
        run("validate", "--profile", str(profile_file), "--definitions", str(definitions), str(GOAL_FILE)).returncode
        == 0
    )


def test_unknown_claimed_profiles_follow_the_setting(tmp_path):
    goal = {**load(GOAL_FILE), "meta": {"profile": ["http://example.org/nowhere"]}}
    path = write(tmp_path / "goal.json", goal)
    assert run("validate", str(path)).returncode == 1
    assert run("validate", "--unknown-profiles", "warn", str(path)).returncode == 0


def test_usage_errors_exit_2(tmp_path):
    assert run("validate").returncode == 2
    assert run("validate", str(tmp_path / "missing.json")).returncode == 2
    result = run("validate", "--profile", "http://example.org/nowhere", str(GOAL_FILE))
    assert result.returncode == 2 and "not known" in result.stderr
    assert run("validate", "--unknown-profiles", "maybe", str(GOAL_FILE)).returncode == 2
    (tmp_path / "empty").mkdir()
    assert run("validate", str(tmp_path / "empty")).returncode == 2


def test_load_of_the_examples_works_as_make_serve_runs_it(tmp_path):
    database = tmp_path / "serve.db"
    result = run("load", "--database", str(database), *map(str, EXAMPLE_DATA))
    assert result.returncode == 0, result.stderr
    assert "126 created" in result.stdout and "0 failed" in result.stdout


def test_load_refuses_resources_failing_their_profiles(tmp_path):
    path = write(tmp_path / "plan.json", broken_plan())
    result = run("load", "--database", str(tmp_path / "x.db"), str(path), str(GOAL_FILE))
    assert result.returncode == 1
    assert "1 created" in result.stdout
    assert "CarePlan.addresses" in result.stderr
