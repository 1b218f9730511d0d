"""Profiles enforced on every write: create, update, patch, conditional writes, transactions and batches."""

from __future__ import annotations

import copy
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, FHIR_JSON, ROOT

from fhir_ccm.app import create_app
from fhir_ccm.config import Config, setting_names
from fhir_ccm.errors import Unprocessable
from fhir_ccm.interactions import LOCAL_CONTEXT
from fhir_ccm.interactions.create import create
from fhir_ccm.interactions.validate import ProfilePolicy, parse_required_profiles, use_policy

CCM = "http://fhir-ccm.org/StructureDefinition/"
PLAN_FILE = EXAMPLES / "maria-garcia" / "CarePlan-ccm-garcia-careplan-primary-care.json"
GOAL_FILE = EXAMPLES / "maria-garcia" / "Goal-ccm-garcia-goal-primary-care-a1c.json"
STRICT_GOAL = "http://example.org/fhir/StructureDefinition/goal-with-note"
JSON_PATCH = "application/json-patch+json"


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def plan(**changes: Any) -> dict[str, Any]:
    resource = load(PLAN_FILE)
    resource.update(changes)
    return resource


def broken_plan() -> dict[str, Any]:
    resource = plan()
    resource["addresses"] = resource["addresses"][:1]
    return resource


def unclaimed(resource: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key != "meta"}


def put(client, resource: dict[str, Any]):
    return client.put(
        f"/fhir/{resource['resourceType']}/{resource['id']}", data=json.dumps(resource), content_type=FHIR_JSON
    )


def post(client, resource: dict[str, Any], **headers: str):
    return client.post(
        f"/fhir/{resource['resourceType']}", data=json.dumps(resource), content_type=FHIR_JSON, headers=headers
    )


def expressions(response) -> list[str]:
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome", outcome
    return [e for issue in outcome["issue"] if issue["severity"] == "error" for e in issue.get("expression", [])]


@pytest.fixture
def make_app(tmp_path: Path):
    """Apps with settings of their own; closed at the end."""
    apps = []

    def make(database: str = "fhir-ccm.db", **settings: Any):
        app = create_app({"database": str(tmp_path / database), **settings})
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["fhir_ccm.store"].close()


# -- create, update, patch ----------------------------------------------------------


def test_a_resource_meeting_its_claimed_profile_is_stored(client):
    assert post(client, plan()).status_code == 201
    assert put(client, plan()).status_code == 201


def test_a_resource_failing_its_claimed_profile_is_422_and_not_stored(client, store):
    response = post(client, broken_plan())
    assert response.status_code == 422
    assert expressions(response) == ["CarePlan.addresses"]
    response = put(client, broken_plan())
    assert response.status_code == 422
    assert store.count() == 0


def test_an_update_that_breaks_the_profile_keeps_the_current_version(client):
    assert put(client, plan()).status_code == 201
    response = put(client, broken_plan())
    assert response.status_code == 422
    current = client.get(f"/fhir/CarePlan/{plan()['id']}").get_json()
    assert current["meta"]["versionId"] == "1" and len(current["addresses"]) == 3


def test_a_patch_that_breaks_the_profile_is_422(client):
    assert put(client, plan()).status_code == 201
    response = client.patch(
        f"/fhir/CarePlan/{plan()['id']}",
        data=json.dumps([{"op": "remove", "path": "/period/end"}]),
        content_type=JSON_PATCH,
    )
    assert response.status_code == 422
    assert expressions(response) == ["CarePlan.period.end"]
    fine = [{"op": "replace", "path": "/description", "value": "Reviewed"}]
    response = client.patch(f"/fhir/CarePlan/{plan()['id']}", data=json.dumps(fine), content_type=JSON_PATCH)
    assert response.status_code == 200


def test_conditional_create_and_update_are_checked_too(client):
    response = post(client, broken_plan(), **{"If-None-Exist": "identifier=urn:x|1"})
    assert response.status_code == 422
    response = client.put("/fhir/CarePlan?identifier=urn:x|1", data=json.dumps(broken_plan()), content_type=FHIR_JSON)
    assert response.status_code == 422


