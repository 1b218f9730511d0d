"""Every REST interaction, header and format of the core, through the Flask app."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal

import pytest
from lxml import etree

from fhir_ccm.formats.json_format import parse_json
from fhir_ccm.store import sqlite as sqlite_module

FHIR_JSON = "application/fhir+json"
FHIR_XML = "application/fhir+xml"

PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "http://hospital.example.org/mrn", "value": "12345"}],
    "name": [{"family": "Garcia", "given": ["Maria"]}],
    "gender": "female",
    "birthDate": "1952-04-11",
}
OBSERVATION = {
    "resourceType": "Observation",
    "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]},
    "valueQuantity": {"value": 7.50, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
}


def post(client, resource_type, resource, **headers):
    return client.post(f"/fhir/{resource_type}", data=json.dumps(resource), content_type=FHIR_JSON, headers=headers)


def put(client, resource_type, id, resource, **headers):
    return client.put(f"/fhir/{resource_type}/{id}", data=json.dumps(resource), content_type=FHIR_JSON, headers=headers)


def created_id(response) -> str:
    return response.headers["Location"].split("/fhir/")[1].split("/")[1]


# -- create ---------------------------------------------------------------------


def test_create_assigns_id_version_and_headers(client):
    response = post(client, "Patient", {**PATIENT, "id": "client-chosen"})
    assert response.status_code == 201
    body = response.get_json()
    assert body["id"] != "client-chosen"
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert response.headers["ETag"] == 'W/"1"'
    assert response.headers["Location"] == f"http://localhost/fhir/Patient/{body['id']}/_history/1"
    assert response.headers["Last-Modified"].endswith("GMT")
    assert response.headers["Content-Type"].startswith(FHIR_JSON)


def test_create_overrides_client_version_meta_but_keeps_profiles_and_tags(client):
    meta = {"versionId": "99", "lastUpdated": "2000-01-01T00:00:00Z", "tag": [{"code": "x"}]}
    body = post(client, "Patient", {**PATIENT, "meta": meta}).get_json()
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"] != "2000-01-01T00:00:00Z"
    assert body["meta"]["tag"] == [{"code": "x"}]


def test_decimals_keep_their_precision(client):
    raw = json.dumps(OBSERVATION).replace("7.5", "7.50")
    response = client.post("/fhir/Observation", data=raw, content_type=FHIR_JSON)
    assert response.status_code == 201
    assert b'"value":7.50' in response.data
    assert b'"value":7.50' in client.get(f"/fhir/Observation/{created_id(response)}").data
    xml = client.get(f"/fhir/Observation/{created_id(response)}?_format=xml").data
    assert b'<value value="7.50"/>' in xml


def test_create_with_wrong_resource_type_is_400(client):
    response = post(client, "Observation", PATIENT)
    assert response.status_code == 400
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_create_unknown_type_is_404(client):
    response = post(client, "Spaceship", {"resourceType": "Spaceship"})
    assert response.status_code == 404
    assert response.get_json()["issue"][0]["code"] == "not-found"


SAMPLE_VALUES = {
    "boolean": True,
    "integer": 1,
    "positiveInt": 1,
    "unsignedInt": 1,
    "decimal": 1,
    "date": "2026-01-01",
    "dateTime": "2026-01-01T10:00:00Z",
    "instant": "2026-01-01T10:00:00Z",
    "time": "10:00:00",
    "base64Binary": "aGVsbG8=",
    "id": "x1",
    "oid": "urn:oid:1.2.3",
    "uuid": "urn:uuid:4e1d7c52-0f5e-4d8e-8b9f-2d1e6c1f0a11",
    "xhtml": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>',
}
SAMPLE_COMPLEX = {
    "Reference": {"reference": "Patient/x"},
    "CodeableConcept": {"text": "x"},
    "Coding": {"system": "http://example.org", "code": "x"},
    "Identifier": {"value": "x"},
}


def reference_target(path: str) -> str:
    """The first type a Reference element may point to, from its definition (Patient when any)."""
    from fhir_ccm.definitions import structure_definition

    definition = structure_definition(path.split(".")[0]) or {}
    for element in definition.get("snapshot", {}).get("element", []):
        if element["path"] == path:
            for type_entry in element.get("type", []):
                for target in type_entry.get("targetProfile", []):
                    name = target.rsplit("/", 1)[-1]
                    return "Patient" if name == "Resource" else name
    return "Patient"


def minimal_instance(node: str) -> dict:
    """The smallest content for ``node``: every mandatory element, with a valid sample value."""
    from fhir_ccm.definitions.elements import properties
    from fhir_ccm.validation.valuesets import expand_codes

    result: dict = {}
    for prop in properties(node).values():
        if prop.min < 1 or prop.path in {p.path for name, p in properties(node).items() if name in result}:
            continue
        if prop.is_primitive:
            value = SAMPLE_VALUES.get(prop.type_code, "x")
            if prop.type_code == "code" and prop.value_set:
                value = sorted(expand_codes(prop.value_set) or ["x"])[0]
        elif prop.type_code == "Reference":
            value = {"reference": f"{reference_target(prop.path)}/x"}
        elif prop.type_code in SAMPLE_COMPLEX:
            value = SAMPLE_COMPLEX[prop.type_code]
        else:
            value = minimal_instance(prop.node or prop.type_code) or {
                "extension": [{"url": "http://example.org/x", "valueString": "x"}]
            }
        result[prop.name] = [value] if prop.is_array else value
    return result


def test_every_r4_type_can_be_stored(client):
    """The R4 list of types, not R4B's: the R4-only ones are checked by the definition-driven validator."""
    from fhir_ccm.definitions import resource_types

    for resource_type in sorted(resource_types()):
        resource = {"resourceType": resource_type, "id": "x1", **minimal_instance(resource_type)}
        if resource_type == "Bundle":
            resource["type"] = "collection"  # the first code, batch, is a request: refused as content
        response = put(client, resource_type, "x1", resource)
        assert response.status_code == 201, (resource_type, response.get_json())
        assert client.get(f"/fhir/{resource_type}/x1").status_code == 200


