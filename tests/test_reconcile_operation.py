"""The $reconcile operation and command over a store loaded with the example patients."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter

import pytest
from conftest import EXAMPLE_DATA, EXAMPLES

from fhir_ccm.loader import load_paths
from fhir_ccm.validation import check_issues

PERSIST = {"resourceType": "Parameters", "parameter": [{"name": "persist", "valueBoolean": True}]}


@pytest.fixture
def loaded(app):
    load_paths(app.extensions["fhir_ccm.store"], EXAMPLE_DATA)
    return app.test_client()


def kinds(bundle):
    return Counter(entry["resource"]["resourceType"] for entry in bundle["entry"])


def test_reconcile_answers_one_plan_list_team_and_the_conflicts(loaded):
    response = loaded.post("/fhir/Patient/ccm-garcia/$reconcile")
    assert response.status_code == 200
    bundle = response.get_json()
    assert bundle["type"] == "collection"
    counted = kinds(bundle)
    assert counted["CarePlan"] == counted["List"] == counted["CareTeam"] == 1
    assert counted["Provenance"] == 3
    assert counted["DetectedIssue"] >= 2
    for entry in bundle["entry"]:
        assert check_issues(entry["resource"]) == [], entry["resource"]["resourceType"]
    plan = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "CarePlan")
    assert len(plan["basedOn"]) == 3
    assert all("detail" not in activity for activity in plan.get("activity", []))


def test_without_persist_nothing_is_written(loaded):
    before = loaded.get("/fhir/_history?_count=0").get_json()["total"]
    assert loaded.post("/fhir/Patient/ccm-johnson/$reconcile").status_code == 200
    assert loaded.get("/fhir/_history?_count=0").get_json()["total"] == before


def test_persist_stores_once_and_updates_on_rerun(loaded):
    first = loaded.post("/fhir/Patient/ccm-garcia/$reconcile", json=PERSIST).get_json()
    plan_id = next(e["resource"]["id"] for e in first["entry"] if e["resource"]["resourceType"] == "CarePlan")
    assert loaded.get(f"/fhir/CarePlan/{plan_id}").status_code == 200
    second = loaded.post("/fhir/Patient/ccm-garcia/$reconcile", json=PERSIST).get_json()
    assert plan_id in {e["resource"]["id"] for e in second["entry"]}
    plans = loaded.get("/fhir/CarePlan?patient=ccm-garcia&_summary=count").get_json()["total"]
    assert plans == 4  # three sources and one unified plan, not two
    lists = loaded.get("/fhir/List?patient=ccm-garcia&_summary=count").get_json()["total"]
    assert lists == 1


def test_a_resolved_issue_stays_resolved(loaded):
    bundle = loaded.post("/fhir/Patient/ccm-garcia/$reconcile", json=PERSIST).get_json()
    issue = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DetectedIssue")
    resolved = {
        **issue,
        "status": "final",
        "mitigation": [{"action": {"text": "Reviewed with the patient"}, "date": "2026-11-20"}],
    }
    resolved.pop("meta", None)
    assert loaded.put(f"/fhir/DetectedIssue/{issue['id']}", json=resolved).status_code == 200
    again = loaded.post("/fhir/Patient/ccm-garcia/$reconcile", json=PERSIST).get_json()
    same = next(e["resource"] for e in again["entry"] if e["resource"]["id"] == issue["id"])
    assert same["status"] == "final"
    assert same["mitigation"][0]["action"]["text"] == "Reviewed with the patient"


def test_unknown_patient_is_404_and_bad_parameters_400(loaded):
    response = loaded.post("/fhir/Patient/nobody/$reconcile")
    assert response.status_code == 404
    assert response.get_json()["resourceType"] == "OperationOutcome"
    bad = {"resourceType": "Parameters", "parameter": [{"name": "persist", "valueString": "yes"}]}
    assert loaded.post("/fhir/Patient/ccm-garcia/$reconcile", json=bad).status_code == 400


def test_reconcile_by_get_is_405_naming_post(loaded):
    for path in ("/fhir/Patient/ccm-garcia/$reconcile", "/fhir/$reconcile"):
        response = loaded.get(path)
        assert response.status_code == 405, path
        assert response.headers["Allow"] == "POST"
        outcome = response.get_json()
        assert outcome["resourceType"] == "OperationOutcome"
        assert "POST" in outcome["issue"][0]["diagnostics"]
    assert loaded.get("/fhir/Patient/ccm-garcia/$everything").status_code == 501


def test_reconcile_a_bundle_of_sources_stores_nothing(loaded, store):
    sources = [
        json.loads(path.read_text())
        for path in sorted((EXAMPLES / "maria-garcia").glob("*.json"))
        if path.name.startswith(("MedicationStatement", "Patient", "Goal"))
    ]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in sources]}
    before = loaded.get("/fhir/_history?_count=0").get_json()["total"]
    response = loaded.post("/fhir/$reconcile", json=bundle)
    assert response.status_code == 200
    assert kinds(response.get_json())["List"] == 1
    assert loaded.get("/fhir/_history?_count=0").get_json()["total"] == before


def test_sources_about_different_patients_are_422(loaded):
    garcia = json.loads(next((EXAMPLES / "maria-garcia").glob("MedicationStatement-*.json")).read_text())
    johnson = json.loads(next((EXAMPLES / "robert-johnson").glob("MedicationStatement-*.json")).read_text())
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": garcia}, {"resource": johnson}]}
    response = loaded.post("/fhir/$reconcile", json=bundle)
    assert response.status_code == 422
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_a_source_the_engine_cannot_read_is_4xx_naming_the_element(loaded):
    statement = json.loads(next((EXAMPLES / "maria-garcia").glob("MedicationStatement-*.json")).read_text())
    statement["dosage"] = [{"route": "by mouth"}]
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": statement}]}
    response = loaded.post("/fhir/$reconcile", json=bundle)
    assert 400 <= response.status_code < 500
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "dosage[0].route must be an object" in json.dumps(outcome)


def test_reconcile_command(database):
    run = [sys.executable, "-m", "fhir_ccm"]
    subprocess.run(
        [*run, "load", "--database", str(database), *map(str, EXAMPLE_DATA)], check=True, capture_output=True
    )
    summary = subprocess.run(
        [*run, "reconcile", "--database", str(database), "--patient", "ccm-johnson"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "Unified care plan" in summary
    assert "Medication list" in summary
    assert "dose-conflict" in summary and "evidence:" in summary
    bundle = json.loads(
        subprocess.run(
            [*run, "reconcile", "--database", str(database), "--patient", "ccm-johnson", "--json"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert bundle["resourceType"] == "Bundle"