def test_structural_errors_stay_400_before_any_profile_check(client):
    assert post(client, plan(status="bogus", foo=1)).status_code == 400


# -- unknown and required profiles ----------------------------------------------------


def test_a_claimed_unknown_profile_is_rejected_by_default(client, store):
    goal = {**load(GOAL_FILE), "meta": {"profile": ["http://example.org/StructureDefinition/nowhere"]}}
    response = put(client, goal)
    assert response.status_code == 422
    assert expressions(response) == ["Goal.meta.profile[0]"]
    assert "not known" in response.get_json()["issue"][0]["diagnostics"]
    assert store.count() == 0


def test_a_claimed_unknown_profile_is_stored_with_a_warning_when_configured(make_app, caplog):
    client = make_app(unknown_profiles="warn").test_client()
    goal = {**load(GOAL_FILE), "meta": {"profile": ["http://example.org/StructureDefinition/nowhere"]}}
    with caplog.at_level(logging.WARNING, logger="fhir_ccm"):
        assert put(client, goal).status_code == 201
    assert "http://example.org/StructureDefinition/nowhere" in caplog.text
    goal["meta"]["profile"].append(CCM + "ccm-goal")
    del goal["target"]
    assert put(client, goal).status_code == 422  # known profiles are still enforced


def test_a_resource_whose_profiles_are_all_unknown_is_checked_like_one_without(make_app):
    """Base invariants are part of conformance to a profile: with none known, the write check is the unclaimed one."""
    client = make_app(unknown_profiles="warn").test_client()
    goal = load(GOAL_FILE)
    goal["target"] = [{"detailQuantity": {"value": 7, "unit": "%"}}]  # gol-1: a detail needs a measure
    assert put(client, unclaimed(goal)).status_code in (200, 201)
    goal["meta"] = {"profile": ["http://example.org/StructureDefinition/nowhere"]}
    assert put(client, goal).status_code == 200
    goal["meta"]["profile"].append("http://hl7.org/fhir/StructureDefinition/Goal")
    response = put(client, goal)
    assert response.status_code == 422
    assert any("gol-1" in issue.get("diagnostics", "") for issue in response.get_json()["issue"])


def test_the_warning_names_the_id_a_create_assigns(make_app, caplog):
    client = make_app(unknown_profiles="warn").test_client()
    goal = {**load(GOAL_FILE), "meta": {"profile": ["http://example.org/StructureDefinition/nowhere"]}}
    del goal["id"]
    with caplog.at_level(logging.WARNING, logger="fhir_ccm"):
        response = client.post("/fhir/Goal", json=goal)
    assert response.status_code == 201
    id = response.headers["Location"].split("/Goal/")[1].split("/")[0]
    assert f"Goal/{id} stored without checking" in caplog.text


def test_required_profiles_apply_to_their_types_only(make_app):
    client = make_app(required_profiles=f"CarePlan={CCM}ccm-careplan,Goal={CCM}ccm-goal").test_client()
    response = put(client, unclaimed(broken_plan()))
    assert response.status_code == 422 and expressions(response) == ["CarePlan.addresses"]
    assert put(client, unclaimed(plan())).status_code == 201
    goal = unclaimed(load(GOAL_FILE))
    del goal["target"]
    assert put(client, goal).status_code == 422
    patient = load(EXAMPLES / "maria-garcia" / "Patient-ccm-garcia.json")
    assert put(client, patient).status_code == 201


def test_a_required_profile_the_server_does_not_know_is_an_error(make_app):
    client = make_app(required_profiles="Patient=http://example.org/nowhere").test_client()
    response = put(client, load(EXAMPLES / "maria-garcia" / "Patient-ccm-garcia.json"))
    assert response.status_code == 422 and expressions(response) == ["Patient"]


@pytest.mark.parametrize(
    "settings",
    [{"unknown_profiles": "maybe"}, {"required_profiles": "CarePlan"}, {"required_profiles": "=http://x"}],
)
def test_malformed_settings_stop_the_app_from_starting(tmp_path, settings):
    with pytest.raises(ValueError):
        create_app({"database": str(tmp_path / "x.db"), **settings})