def test_r4_only_types_are_checked_too(client):
    """MedicinalProduct has no R4B model; its content is still checked before it is stored."""
    assert (
        post(
            client, "MedicinalProduct", {"resourceType": "MedicinalProduct", "name": [{"productName": "X"}]}
        ).status_code
        == 201
    )
    for bad in ({"unknownThing": 1}, {"name": [{"productName": 5}]}, {"name": []}):
        response = post(client, "MedicinalProduct", {"resourceType": "MedicinalProduct", **bad})
        assert response.status_code == 400, bad
        assert response.get_json()["resourceType"] == "OperationOutcome"


# -- read and vread ---------------------------------------------------------------


def test_read_returns_stored_resource(client):
    created = post(client, "Patient", PATIENT).get_json()
    response = client.get(f"/fhir/Patient/{created['id']}")
    assert response.status_code == 200
    assert response.get_json() == created
    assert response.headers["ETag"] == 'W/"1"'


def test_read_unknown_is_404_with_outcome(client):
    response = client.get("/fhir/Patient/nope")
    assert response.status_code == 404
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_read_invalid_id_is_400(client):
    assert client.get("/fhir/Patient/a_b").status_code == 400
    assert client.get("/fhir/Patient/" + "a" * 65).status_code == 400


def test_vread_each_version(client):
    id = created_id(post(client, "Patient", PATIENT))
    put(client, "Patient", id, {**PATIENT, "id": id, "gender": "other"})
    first = client.get(f"/fhir/Patient/{id}/_history/1")
    second = client.get(f"/fhir/Patient/{id}/_history/2")
    assert first.get_json()["gender"] == "female"
    assert second.get_json()["gender"] == "other"
    assert second.headers["ETag"] == 'W/"2"'
    assert client.get(f"/fhir/Patient/{id}/_history/3").status_code == 404
    assert client.get(f"/fhir/Patient/{id}/_history/x").status_code == 404


