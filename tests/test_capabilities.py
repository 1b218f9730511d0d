"""The CapabilityStatement says exactly what the server does."""

from __future__ import annotations

from fhir_ccm.api.routes import interaction_codes
from fhir_ccm.definitions import resource_types
from fhir_ccm.search.parameters import parameters_for
from fhir_ccm.search.parse import MODIFIERS, parse_criterion


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
    assert {i["code"] for i in rest["interaction"]} == {"history-system", "search-system", "batch", "transaction"}


def test_interactions_listed_are_the_routes_served(client):
    statement = client.get("/fhir/metadata").get_json()
    careplan = next(r for r in statement["rest"][0]["resource"] if r["type"] == "CarePlan")
    served = set(interaction_codes("type"))
    assert {i["code"] for i in careplan["interaction"]} == served
    assert served == {
        "create",
        "read",
        "vread",
        "update",
        "patch",
        "delete",
        "history-instance",
        "history-type",
        "search-type",
    }
    assert careplan["versioning"] == "versioned-update" and careplan["updateCreate"] is True


def test_search_parameters_listed_are_exactly_those_the_search_code_honours(client):
    statement = client.get("/fhir/metadata").get_json()
    for entry in statement["rest"][0]["resource"]:
        listed = {p["name"]: p for p in entry["searchParam"]}
        honoured = parameters_for(entry["type"])
        assert set(listed) == set(honoured), entry["type"]
        for code, param in honoured.items():
            assert listed[code]["type"] == param.type
            for modifier in MODIFIERS[param.type]:
                assert f":{modifier}" in listed[code]["documentation"]
            # and the parser accepts every value listed
            parse_criterion(f"{code}:missing", "true", (entry["type"],))
    careplan = next(r for r in statement["rest"][0]["resource"] if r["type"] == "CarePlan")
    assert {"patient", "subject", "status", "date", "category", "care-team", "_id", "_lastUpdated"} <= {
        p["name"] for p in careplan["searchParam"]
    }
    assert "CarePlan:subject" in careplan["searchInclude"]
    assert "Provenance:target" in careplan["searchRevInclude"]


def test_r4_only_types_are_writable_too(client):
    statement = client.get("/fhir/metadata").get_json()
    product = next(r for r in statement["rest"][0]["resource"] if r["type"] == "MedicinalProduct")
    assert {"create", "update", "patch"} <= {i["code"] for i in product["interaction"]}


def test_metadata_in_xml(client):
    response = client.get("/fhir/metadata?_format=xml")
    assert response.status_code == 200
    assert response.data.lstrip().startswith(b"<")
    assert b'<fhirVersion value="4.0.1"/>' in response.data


def test_operations_are_listed(client):
    statement = client.get("/fhir/metadata").get_json()
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"} in (
        resources["CarePlan"]["operation"]
    )
    assert "reconcile" in {o["name"] for o in resources["Patient"]["operation"]}
    assert "reconcile" in {o["name"] for o in statement["rest"][0]["operation"]}