def test_parse_required_profiles():
    assert parse_required_profiles(" CarePlan = a , Goal=b,CarePlan=c ,") == {"CarePlan": ("a", "c"), "Goal": ("b",)}
    assert parse_required_profiles("") == {}


# -- transactions and batches -----------------------------------------------------------


def bundle(kind: str, *resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": kind,
        "entry": [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources
        ],
    }


def test_a_transaction_with_an_entry_failing_its_profile_writes_nothing(client, store):
    goal = load(GOAL_FILE)
    response = client.post("/fhir", data=json.dumps(bundle("transaction", goal, broken_plan())), content_type=FHIR_JSON)
    assert response.status_code == 422
    assert expressions(response) == ["Bundle.entry[1].resource.addresses"]
    assert store.count() == 0
    response = client.post("/fhir", data=json.dumps(bundle("transaction", goal, plan())), content_type=FHIR_JSON)
    assert response.status_code == 200
    assert store.count() == 2


def test_a_batch_entry_failing_its_profile_fails_alone(client, store):
    response = client.post(
        "/fhir", data=json.dumps(bundle("batch", load(GOAL_FILE), broken_plan())), content_type=FHIR_JSON
    )
    assert response.status_code == 200
    statuses = [entry["response"]["status"] for entry in response.get_json()["entry"]]
    assert statuses[0].startswith("201") and statuses[1].startswith("422")
    assert store.count() == 1


def test_a_transaction_with_temporary_references_is_checked_after_they_are_resolved(client, store):
    goal = unclaimed(load(GOAL_FILE))
    del goal["id"]
    care_plan = plan()
    del care_plan["id"]
    care_plan["goal"] = [{"reference": "urn:uuid:6a1bd2e3-5c4f-4f0e-9d7a-1c2b3d4e5f60"}]
    body = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:6a1bd2e3-5c4f-4f0e-9d7a-1c2b3d4e5f60",
                "resource": goal,
                "request": {"method": "POST", "url": "Goal"},
            },
            {"resource": care_plan, "request": {"method": "POST", "url": "CarePlan"}},
        ],
    }
    response = client.post("/fhir", data=json.dumps(body), content_type=FHIR_JSON)
    assert response.status_code == 200, response.get_json()
    assert store.count() == 2


# -- definitions stored on the server -------------------------------------------------------


def strict_goal_profile(**changes: Any) -> dict[str, Any]:
    """A Goal profile that demands a note: stored through the API, then usable at once."""
    profile = {
        "resourceType": "StructureDefinition",
        "id": "goal-with-note",
        "url": STRICT_GOAL,
        "name": "GoalWithNote",
        "status": "active",
        "kind": "resource",
        "abstract": False,
        "type": "Goal",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Goal",
        "derivation": "constraint",
        "differential": {"element": [{"id": "Goal.note", "path": "Goal.note", "min": 1}]},
    }
    profile.update(changes)
    return profile


def goal_claiming(url: str, **changes: Any) -> dict[str, Any]:
    goal = {**load(GOAL_FILE), "meta": {"profile": [url]}}
    goal.update(changes)
    return goal


def test_a_profile_created_through_the_api_is_enforced_at_once(client):
    assert put(client, goal_claiming(STRICT_GOAL)).status_code == 422  # not known yet
    assert put(client, strict_goal_profile()).status_code == 201
    response = put(client, goal_claiming(STRICT_GOAL))
    assert response.status_code == 422 and expressions(response) == ["Goal.note"]
    assert put(client, goal_claiming(STRICT_GOAL, note=[{"text": "Agreed with the patient"}])).status_code == 201


def test_a_new_version_or_a_deletion_of_a_stored_profile_takes_effect(client):
    assert put(client, strict_goal_profile()).status_code == 201
    assert put(client, goal_claiming(STRICT_GOAL)).status_code == 422
    relaxed = strict_goal_profile(differential={"element": [{"id": "Goal.note", "path": "Goal.note", "max": "1"}]})
    assert put(client, relaxed).status_code == 200
    assert put(client, goal_claiming(STRICT_GOAL)).status_code == 201
    assert client.delete("/fhir/StructureDefinition/goal-with-note").status_code in (200, 204)
    other = goal_claiming(STRICT_GOAL, id="another-goal")
    assert put(client, other).status_code == 422  # unknown again