def test_if_none_match_gives_304(client):
    id = created_id(post(client, "Patient", PATIENT))
    response = client.get(f"/fhir/Patient/{id}", headers={"If-None-Match": 'W/"1"'})
    assert response.status_code == 304
    assert response.data == b""
    assert client.get(f"/fhir/Patient/{id}", headers={"If-None-Match": 'W/"7"'}).status_code == 200


def test_if_modified_since(client):
    response = post(client, "Patient", PATIENT)
    id = created_id(response)
    last_modified = response.headers["Last-Modified"]
    assert client.get(f"/fhir/Patient/{id}", headers={"If-Modified-Since": last_modified}).status_code == 304
    old = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert client.get(f"/fhir/Patient/{id}", headers={"If-Modified-Since": old}).status_code == 200
    assert client.get(f"/fhir/Patient/{id}", headers={"If-Modified-Since": "yesterday"}).status_code == 400


# -- update ---------------------------------------------------------------------


def test_update_as_create_with_client_id(client):
    response = put(client, "Patient", "garcia-1", {**PATIENT, "id": "garcia-1"})
    assert response.status_code == 201
    assert response.headers["Location"].endswith("/Patient/garcia-1/_history/1")
    response = put(client, "Patient", "garcia-1", {**PATIENT, "id": "garcia-1", "gender": "other"})
    assert response.status_code == 200
    assert response.headers["ETag"] == 'W/"2"'


def test_update_with_same_content_creates_no_version(client):
    put(client, "Patient", "p1", {**PATIENT, "id": "p1"})
    again = put(client, "Patient", "p1", {**PATIENT, "id": "p1", "meta": {"versionId": "5"}})
    assert again.status_code == 200
    assert again.headers["ETag"] == 'W/"1"'
    assert client.get("/fhir/Patient/p1/_history").get_json()["total"] == 1


def test_update_changing_decimal_precision_is_a_change(client):
    body = json.dumps({**OBSERVATION, "id": "o1"})
    client.put("/fhir/Observation/o1", data=body, content_type=FHIR_JSON)
    changed = body.replace("7.5", "7.50")
    response = client.put("/fhir/Observation/o1", data=changed, content_type=FHIR_JSON)
    assert response.headers["ETag"] == 'W/"2"'


@pytest.mark.parametrize(
    ("body", "url_id"),
    [
        ({**PATIENT, "id": "other"}, "p1"),
        (PATIENT, "p1"),
        ({**PATIENT, "resourceType": "Observation", "id": "p1"}, "p1"),
    ],
    ids=["id-mismatch", "id-missing", "type-mismatch"],
)
def test_update_body_must_match_url(client, body, url_id):
    response = put(client, "Patient", url_id, body)
    assert response.status_code == 400
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_if_match(client):
    put(client, "Patient", "p1", {**PATIENT, "id": "p1"})
    stale = put(client, "Patient", "p1", {**PATIENT, "id": "p1", "gender": "male"}, **{"If-Match": 'W/"2"'})
    assert stale.status_code == 412
    assert stale.get_json()["resourceType"] == "OperationOutcome"
    fresh = put(client, "Patient", "p1", {**PATIENT, "id": "p1", "gender": "male"}, **{"If-Match": 'W/"1"'})
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] == 'W/"2"'
    bad = put(client, "Patient", "p1", {**PATIENT, "id": "p1"}, **{"If-Match": "nonsense"})
    assert bad.status_code == 400


# -- patch ----------------------------------------------------------------------


def json_patch(client, url, operations, **headers):
    return client.patch(url, data=json.dumps(operations), content_type="application/json-patch+json", headers=headers)


