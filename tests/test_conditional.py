"""Conditional create, update, delete and patch (http://hl7.org/fhir/R4/http.html#ccreate), through the Flask app.

Each interaction follows the spec's rules for none, one and several matches of
its search criteria; several is 412 (a conditional delete may delete several
when the server is configured to).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhir_ccm.app import create_app

FHIR_JSON = "application/fhir+json"
JSON_PATCH = "application/json-patch+json"
MRN = "http://hospital.example.org/mrn"


def patient(mrn: str, family: str = "Garcia", gender: str = "female", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": MRN, "value": mrn}],
        "name": [{"family": family, "given": ["Maria"]}],
        "gender": gender,
        "birthDate": "1952-04-11",
        **extra,
    }


def put(client, url: str, resource: dict, **headers: str):
    return client.put(f"/fhir/{url}", data=json.dumps(resource), content_type=FHIR_JSON, headers=headers)


def post(client, url: str, resource: dict, **headers: str):
    return client.post(f"/fhir/{url}", data=json.dumps(resource), content_type=FHIR_JSON, headers=headers)


def patch(client, url: str, operations: list[dict], **headers: str):
    return client.patch(f"/fhir/{url}", data=json.dumps(operations), content_type=JSON_PATCH, headers=headers)


def located_id(response) -> str:
    return response.headers["Location"].split("/fhir/")[1].split("/")[1]


def count(client, query: str = "") -> int:
    return client.get(f"/fhir/Patient?{query}&_summary=count").get_json()["total"]


def versions(client) -> int:
    return client.get("/fhir/_history").get_json()["total"]


@pytest.fixture
def three(client) -> None:
    """p1 and p2 share a family; p3 does not; p1 is male."""
    for id, resource in (
        ("p1", patient("1", gender="male")),
        ("p2", patient("2")),
        ("p3", patient("3", family="Washington")),
    ):
        assert put(client, f"Patient/{id}", {**resource, "id": id}).status_code == 201


# -- create -------------------------------------------------------------------------------


def test_conditional_create_none_creates(client, three):
    response = post(client, "Patient", patient("4"), **{"If-None-Exist": f"identifier={MRN}|4"})
    assert response.status_code == 201
    assert response.get_json()["identifier"][0]["value"] == "4"
    assert count(client) == 4


@pytest.mark.parametrize(
    "criteria",
    [
        f"identifier={MRN}|1",
        "identifier=1",
        f"Patient?identifier={MRN}|1",
        f"?identifier={MRN}|1",
        "family=Garcia&gender=male",
        "family:exact=Garcia&birthdate=1952-04-11&gender=male",
        "_id=p1",
        "identifier=1,99",
    ],
)
def test_conditional_create_one_match_answers_200_with_it_and_writes_nothing(client, three, criteria):
    before = versions(client)
    response = post(client, "Patient", patient("1", family="Other"), **{"If-None-Exist": criteria})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["id"] == "p1"
    assert response.headers["ETag"] == 'W/"1"'
    assert response.headers["Location"].endswith("/Patient/p1/_history/1")
    assert versions(client) == before


@pytest.mark.parametrize("criteria", ["family=Garcia", "gender=female", "identifier=1,2", f"identifier={MRN}|"])
def test_conditional_create_several_matches_is_412(client, three, criteria):
    before = versions(client)
    response = post(client, "Patient", patient("9"), **{"If-None-Exist": criteria})
    assert response.status_code == 412
    assert response.get_json()["resourceType"] == "OperationOutcome"
    assert versions(client) == before


@pytest.mark.parametrize("criteria", ["", "bogus=1", "_count=1", "_sort=family", "birthdate=notadate"])
def test_conditional_create_with_bad_criteria_is_400(client, three, criteria):
    response = post(client, "Patient", patient("9"), **{"If-None-Exist": criteria})
    assert response.status_code == 400
    assert count(client) == 3


def test_conditional_create_ignores_deleted_resources(client, three):
    assert client.delete("/fhir/Patient/p3").status_code == 204
    response = post(client, "Patient", patient("3"), **{"If-None-Exist": f"identifier={MRN}|3"})
    assert response.status_code == 201
    assert located_id(response) != "p3"


def test_conditional_create_validates_before_matching(client, three):
    response = post(client, "Patient", {**patient("1"), "gender": "bogus"}, **{"If-None-Exist": "identifier=1"})
    assert response.status_code in (400, 422)


# -- update -------------------------------------------------------------------------------


def test_conditional_update_none_without_id_creates(client, three):
    response = put(client, f"Patient?identifier={MRN}|4", patient("4"))
    assert response.status_code == 201
    new_id = located_id(response)
    assert new_id not in ("p1", "p2", "p3")
    assert client.get(f"/fhir/Patient/{new_id}").get_json()["identifier"][0]["value"] == "4"


def test_conditional_update_none_with_id_creates_that_id(client, three):
    response = put(client, f"Patient?identifier={MRN}|5", {**patient("5"), "id": "chosen"})
    assert response.status_code == 201
    assert located_id(response) == "chosen"


def test_conditional_update_none_with_id_of_a_resource_that_does_not_match_is_refused(client, three):
    response = put(client, f"Patient?identifier={MRN}|5", {**patient("5"), "id": "p3"})
    assert response.status_code in (400, 409, 412)
    assert client.get("/fhir/Patient/p3").get_json()["identifier"][0]["value"] == "3"


@pytest.mark.parametrize("body_id", [None, "p1"])
def test_conditional_update_one_match_updates_it(client, three, body_id):
    body = patient("1", gender="male", family="Updated")
    if body_id:
        body["id"] = body_id
    response = put(client, "Patient?family=Garcia&gender=male", body)
    assert response.status_code == 200, response.get_json()
    assert response.headers["ETag"] == 'W/"2"'
    assert client.get("/fhir/Patient/p1").get_json()["name"][0]["family"] == "Updated"
    assert count(client) == 3


def test_conditional_update_one_match_with_another_id_is_400(client, three):
    response = put(client, f"Patient?identifier={MRN}|1", {**patient("1"), "id": "p2"})
    assert response.status_code == 400
    assert client.get("/fhir/Patient/p2/_history").get_json()["total"] == 1


def test_conditional_update_several_matches_is_412(client, three):
    before = versions(client)
    response = put(client, "Patient?family=Garcia", patient("9"))
    assert response.status_code == 412
    assert versions(client) == before


def test_conditional_update_with_same_content_writes_no_version(client, three):
    response = put(client, f"Patient?identifier={MRN}|3", patient("3", family="Washington"))
    assert response.status_code == 200
    assert response.headers["ETag"] == 'W/"1"'
    assert client.get("/fhir/Patient/p3/_history").get_json()["total"] == 1


def test_conditional_update_honours_if_match(client, three):
    stale = put(client, f"Patient?identifier={MRN}|3", patient("3", family="X"), **{"If-Match": 'W/"2"'})
    assert stale.status_code == 412
    fresh = put(client, f"Patient?identifier={MRN}|3", patient("3", family="X"), **{"If-Match": 'W/"1"'})
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] == 'W/"2"'


def test_conditional_update_needs_criteria(client, three):
    assert put(client, "Patient", patient("9")).status_code == 400
    assert put(client, "Patient?_format=json", patient("9")).status_code == 400
    assert put(client, "Patient?_count=1", patient("9")).status_code == 400
    assert count(client) == 3


def test_conditional_update_ignores_format_parameters_in_the_criteria(client, three):
    response = put(client, f"Patient?identifier={MRN}|3&_format=json", patient("3", family="Fmt"))
    assert response.status_code == 200
    assert located_id(response) == "p3"


def test_conditional_update_body_must_be_of_the_url_type(client, three):
    observation = {"resourceType": "Observation", "status": "final", "code": {"text": "x"}}
    assert put(client, "Patient?identifier=3", observation).status_code == 400


# -- delete -------------------------------------------------------------------------------


def test_conditional_delete_none_is_a_success_that_writes_nothing(client, three):
    before = versions(client)
    response = client.delete(f"/fhir/Patient?identifier={MRN}|404")
    assert response.status_code in (200, 204)
    assert versions(client) == before


def test_conditional_delete_one_deletes_it(client, three):
    response = client.delete("/fhir/Patient?family=Washington&birthdate=1952")
    assert response.status_code in (200, 204)
    assert client.get("/fhir/Patient/p3").status_code == 410
    assert count(client) == 2
    again = client.delete("/fhir/Patient?family=Washington")
    assert again.status_code in (200, 204)
    assert client.get("/fhir/Patient/p3/_history").get_json()["total"] == 2


def test_conditional_delete_several_is_412_by_default(client, three):
    before = versions(client)
    response = client.delete("/fhir/Patient?family=Garcia")
    assert response.status_code == 412
    assert count(client) == 3
    assert versions(client) == before


def test_conditional_delete_needs_criteria(client, three):
    assert client.delete("/fhir/Patient").status_code == 400
    assert client.delete("/fhir/Patient?_count=5").status_code == 400
    assert client.delete("/fhir/Patient?nonsense=1").status_code == 400
    assert count(client) == 3


def test_conditional_delete_with_if_match(client, three):
    assert client.delete("/fhir/Patient?identifier=3", headers={"If-Match": 'W/"4"'}).status_code == 412
    assert client.delete("/fhir/Patient?identifier=3", headers={"If-Match": 'W/"1"'}).status_code in (200, 204)
    assert client.get("/fhir/Patient/p3").status_code == 410


@pytest.fixture
def multiple_client(tmp_path: Path):
    app = create_app({"database": str(tmp_path / "multiple.db"), "conditional_delete_multiple": 1})
    yield app.test_client()
    app.extensions["fhir_ccm.store"].close()


def test_conditional_delete_of_several_when_the_server_allows_it(multiple_client):
    client = multiple_client
    for id, resource in (("a", patient("1")), ("b", patient("2")), ("c", patient("3", family="Other"))):
        assert put(client, f"Patient/{id}", {**resource, "id": id}).status_code == 201
    response = client.delete("/fhir/Patient?family=Garcia")
    assert response.status_code in (200, 204)
    assert [client.get(f"/fhir/Patient/{id}").status_code for id in "abc"] == [410, 410, 200]
    history = client.get("/fhir/_history").get_json()
    assert [e["request"]["method"] for e in history["entry"][:2]] == ["DELETE", "DELETE"]
    assert history["total"] == 5


# -- patch --------------------------------------------------------------------------------


def test_conditional_patch_one_match_patches_it(client, three):
    operations = [{"op": "replace", "path": "/name/0/family", "value": "Patched"}]
    response = patch(client, "Patient?family=Garcia&gender=female", operations)
    assert response.status_code == 200, response.get_json()
    assert response.headers["ETag"] == 'W/"2"'
    assert client.get("/fhir/Patient/p2").get_json()["name"][0]["family"] == "Patched"


def test_conditional_patch_none_is_404(client, three):
    response = patch(client, f"Patient?identifier={MRN}|404", [{"op": "remove", "path": "/gender"}])
    assert response.status_code == 404
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_conditional_patch_several_is_412(client, three):
    before = versions(client)
    assert patch(client, "Patient?family=Garcia", [{"op": "remove", "path": "/gender"}]).status_code == 412
    assert versions(client) == before


def test_conditional_patch_with_if_match(client, three):
    operations = [{"op": "add", "path": "/active", "value": True}]
    assert patch(client, "Patient?identifier=3", operations, **{"If-Match": 'W/"9"'}).status_code == 412
    assert patch(client, "Patient?identifier=3", operations, **{"If-Match": 'W/"1"'}).status_code == 200
    assert client.get("/fhir/Patient/p3").get_json()["active"] is True


def test_conditional_patch_needs_criteria(client, three):
    assert patch(client, "Patient", [{"op": "remove", "path": "/gender"}]).status_code == 400


# -- criteria -----------------------------------------------------------------------------


def test_criteria_use_the_full_search_language(client, three):
    """Chains, modifiers and _has decide a conditional interaction as they decide a search."""
    observation = {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
        "subject": {"reference": "Patient/p3"},
        "identifier": [{"system": "http://example.org/obs", "value": "o1"}],
    }
    assert put(client, "Observation/o1", {**observation, "id": "o1"}).status_code == 201
    chained = put(
        client,
        "Observation?subject:Patient.family=Washington&code=http://loinc.org|4548-4",
        {**observation, "status": "amended"},
    )
    assert chained.status_code == 200, chained.get_json()
    assert located_id(chained) == "o1"
    has = post(client, "Patient", patient("9"), **{"If-None-Exist": "_has:Observation:subject:code=4548-4"})
    assert has.status_code == 200
    assert located_id(has) == "p3"
    missing = post(client, "Patient", patient("9"), **{"If-None-Exist": "gender:missing=true"})
    assert missing.status_code == 201
    absolute = put(
        client, "Observation?subject=http://localhost/fhir/Patient/p3", {**observation, "status": "corrected"}
    )
    assert absolute.status_code == 200, absolute.get_json()
    assert located_id(absolute) == "o1"
