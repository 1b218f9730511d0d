"""$validate (http://hl7.org/fhir/R4/resource-operation-validate.html) through the Flask test client."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import EXAMPLES, FHIR_JSON

from fhir_ccm.app import create_app
from fhir_ccm.formats.xml_format import resource_to_xml, xml_to_resource
from fhir_ccm.interactions.validate import NO_ISSUES

CCM = "http://fhir-ccm.org/StructureDefinition/"
PLAN_FILE = EXAMPLES / "maria-garcia" / "CarePlan-ccm-garcia-careplan-primary-care.json"
FHIR_XML = "application/fhir+xml"


def plan() -> dict[str, Any]:
    return json.loads(PLAN_FILE.read_text(encoding="utf-8"))


def unclaimed(resource: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in resource.items() if key != "meta"}


def parameters(resource: dict[str, Any] | None = None, mode: str | None = None, *profiles: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []
    if resource is not None:
        found.append({"name": "resource", "resource": resource})
    if mode is not None:
        found.append({"name": "mode", "valueCode": mode})
    found += [{"name": "profile", "valueUri": url} for url in profiles]
    return {"resourceType": "Parameters", "parameter": found}


def validate(client, url: str, body: dict[str, Any] | None = None, status: int = 200) -> dict[str, Any]:
    if body is None:
        response = client.post(f"/fhir/{url}")
    else:
        response = client.post(f"/fhir/{url}", data=json.dumps(body), content_type=FHIR_JSON)
    outcome = response.get_json()
    assert response.status_code == status, outcome
    assert outcome["resourceType"] == "OperationOutcome"
    return outcome


def keys(outcome: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(i["severity"], i["code"], (i.get("expression") or [""])[0]) for i in outcome["issue"]]


def errors(outcome: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [key for key in keys(outcome) if key[0] in ("error", "fatal")]


def is_clean(outcome: dict[str, Any]) -> bool:
    return outcome["issue"] == [{"severity": "information", "code": "informational", "diagnostics": NO_ISSUES}]


# -- type level -----------------------------------------------------------------


def test_a_clean_resource_gives_one_information_issue(client):
    outcome = validate(client, "CarePlan/$validate", plan())
    assert is_clean(outcome)
    assert "no issues" in outcome["issue"][0]["diagnostics"].lower()


def test_every_problem_is_reported_with_its_expression_and_200(client):
    body = {**plan(), "status": "bogus", "foo": 1, "created": "2025-13-01"}
    del body["intent"]
    outcome = validate(client, "CarePlan/$validate", body)
    assert set(errors(outcome)) >= {
        ("error", "code-invalid", "CarePlan.status"),
        ("error", "structure", "CarePlan.foo"),
        ("error", "value", "CarePlan.created"),
        ("error", "required", "CarePlan.intent"),
    }
    assert outcome["issue"][0]["severity"] == "error"  # errors first


def test_the_claimed_profile_is_checked(client):
    body = plan()
    body["addresses"] = body["addresses"][:1]
    assert errors(validate(client, "CarePlan/$validate", body)) == [("error", "required", "CarePlan.addresses")]


def test_profile_in_the_query_string(client):
    body = unclaimed(plan())
    body["goal"] = []
    del body["goal"]
    assert is_clean(validate(client, "CarePlan/$validate", body))
    outcome = validate(client, f"CarePlan/$validate?profile={CCM}ccm-careplan", body)
    assert errors(outcome) == [("error", "required", "CarePlan.goal")]


def test_parameters_body_with_resource_and_profile(client):
    body = unclaimed(plan())
    del body["period"]["end"]
    assert is_clean(validate(client, "CarePlan/$validate", parameters(body)))
    outcome = validate(client, "CarePlan/$validate", parameters(body, None, CCM + "ccm-careplan"))
    assert errors(outcome) == [("error", "required", "CarePlan.period.end")]
    canonical = parameters(body)
    canonical["parameter"].append({"name": "profile", "valueCanonical": CCM + "ccm-careplan"})
    assert errors(validate(client, "CarePlan/$validate", canonical)) == [("error", "required", "CarePlan.period.end")]


def test_a_profile_asked_for_that_the_server_does_not_know_is_an_error(client):
    outcome = validate(client, "CarePlan/$validate?profile=http://example.org/nowhere", plan())
    assert errors(outcome) == [("error", "not-found", "CarePlan")]
    assert "http://example.org/nowhere" in outcome["issue"][0]["diagnostics"]


def test_a_profile_for_another_type_is_an_error(client):
    outcome = validate(client, f"CarePlan/$validate?profile={CCM}ccm-goal", plan())
    assert errors(outcome) == [("error", "invalid", "CarePlan")]


def test_a_claimed_unknown_profile_is_an_error_unless_the_server_warns(client, tmp_path):
    body = {**plan(), "meta": {"profile": ["http://example.org/unknown"]}}
    assert errors(validate(client, "CarePlan/$validate", body)) == [("error", "not-found", "CarePlan.meta.profile[0]")]
    warning_app = create_app({"database": str(tmp_path / "warn.db"), "unknown_profiles": "warn"})
    try:
        outcome = validate(warning_app.test_client(), "CarePlan/$validate", body)
    finally:
        warning_app.extensions["fhir_ccm.store"].close()
    assert keys(outcome) == [("warning", "not-found", "CarePlan.meta.profile[0]")]


def test_required_profiles_of_the_server_are_checked(tmp_path):
    app = create_app({"database": str(tmp_path / "r.db"), "required_profiles": f"CarePlan={CCM}ccm-careplan"})
    client = app.test_client()
    try:
        body = unclaimed(plan())
        del body["supportingInfo"]
        assert errors(validate(client, "CarePlan/$validate", body)) == [("error", "invariant", "CarePlan")]
        assert is_clean(validate(client, "Patient/$validate", {"resourceType": "Patient", "text": plan()["text"]}))
    finally:
        app.extensions["fhir_ccm.store"].close()


def test_bundle_entries_are_checked_against_their_own_claims(client):
    body = plan()
    body["addresses"] = body["addresses"][:1]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": body, "request": {"method": "PUT", "url": f"CarePlan/{body['id']}"}}],
    }
    assert errors(validate(client, "Bundle/$validate", bundle)) == [
        ("error", "required", "Bundle.entry[0].resource.addresses")
    ]


# -- modes ----------------------------------------------------------------------


def test_mode_update_needs_an_id_that_matches_the_url(client):
    body = unclaimed(plan())
    del body["id"]
    assert is_clean(validate(client, "CarePlan/$validate?mode=create", body))
    assert errors(validate(client, "CarePlan/$validate?mode=update", body)) == [("error", "required", "CarePlan.id")]
    body["id"] = "other"
    outcome = validate(client, "CarePlan/ccm-garcia-careplan-primary-care/$validate", parameters(body, "update"))
    assert errors(outcome) == [("error", "invariant", "CarePlan.id")]


def test_mode_delete_checks_that_the_resource_exists(client):
    assert client.put(f"/fhir/CarePlan/{plan()['id']}", json=plan()).status_code == 201
    assert is_clean(validate(client, f"CarePlan/{plan()['id']}/$validate?mode=delete"))
    assert is_clean(validate(client, f"CarePlan/{plan()['id']}/$validate", parameters(mode="delete")))
    validate(client, "CarePlan/unknown/$validate?mode=delete", status=404)
    validate(client, "CarePlan/$validate?mode=delete", plan(), status=400)


def test_an_unknown_mode_is_400(client):
    validate(client, "CarePlan/$validate?mode=patch", plan(), status=400)
    validate(client, "CarePlan/$validate", parameters(plan(), "bogus"), status=400)


# -- the stored resource ----------------------------------------------------------


def test_instance_level_without_a_body_validates_the_stored_version(client):
    assert client.put(f"/fhir/CarePlan/{plan()['id']}", json=plan()).status_code == 201
    url = f"/fhir/CarePlan/{plan()['id']}/$validate"
    response = client.get(url)
    assert response.status_code == 200 and is_clean(response.get_json())
    response = client.get(f"{url}?profile={CCM}ccm-goal")
    assert errors(response.get_json()) == [("error", "invalid", "CarePlan")]
    assert client.delete(f"/fhir/CarePlan/{plan()['id']}").status_code in (200, 204)
    assert client.get(url).status_code == 410
    assert client.get("/fhir/CarePlan/nobody/$validate").status_code == 404


def test_validate_writes_nothing(client, store):
    validate(client, "CarePlan/$validate", plan())
    validate(client, "CarePlan/$validate", {**plan(), "status": "bogus"})
    assert store.count() == 0


# -- requests that cannot be validated --------------------------------------------


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("CarePlan/$validate", None),  # nothing to validate
        ("CarePlan/$validate", {"resourceType": "Patient"}),  # not the type of the URL
        ("CarePlan/$validate", {"resourceType": "Parameters", "parameter": [{"name": "resources"}]}),
        ("CarePlan/$validate", {"resourceType": "Parameters", "parameter": [{"name": "resource", "valueString": "x"}]}),
        ("CarePlan/$validate", {"resourceType": "Parameters", "parameter": [{"name": "profile", "valueInteger": 1}]}),
        ("Spaceship/$validate", {"resourceType": "Spaceship"}),
    ],
)
def test_requests_that_cannot_be_validated_are_client_errors(client, url, body):
    response = client.post(f"/fhir/{url}", data=json.dumps(body) if body else b"", content_type=FHIR_JSON)
    assert response.status_code in (400, 404)
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_get_at_type_level_has_nothing_to_validate(client):
    assert client.get("/fhir/CarePlan/$validate").status_code == 400


def test_other_operations_still_answer_501(client):
    assert client.post("/fhir/CarePlan/$everything").status_code == 501
    assert client.get("/fhir/Patient/p1/$everything").status_code == 501


# -- formats --------------------------------------------------------------------


def test_xml_in_and_out(client):
    body = copy.deepcopy(plan())
    body["addresses"] = body["addresses"][:1]
    response = client.post(
        "/fhir/CarePlan/$validate",
        data=resource_to_xml(body),
        content_type=FHIR_XML,
        headers={"Accept": FHIR_XML},
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(FHIR_XML)
    outcome = xml_to_resource(response.data)
    assert errors(outcome) == [("error", "required", "CarePlan.addresses")]


def test_every_example_validates_clean_through_the_operation(client):
    for path in sorted(Path(EXAMPLES, "robert-johnson").glob("*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"))
        outcome = validate(client, f"{resource['resourceType']}/$validate", resource)
        assert errors(outcome) == [], path.name