def test_json_patch(client):
    put(client, "Patient", "p1", {**PATIENT, "id": "p1"})
    response = json_patch(
        client,
        "/fhir/Patient/p1",
        [{"op": "test", "path": "/gender", "value": "female"}, {"op": "replace", "path": "/gender", "value": "other"}],
    )
    assert response.status_code == 200
    assert response.get_json()["gender"] == "other"
    assert response.headers["ETag"] == 'W/"2"'


def test_json_patch_failures(client):
    put(client, "Patient", "p1", {**PATIENT, "id": "p1"})
    failed_test = json_patch(client, "/fhir/Patient/p1", [{"op": "test", "path": "/gender", "value": "male"}])
    assert failed_test.status_code == 422
    invalid_result = json_patch(client, "/fhir/Patient/p1", [{"op": "replace", "path": "/gender", "value": "robot"}])
    assert invalid_result.status_code == 422
    malformed = json_patch(client, "/fhir/Patient/p1", {"op": "replace"})
    assert malformed.status_code == 400
    id_change = json_patch(client, "/fhir/Patient/p1", [{"op": "replace", "path": "/id", "value": "p2"}])
    assert id_change.status_code == 400
    assert json_patch(client, "/fhir/Patient/none", [{"op": "remove", "path": "/gender"}]).status_code == 404
    wrong_etag = json_patch(client, "/fhir/Patient/p1", [{"op": "remove", "path": "/gender"}], **{"If-Match": 'W/"9"'})
    assert wrong_etag.status_code == 412
    as_json = client.patch("/fhir/Patient/p1", data="[]", content_type=FHIR_JSON)
    assert as_json.status_code == 415
    assert client.get("/fhir/Patient/p1/_history").get_json()["total"] == 1


# -- delete ---------------------------------------------------------------------


def test_delete_is_logical(client):
    put(client, "Patient", "p1", {**PATIENT, "id": "p1"})
    assert client.delete("/fhir/Patient/p1").status_code == 204
    gone = client.get("/fhir/Patient/p1")
    assert gone.status_code == 410
    assert gone.get_json()["issue"][0]["code"] == "deleted"
    assert client.get("/fhir/Patient/p1/_history/1").status_code == 200
    assert client.get("/fhir/Patient/p1/_history/2").status_code == 410
    assert client.delete("/fhir/Patient/p1").status_code == 204
    history = client.get("/fhir/Patient/p1/_history").get_json()
    assert history["total"] == 2
    assert history["entry"][0]["request"]["method"] == "DELETE"
    assert "resource" not in history["entry"][0]
    revived = put(client, "Patient", "p1", {**PATIENT, "id": "p1"})
    assert revived.status_code == 201
    assert revived.headers["ETag"] == 'W/"3"'


def test_delete_with_if_match(client):
    put(client, "Patient", "p1", {**PATIENT, "id": "p1"})
    assert client.delete("/fhir/Patient/p1", headers={"If-Match": 'W/"3"'}).status_code == 412
    assert client.delete("/fhir/Patient/p1", headers={"If-Match": 'W/"1"'}).status_code == 204


# -- history --------------------------------------------------------------------


def test_history_levels_newest_first(client):
    put(client, "Patient", "p1", {**PATIENT, "id": "p1"})
    put(client, "Patient", "p1", {**PATIENT, "id": "p1", "gender": "other"})
    post(client, "Observation", OBSERVATION)
    instance = client.get("/fhir/Patient/p1/_history").get_json()
    assert instance["type"] == "history"
    assert [e["resource"]["meta"]["versionId"] for e in instance["entry"]] == ["2", "1"]
    assert instance["entry"][0]["request"] == {"method": "PUT", "url": "Patient/p1"}
    assert instance["entry"][0]["response"]["etag"] == 'W/"2"'
    assert instance["entry"][0]["fullUrl"] == "http://localhost/fhir/Patient/p1"
    by_type = client.get("/fhir/Patient/_history").get_json()
    assert by_type["total"] == 2
    system = client.get("/fhir/_history").get_json()
    assert system["total"] == 3
    assert system["entry"][0]["resource"]["resourceType"] == "Observation"
    assert system["entry"][0]["request"] == {"method": "POST", "url": "Observation"}