def test_a_profile_stored_by_one_worker_is_used_by_another(make_app):
    first, second = make_app("shared.db").test_client(), make_app("shared.db").test_client()
    assert put(second, goal_claiming(STRICT_GOAL)).status_code == 422
    assert expressions(put(second, goal_claiming(STRICT_GOAL))) == ["Goal.meta.profile[0]"]  # not known
    assert put(first, strict_goal_profile()).status_code == 201
    assert expressions(put(second, goal_claiming(STRICT_GOAL))) == ["Goal.note"]  # known, and not met
    assert put(second, goal_claiming(STRICT_GOAL, note=[{"text": "Agreed"}])).status_code == 201


def test_a_stored_value_set_is_used_by_a_stored_profile(client):
    value_set = {
        "resourceType": "ValueSet",
        "id": "goal-priorities",
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
    profile = strict_goal_profile(
        differential={
            "element": [
                {
                    "id": "Goal.priority",
                    "path": "Goal.priority",
                    "min": 1,
                    "binding": {"strength": "required", "valueSet": value_set["url"]},
                }
            ]
        }
    )
    assert put(client, value_set).status_code == 201
    assert put(client, profile).status_code == 201
    assert put(client, goal_claiming(STRICT_GOAL)).status_code == 201  # high-priority
    low = goal_claiming(STRICT_GOAL)
    low["priority"]["coding"][0]["code"] = "low-priority"
    response = put(client, low)
    assert response.status_code == 422 and expressions(response) == ["Goal.priority"]


# -- the fast path, the loader, the documentation ---------------------------------------------


def test_writes_without_profiles_never_build_the_registry(app, client):
    assert put(client, load(EXAMPLES / "maria-garcia" / "Patient-ccm-garcia.json")).status_code == 201
    assert not app.extensions["fhir_ccm.profiles"].conformance.built
    assert put(client, plan()).status_code == 201
    assert app.extensions["fhir_ccm.profiles"].conformance.built


def test_interactions_called_outside_a_request_use_the_installed_policy(store):
    policy = ProfilePolicy.from_config(Config(), store)
    with use_policy(policy), pytest.raises(Unprocessable):
        create(store, LOCAL_CONTEXT, "CarePlan", broken_plan())
    with pytest.raises(Unprocessable):  # no policy installed: the environment's and the repository's profiles
        create(store, LOCAL_CONTEXT, "CarePlan", copy.deepcopy(broken_plan()))
    assert create(store, LOCAL_CONTEXT, "CarePlan", plan()).status == 201


def test_every_profile_setting_is_a_row_of_the_configuration_table():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `FHIR_CCM_")]
    documented = {re.match(r"\| `(FHIR_CCM_\w+)`", row).group(1) for row in rows}  # type: ignore[union-attr]
    assert set(setting_names()) <= documented
    for name in ("FHIR_CCM_UNKNOWN_PROFILES", "FHIR_CCM_REQUIRED_PROFILES", "FHIR_CCM_DEFINITIONS"):
        assert name in documented


def test_a_request_checks_that_its_registry_is_current_once(make_app, monkeypatch):
    """A transaction of goals claiming ccm-goal compares the stored definitions once, not per entry."""
    from fhir_ccm.interactions.validate import Conformance

    client = make_app().test_client()
    checks = []
    stamp = Conformance._current_stamp
    monkeypatch.setattr(Conformance, "_current_stamp", lambda self: checks.append(1) or stamp(self))
    goal = load(GOAL_FILE)
    entries = [
        {"resource": {**goal, "id": f"g{n}"}, "request": {"method": "PUT", "url": f"Goal/g{n}"}} for n in range(5)
    ]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    response = client.post("/fhir", json=bundle)
    assert response.status_code == 200, response.get_json()
    assert len(checks) == 1
    assert put(client, {**goal, "id": "g9"}).status_code == 201
    assert len(checks) == 2  # the next request checks again
