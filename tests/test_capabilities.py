"""The CapabilityStatement says exactly what the server does."""

from __future__ import annotations

from fhir_ccm.api.routes import ROUTES
from fhir_ccm.definitions import resource_types


def test_metadata(client):
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    statement = response.get_json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["kind"] == "instance"
    assert set(statement["format"]) >= {"application/fhir+json", "application/fhir+xml"}
    assert statement["patchFormat"] == ["application/json-patch+json"]
    rest = statement["rest"][0]
    assert {r["type"] for r in rest["resource"]} == resource_types()
    assert [i["code"] for i in rest["interaction"]] == ["history-system"]


def test_interactions_listed_are_the_routes_served(client):
    statement = client.get("/fhir/metadata").get_json()
    careplan = next(r for r in statement["rest"][0]["resource"] if r["type"] == "CarePlan")
    served = {route.interaction for route in ROUTES if route.level == "type" and route.interaction}
    assert {i["code"] for i in careplan["interaction"]} == served
    assert served == {"create", "read", "vread", "update", "patch", "delete", "history-instance", "history-type"}
    assert careplan["versioning"] == "versioned-update" and careplan["updateCreate"] is True
    assert "searchParam" not in careplan  # search is not served yet, so none is claimed


def test_unwritable_types_are_documented(client):
    statement = client.get("/fhir/metadata").get_json()
    product = next(r for r in statement["rest"][0]["resource"] if r["type"] == "MedicinalProduct")
    assert {i["code"] for i in product["interaction"]}.isdisjoint({"create", "update", "patch"})
    assert "501" in product["documentation"]


def test_metadata_in_xml(client):
    response = client.get("/fhir/metadata?_format=xml")
    assert response.status_code == 200
    assert response.data.lstrip().startswith(b"<")
    assert b'<fhirVersion value="4.0.1"/>' in response.data


def test_unserved_interactions_answer_501_not_silence(client):
    search = client.get("/fhir/CarePlan?patient=1")
    assert search.status_code == 501
    assert search.get_json()["resourceType"] == "OperationOutcome"
    batch = client.post("/fhir", json={"resourceType": "Bundle", "type": "batch"})
    assert batch.status_code == 501