def test_history_paging_sees_each_version_once_while_writes_continue(client):
    for n in range(7):
        put(client, "Patient", f"p{n}", {**PATIENT, "id": f"p{n}"})
    seen = []
    url = "/fhir/Patient/_history?_count=3"
    for round_number in range(10):
        page = client.get(url).get_json()
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        put(client, "Patient", f"new{round_number}", {**PATIENT, "id": f"new{round_number}"})
        next_links = [link["url"] for link in page["link"] if link["relation"] == "next"]
        if not next_links:
            break
        url = next_links[0].replace("http://localhost", "")
    assert seen == [f"p{n}" for n in reversed(range(7))]


def test_history_since(client):
    put(client, "Patient", "p1", {**PATIENT, "id": "p1"})
    first_updated = client.get("/fhir/Patient/p1").get_json()["meta"]["lastUpdated"]
    put(client, "Patient", "p1", {**PATIENT, "id": "p1", "gender": "other"})
    since = client.get(f"/fhir/_history?_since={first_updated}").get_json()
    assert since["total"] >= 1
    future = client.get("/fhir/_history?_since=2999-01-01T00:00:00Z").get_json()
    assert future["total"] == 0
    assert "entry" not in future
    assert client.get("/fhir/_history?_since=yesterday").status_code == 400
    assert client.get("/fhir/_history?_since=2020-01-01T10:00:00").status_code == 400
    assert client.get("/fhir/_history?_count=x").status_code == 400
    assert client.get("/fhir/_history?_bogus=1").status_code == 400


# -- formats --------------------------------------------------------------------


def test_xml_in_and_out(client):
    xml = (
        b'<Patient xmlns="http://hl7.org/fhir"><id value="x1"/><name><family value="Nguyen"/></name>'
        b'<birthDate value="1948-02-03"/></Patient>'
    )
    response = client.put("/fhir/Patient/x1", data=xml, content_type=FHIR_XML, headers={"Accept": FHIR_XML})
    assert response.status_code == 201
    assert response.headers["Content-Type"].startswith(FHIR_XML)
    root = etree.fromstring(response.data)
    assert root.tag == "{http://hl7.org/fhir}Patient"
    assert client.get("/fhir/Patient/x1").get_json()["name"] == [{"family": "Nguyen"}]


@pytest.mark.parametrize(
    ("query", "accept", "content_type"),
    [
        ("", None, FHIR_JSON),
        ("?_format=json", None, FHIR_JSON),
        ("?_format=xml", None, FHIR_XML),
        ("?_format=application/fhir%2Bxml", None, FHIR_XML),
        ("?_format=application/xml", None, "application/xml"),
        ("?_format=application/json", None, "application/json"),
        ("", "application/fhir+xml", FHIR_XML),
        ("", "application/xml", "application/xml"),
        ("", "application/json", "application/json"),
        ("", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "application/xml"),
        ("", "*/*", FHIR_JSON),
        ("?_format=json", "application/fhir+xml", FHIR_JSON),
    ],
)
def test_format_negotiation(client, query, accept, content_type):
    put(client, "Patient", "p1", {**PATIENT, "id": "p1"})
    headers = {"Accept": accept} if accept else {}
    response = client.get(f"/fhir/Patient/p1{query}", headers=headers)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == f"{content_type};charset=utf-8"


def test_unacceptable_format(client):
    put(client, "Patient", "p1", {**PATIENT, "id": "p1"})
    assert client.get("/fhir/Patient/p1", headers={"Accept": "text/csv"}).status_code == 406
    response = client.get("/fhir/Patient/p1?_format=yaml")
    assert response.status_code == 406
    assert response.get_json()["resourceType"] == "OperationOutcome"


def test_pretty(client):
    put(client, "Patient", "p1", {**PATIENT, "id": "p1"})
    assert b"\n" in client.get("/fhir/Patient/p1?_pretty=true").data
    assert b"\n" not in client.get("/fhir/Patient/p1?_pretty=false").data
    assert b"\n  <" in client.get("/fhir/Patient/p1?_pretty=true&_format=xml").data
    assert client.get("/fhir/Patient/p1?_pretty=maybe").status_code == 400


CAREPLAN = {
    "resourceType": "CarePlan",
    "id": "cp1",
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Plan</div>'},
    "status": "active",
    "intent": "plan",
    "title": "Diabetes plan",
    "subject": {"reference": "Patient/p1"},
    "description": "Monthly review",
    "activity": [{"detail": {"status": "scheduled", "description": "Walk daily"}}],
}


@pytest.mark.parametrize(
    ("summary", "present", "absent"),
    [
        ("true", {"status", "intent", "subject", "title", "description", "meta", "id"}, {"text", "activity"}),
        ("text", {"text", "status", "intent", "subject", "id", "meta"}, {"activity", "title", "description"}),
        ("data", {"activity", "status", "title", "description"}, {"text"}),
        ("false", {"activity", "text", "title", "description"}, set()),
    ],
)
def test_summary(client, summary, present, absent):
    put(client, "CarePlan", "cp1", CAREPLAN)
    body = client.get(f"/fhir/CarePlan/cp1?_summary={summary}").get_json()
    assert present <= set(body)
    assert not absent & set(body)
    subsetted = any(tag.get("code") == "SUBSETTED" for tag in body["meta"].get("tag", []))
    assert subsetted == (summary != "false")


def test_summary_invalid_value(client):
    put(client, "CarePlan", "cp1", CAREPLAN)
    assert client.get("/fhir/CarePlan/cp1?_summary=count").status_code == 400


def test_elements(client):
    put(client, "CarePlan", "cp1", CAREPLAN)
    body = client.get("/fhir/CarePlan/cp1?_elements=title,description").get_json()
    # requested, plus id, meta and the mandatory elements
    assert set(body) == {"resourceType", "id", "meta", "title", "description", "status", "intent", "subject"}
    assert client.get("/fhir/CarePlan/cp1?_elements=nonsense").status_code == 400
    xml = client.get("/fhir/CarePlan/cp1?_elements=title&_format=xml").data
    assert b"<title" in xml and b"<activity" not in xml


def test_summary_applies_to_history_entries(client):
    put(client, "CarePlan", "cp1", CAREPLAN)
    entry = client.get("/fhir/CarePlan/cp1/_history?_summary=true").get_json()["entry"][0]
    assert "activity" not in entry["resource"]


def test_history_in_every_format_holds_each_version_and_the_deletion(client):
    """The Bundle is spliced from the stored JSON of each version; every format must still see it whole."""
    put(client, "CarePlan", "cp1", CAREPLAN)
    put(client, "CarePlan", "cp1", {**CAREPLAN, "title": "Second"})
    assert client.delete("/fhir/CarePlan/cp1").status_code in (200, 204)
    plain = client.get("/fhir/CarePlan/cp1/_history").get_json()
    assert [entry["request"]["method"] for entry in plain["entry"]] == ["DELETE", "PUT", "PUT"]
    assert "resource" not in plain["entry"][0] and plain["entry"][1]["resource"]["title"] == "Second"
    assert plain["entry"][2]["resource"]["meta"]["versionId"] == "1"
    pretty = client.get("/fhir/CarePlan/cp1/_history?_pretty=true").get_json()
    assert pretty == plain
    elements = client.get("/fhir/CarePlan/cp1/_history?_elements=title").get_json()
    assert "activity" not in elements["entry"][1]["resource"] and elements["entry"][1]["resource"]["title"] == "Second"
    xml = client.get("/fhir/CarePlan/cp1/_history?_format=xml")
    assert xml.status_code == 200 and xml.data.count(b"<CarePlan") == 2
    assert b'<title value="Second"/>' in xml.data


# -- Prefer ---------------------------------------------------------------------


def test_prefer_return(client):
    minimal = post(client, "Patient", PATIENT, Prefer="return=minimal")
    assert minimal.status_code == 201
    assert minimal.data == b""
    assert minimal.headers["Location"]
    outcome = post(client, "Patient", PATIENT, Prefer="return=OperationOutcome")
    assert outcome.status_code == 201
    assert outcome.get_json()["resourceType"] == "OperationOutcome"
    assert outcome.get_json()["issue"][0]["severity"] == "information"
    representation = post(client, "Patient", PATIENT, Prefer="return=representation")
    assert representation.get_json()["resourceType"] == "Patient"
    before = client.get("/fhir/Patient/_history").get_json()["total"]
    assert post(client, "Patient", PATIENT, Prefer="return=everything").status_code == 400
    assert post(client, "Patient", PATIENT, Accept="text/csv").status_code == 406
    assert client.post("/fhir/Patient?_elements=nonsense", json=PATIENT).status_code == 400
    assert client.get("/fhir/Patient/_history").get_json()["total"] == before


# -- validation on write ----------------------------------------------------------


def test_invalid_code_is_refused_with_expression(client):
    careplan = {**CAREPLAN, "status": "actve"}
    careplan["activity"] = [{"detail": {"status": "bogus"}}]
    response = put(client, "CarePlan", "cp1", careplan)
    assert response.status_code in (400, 422)
    issues = response.get_json()["issue"]
    expressions = {expression for issue in issues for expression in issue.get("expression", [])}
    assert {"CarePlan.status", "CarePlan.activity[0].detail.status"} <= expressions
    assert client.get("/fhir/CarePlan/cp1").status_code == 404


def test_all_problems_reported_at_once(client):
    careplan = {**CAREPLAN, "status": "actve", "created": "not-a-date", "unknownThing": 1}
    del careplan["intent"]
    issues = put(client, "CarePlan", "cp1", careplan).get_json()["issue"]
    expressions = {expression for issue in issues for expression in issue.get("expression", [])}
    assert {"CarePlan.status", "CarePlan.created", "CarePlan.unknownThing", "CarePlan.intent"} <= expressions


def test_control_characters_refused(client):
    response = put(client, "Patient", "p1", {**PATIENT, "id": "p1", "name": [{"family": "Ga\u0007rcia"}]})
    assert response.status_code == 400
    assert response.get_json()["issue"][0]["expression"] == ["Patient.name[0].family"]
    allowed = put(client, "Patient", "p2", {**PATIENT, "id": "p2", "name": [{"text": "a\tb\r\nc"}]})
    assert allowed.status_code == 201
    for text in ("a\fb", "a\vb", "a\ud800b"):
        refused = client.put("/fhir/Patient/p3", data=json.dumps({**PATIENT, "id": "p3", "name": [{"text": text}]}))
        assert refused.status_code == 400, text
        assert refused.get_json()["issue"][0]["expression"] == ["Patient.name[0].text"]


def test_unicode_spaces_are_text_not_whitespace(client):
    """FHIR's regexes use the XML Schema and Java meaning of \\s: a no-break space is a character like any other."""
    name = {"text": "Jos\u00e9\u00a0Luis", "family": "Garc\u00eda\u2003Ortiz", "given": ["Ana\u00a0Mar\u00eda"]}
    telecom = [{"system": "url", "value": "http://example.org/\u00a0x"}]
    response = put(client, "Patient", "p4", {**PATIENT, "id": "p4", "name": [name], "telecom": telecom})
    assert response.status_code == 201, response.get_json()
    spaced_code = put(client, "Patient", "p5", {**PATIENT, "id": "p5", "gender": "fe\u00a0male"})
    assert spaced_code.status_code in (400, 422)  # a code outside its value set, however it is spaced


def test_stored_json_is_master_copy(client, store):
    raw = json.dumps({**OBSERVATION, "id": "o1"}).replace("7.5", "7.50")
    client.put("/fhir/Observation/o1", data=raw, content_type=FHIR_JSON)
    stored = parse_json(store.read("Observation", "o1").json)
    assert stored["valueQuantity"]["value"] == Decimal("7.50")
    assert str(stored["valueQuantity"]["value"]) == "7.50"


# -- endpoints --------------------------------------------------------------------


def test_unknown_endpoints_and_methods_answer_outcomes(client):
    for response in (
        client.get("/fhir/Patient/1/_history/1/extra"),
        client.post("/fhir/Patient/1"),
        client.delete("/fhir/metadata"),
        client.get("/nothing-here"),
    ):
        assert response.status_code in (404, 405)
        assert response.get_json()["resourceType"] == "OperationOutcome"


def test_a_method_the_url_does_not_take_answers_405_with_allow(client):
    """RFC 9110: a 405 names the methods the resource takes; HEAD comes with GET."""
    for method, path, expected in (
        ("TRACE", "/fhir/Patient/p1", {"GET", "HEAD", "PUT", "PATCH", "DELETE"}),
        ("POST", "/fhir/Patient/p1", {"GET", "HEAD", "PUT", "PATCH", "DELETE"}),
        ("PROPFIND", "/fhir/", {"GET", "HEAD", "POST"}),
    ):
        response = client.open(path, method=method)
        assert response.status_code == 405, (method, path)
        assert response.get_json()["resourceType"] == "OperationOutcome"
        assert expected <= set(response.headers["Allow"].split(", ")), response.headers["Allow"]


def test_a_transaction_posted_to_the_bundle_endpoint_is_refused_with_a_hint(client):
    """Stored as a resource it would answer 201 while none of its entries ran (HAPI refuses it too)."""
    transaction = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}],
    }
    for kind in ("transaction", "batch", "searchset", "history"):
        response = post(client, "Bundle", {**transaction, "type": kind})
        assert response.status_code == 400, kind
        (issue,) = response.get_json()["issue"]
        assert issue["expression"] == ["Bundle.type"] and kind in issue["diagnostics"]
        assert ("base URL" in issue["diagnostics"]) == (kind in ("transaction", "batch"))
    assert put(client, "Bundle", "b1", {**transaction, "id": "b1"}).status_code == 400
    assert client.get("/fhir/Patient").get_json()["total"] == 0
    assert client.get("/fhir/Bundle").get_json()["total"] == 0
    collection = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": {"resourceType": "Patient"}}]}
    assert post(client, "Bundle", collection).status_code == 201


def test_history_at_gives_the_versions_current_then(client, store):
    put(client, "Patient", "p1", {**PATIENT, "id": "p1"})
    first = store.read("Patient", "p1").last_updated
    put(client, "Patient", "p1", {**PATIENT, "id": "p1", "gender": "other"})
    second = store.read("Patient", "p1").last_updated
    at_first = client.get(f"/fhir/Patient/p1/_history?_at={first}").get_json()
    assert [e["resource"]["meta"]["versionId"] for e in at_first["entry"]] == ["1"] or first == second
    at_second = client.get(f"/fhir/Patient/p1/_history?_at={second}").get_json()
    assert [e["resource"]["meta"]["versionId"] for e in at_second["entry"]] == ["2"]
    whole_day = client.get(f"/fhir/Patient/p1/_history?_at={second[:10]}").get_json()
    assert whole_day["total"] == 2
    assert client.get("/fhir/Patient/p1/_history?_at=2001").get_json()["total"] == 0
    assert client.get("/fhir/_history?_at=someday").status_code == 400


def test_a_write_that_cannot_get_the_lock_in_time_answers_503_with_retry_after(client, database, monkeypatch):
    monkeypatch.setattr(sqlite_module, "BUSY_TIMEOUT_MS", 200)
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer keeps the lock
    try:
        response = post(client, "Patient", PATIENT)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "lock-error"
    assert client.get("/fhir/Patient?_summary=count").get_json()["total"] == 0
    assert post(client, "Patient", PATIENT).status_code == 201  # and the next write goes through
