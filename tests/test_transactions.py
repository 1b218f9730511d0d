"""batch and transaction Bundles (http://hl7.org/fhir/R4/http.html#transaction), through the Flask app."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from fhir_ccm.app import create_app

FHIR_JSON = "application/fhir+json"
MRN = "http://hospital.example.org/mrn"
P1 = "urn:uuid:4e1d7c52-0f5e-4d8e-8b9f-2d1e6c1f0a11"
P2 = "urn:uuid:9b0c3a5e-7d1f-4c2a-9e8b-1f2d3c4b5a60"
OID = "urn:oid:1.2.840.113619.2.62"
PLAN = "urn:uuid:0d6e4f3a-2b1c-4e5d-8f7a-6b5c4d3e2f10"


def patient(mrn: str = "1", family: str = "Garcia", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": MRN, "value": mrn}],
        "name": [{"family": family}],
        **extra,
    }


def observation(subject: str, code: str = "4548-4", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": subject},
        **extra,
    }


def entry(method: str, url: str, resource: dict | None = None, full_url: str | None = None, **request: str) -> dict:
    result: dict[str, Any] = {"request": {"method": method, "url": url, **request}}
    if resource is not None:
        result["resource"] = resource
    if full_url is not None:
        result["fullUrl"] = full_url
    return result


def bundle(kind: str, *entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def send(client, kind: str, *entries: dict, **headers: str):
    return client.post("/fhir", data=json.dumps(bundle(kind, *entries)), content_type=FHIR_JSON, headers=headers)


def transaction(client, *entries: dict, **headers: str):
    return send(client, "transaction", *entries, **headers)


def batch(client, *entries: dict, **headers: str):
    return send(client, "batch", *entries, **headers)


def put(client, resource_type: str, id: str, resource: dict):
    response = client.put(
        f"/fhir/{resource_type}/{id}", data=json.dumps({**resource, "id": id}), content_type=FHIR_JSON
    )
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def json_patch(*operations: dict) -> dict:
    data = base64.b64encode(json.dumps(list(operations)).encode()).decode()
    return {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": data}


def located(response_entry: dict) -> tuple[str, str]:
    """``(type, id)`` from ``entry.response.location`` (``Patient/1/_history/1``)."""
    parts = response_entry["response"]["location"].split("/")
    return parts[0], parts[1]


def read(client, reference: str) -> dict:
    response = client.get(f"/fhir/{reference}")
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def table_counts(database: Path) -> dict[str, int]:
    """Rows of every table of the store, the search index tables included."""
    connection = sqlite3.connect(database)
    try:
        tables = [row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {table: connection.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0] for table in tables}
    finally:
        connection.close()


def store_state(client, database: Path) -> tuple[dict[str, int], int, str]:
    """Everything a failed transaction must leave exactly as it was."""
    history = client.get("/fhir/_history?_count=1000").get_json()
    return table_counts(database), history["total"], json.dumps(history.get("entry", []))


def diagnostics(response) -> str:
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome", outcome
    return " ".join(issue.get("diagnostics", "") for issue in outcome["issue"])


# -- responses ----------------------------------------------------------------------------


def test_transaction_response_has_status_location_etag_and_last_modified(client):
    put(client, "Patient", "existing", patient("0"))
    response = transaction(
        client,
        entry("POST", "Patient", patient("1"), P1),
        entry("PUT", "Patient/existing", patient("0", family="Changed")),
        entry("PUT", "Patient/new", patient("2", id="new")),
        entry("GET", "Patient/existing"),
        entry("DELETE", "Patient/absent"),
    )
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["resourceType"] == "Bundle"
    assert body["type"] == "transaction-response"
    created, updated, put_created, got, deleted = body["entry"]
    assert created["response"]["status"].startswith("201")
    type_, id = located(created)
    assert type_ == "Patient" and id
    assert created["response"]["location"] == f"Patient/{id}/_history/1"
    assert created["response"]["etag"] == 'W/"1"'
    assert created["response"]["lastModified"] == read(client, f"Patient/{id}")["meta"]["lastUpdated"]
    assert created["fullUrl"] == f"http://localhost/fhir/Patient/{id}"
    assert updated["response"]["status"].startswith("200")
    assert updated["response"]["location"] == "Patient/existing/_history/2"
    assert updated["response"]["etag"] == 'W/"2"'
    assert put_created["response"]["status"].startswith("201")
    assert put_created["response"]["location"] == "Patient/new/_history/1"
    # GET entries run last: they see the update of the same transaction
    assert got["response"]["status"].startswith("200")
    assert got["resource"]["name"][0]["family"] == "Changed"
    assert got["response"]["etag"] == 'W/"2"'
    assert deleted["response"]["status"].startswith("204")
    assert "resource" not in created  # Prefer return=minimal is the default for writes


def test_prefer_return_representation_puts_resources_in_the_response(client):
    body = transaction(client, entry("POST", "Patient", patient("1")), Prefer="return=representation").get_json()
    assert body["entry"][0]["resource"]["identifier"][0]["value"] == "1"
    assert body["entry"][0]["resource"]["meta"]["versionId"] == "1"


def test_batch_response_reports_each_entry_with_outcomes_for_failures(client):
    put(client, "Patient", "p1", patient("1"))
    response = batch(
        client,
        entry("POST", "Patient", patient("2")),
        entry("POST", "Patient", {**patient("3"), "gender": "bogus"}),
        entry("GET", "Patient/missing"),
        entry("PUT", "Patient/p1", patient("1", family="X"), ifMatch='W/"7"'),
        entry("PUT", "Patient/p1", patient("1", family="Y"), ifMatch='W/"1"'),
        entry("GET", "Patient/p1"),
        entry("POST", "Observation", observation(P1)),
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["type"] == "batch-response"
    statuses = [e["response"]["status"].split()[0] for e in body["entry"]]
    assert statuses == ["201", statuses[1], "404", "412", "200", "200", "400"]
    assert statuses[1] in ("400", "422")
    for failed in (body["entry"][1], body["entry"][2], body["entry"][3], body["entry"][6]):
        outcome = failed["response"]["outcome"]
        assert outcome["resourceType"] == "OperationOutcome"
        assert outcome["issue"][0]["severity"] in ("error", "fatal")
    assert "Entry 1" in body["entry"][1]["response"]["outcome"]["issue"][0]["diagnostics"]
    assert body["entry"][5]["resource"]["name"][0]["family"] == "Y"  # a batch runs in the order given
    type_, id = located(body["entry"][0])
    assert read(client, f"{type_}/{id}")["identifier"][0]["value"] == "2"  # the failures undo nothing
    assert client.get("/fhir/Patient?identifier=3").get_json()["total"] == 0


def test_only_batch_and_transaction_bundles_are_processed(client):
    for kind in ("collection", "document", "searchset", None):
        response = client.post(
            "/fhir", data=json.dumps({"resourceType": "Bundle", "type": kind, "entry": []}), content_type=FHIR_JSON
        )
        assert response.status_code == 400
    assert client.post("/fhir", data=json.dumps(patient()), content_type=FHIR_JSON).status_code == 400
    empty = transaction(client)
    assert empty.status_code == 200
    assert empty.get_json()["type"] == "transaction-response"
    for broken in ({"request": {"method": "POST"}}, {"request": {"method": "FETCH", "url": "Patient"}}, {}):
        response = transaction(client, broken)
        assert response.status_code == 400
    assert transaction(client, entry("POST", "Patient")).status_code == 400  # POST without a resource


def test_absolute_request_urls_on_this_server_are_accepted(client):
    response = transaction(
        client,
        entry("PUT", "http://localhost/fhir/Patient/abs", patient("1", id="abs")),
        entry("GET", "http://localhost/fhir/Patient/abs"),
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["entry"][1]["resource"]["id"] == "abs"
    elsewhere = transaction(client, entry("GET", "http://elsewhere.example.org/fhir/Patient/abs"))
    assert elsewhere.status_code == 400


def test_xml_bundles_in_and_out(client):
    xml = f"""<Bundle xmlns="http://hl7.org/fhir"><type value="transaction"/>
      <entry><fullUrl value="{P1}"/><resource><Patient><gender value="male"/></Patient></resource>
        <request><method value="POST"/><url value="Patient"/></request></entry>
      <entry><resource><Observation><status value="final"/><code><text value="x"/></code>
        <subject><reference value="{P1}"/></subject></Observation></resource>
        <request><method value="POST"/><url value="Observation"/></request></entry>
    </Bundle>"""
    headers = {"Accept": "application/fhir+xml"}
    response = client.post("/fhir", data=xml, content_type="application/fhir+xml", headers=headers)
    assert response.status_code == 200
    ns = {"f": "http://hl7.org/fhir"}
    root = etree.fromstring(response.data)
    assert root.find("f:type", ns).get("value") == "transaction-response"
    locations = [e.get("value") for e in root.findall("f:entry/f:response/f:location", ns)]
    assert [location.split("/")[0] for location in locations] == ["Patient", "Observation"]
    observation = read(client, "/".join(locations[1].split("/")[:2]))
    assert observation["subject"]["reference"] == "/".join(locations[0].split("/")[:2])
    failing = xml.replace('"transaction"', '"batch"').replace('value="male"', 'value="bogus"')
    response = client.post("/fhir", data=failing, content_type="application/fhir+xml", headers=headers)
    root = etree.fromstring(response.data)
    assert root.find("f:type", ns).get("value") == "batch-response"
    assert root.find("f:entry/f:response/f:outcome/f:OperationOutcome", ns) is not None


# -- processing order ---------------------------------------------------------------------


def test_get_listed_first_sees_the_posts_of_the_same_transaction(client):
    response = transaction(
        client,
        entry("GET", f"Patient?identifier={MRN}|77"),
        entry("POST", "Patient", patient("77")),
        entry("GET", "Patient?identifier=77&_summary=count"),
    )
    assert response.status_code == 200, response.get_json()
    search, created, count = response.get_json()["entry"]
    assert search["resource"]["type"] == "searchset"
    assert search["resource"]["total"] == 1
    assert search["resource"]["entry"][0]["resource"]["id"] == located(created)[1]
    assert count["resource"]["total"] == 1


def test_delete_listed_last_runs_before_the_writes(client):
    put(client, "Patient", "old", patient("5"))
    response = transaction(
        client,
        entry("PUT", "Patient/other", patient("6", id="other")),
        entry("POST", "Patient", patient("5"), ifNoneExist=f"identifier={MRN}|5"),
        entry("DELETE", "Patient/old"),
    )
    assert response.status_code == 200, response.get_json()
    _, conditional, deleted = response.get_json()["entry"]
    # the delete ran first, so the conditional create no longer finds Patient/old
    assert conditional["response"]["status"].startswith("201")
    assert located(conditional)[1] != "old"
    assert deleted["response"]["status"].startswith("204")
    history = client.get("/fhir/_history").get_json()["entry"]
    order = [(e["request"]["method"], e["fullUrl"].rsplit("/", 1)[1]) for e in reversed(history)]
    assert order[1:] == [("DELETE", "old"), ("POST", located(conditional)[1]), ("PUT", "other")]


def test_patch_and_put_run_after_posts_in_bundle_order(client):
    put(client, "Patient", "p1", patient("1"))
    response = transaction(
        client,
        entry("PATCH", "Patient/p1", json_patch({"op": "replace", "path": "/name/0/family", "value": "Patched"})),
        entry("PUT", "Observation/o1", observation(P1, id="o1")),
        entry("POST", "Patient", patient("2"), P1),
    )
    assert response.status_code == 200, response.get_json()
    patched, put_entry, posted = response.get_json()["entry"]
    assert patched["response"]["status"].startswith("200")
    assert read(client, "Patient/p1")["name"][0]["family"] == "Patched"
    assert read(client, "Observation/o1")["subject"]["reference"] == f"Patient/{located(posted)[1]}"
    assert put_entry["response"]["etag"] == 'W/"1"'


# -- temporary ids and references ---------------------------------------------------------


def test_temporary_ids_are_resolved_everywhere_a_reference_can_sit(client):
    plan = {
        "resourceType": "CarePlan",
        "text": {
            "status": "generated",
            "div": f'<div xmlns="http://www.w3.org/1999/xhtml">Plan for <a href="{P1}">the patient</a>, '
            f'see <a href="{OID}">the practitioner</a></div>',
        },
        "contained": [
            {
                "resourceType": "Goal",
                "id": "g1",
                "lifecycleStatus": "active",
                "description": {"text": "HbA1c < 7"},
                "subject": {"reference": P1},
            },
        ],
        "extension": [
            {"url": "http://example.org/fhir/StructureDefinition/coordinator", "valueReference": {"reference": OID}}
        ],
        "status": "active",
        "intent": "plan",
        "subject": {"reference": P1, "display": "Maria"},
        "goal": [{"reference": "#g1"}],
        "activity": [{"detail": {"status": "scheduled", "performer": [{"reference": OID}]}}],
    }
    response = transaction(
        client,
        entry("POST", "CarePlan", plan, PLAN),
        entry("POST", "Patient", patient("1"), P1),
        entry("POST", "Practitioner", {"resourceType": "Practitioner", "name": [{"family": "Who"}]}, OID),
        entry("POST", "Observation", observation(P1, basedOn=[{"reference": PLAN}])),
    )
    assert response.status_code == 200, response.get_json()
    plan_entry, patient_entry, practitioner_entry, observation_entry = response.get_json()["entry"]
    patient_ref = "/".join(located(patient_entry))
    practitioner_ref = "/".join(located(practitioner_entry))
    stored = read(client, "/".join(located(plan_entry)))
    assert stored["subject"] == {"reference": patient_ref, "display": "Maria"}
    assert stored["contained"][0]["subject"]["reference"] == patient_ref
    assert stored["extension"][0]["valueReference"]["reference"] == practitioner_ref
    assert stored["activity"][0]["detail"]["performer"][0]["reference"] == practitioner_ref
    assert stored["goal"] == [{"reference": "#g1"}]
    assert f'href="{patient_ref}"' in stored["text"]["div"]
    assert f'href="{practitioner_ref}"' in stored["text"]["div"]
    assert "urn:" not in json.dumps(stored)
    assert read(client, "/".join(located(observation_entry)))["basedOn"][0]["reference"] == "/".join(
        located(plan_entry)
    )
    # the references are indexed as the resolved ones
    found = client.get(f"/fhir/CarePlan?subject={patient_ref}").get_json()
    assert found["total"] == 1


def test_put_with_temporary_full_url_is_referenced_by_its_id(client):
    response = transaction(
        client,
        entry("POST", "Observation", observation(P1)),
        entry("PUT", "Patient/chosen", patient("1", id="chosen"), P1),
    )
    assert response.status_code == 200, response.get_json()
    assert read(client, "/".join(located(response.get_json()["entry"][0])))["subject"]["reference"] == (
        "Patient/chosen"
    )


def test_unknown_temporary_reference_fails_with_400(client, database):
    before = store_state(client, database)
    response = transaction(
        client, entry("POST", "Patient", patient("1"), P1), entry("POST", "Observation", observation(P2))
    )
    assert response.status_code == 400
    assert P2 in diagnostics(response)
    assert "Entry 1" in diagnostics(response)
    assert store_state(client, database) == before


def test_conditional_references_are_resolved_inside_the_transaction(client):
    put(client, "Patient", "p1", patient("1"))
    response = transaction(
        client,
        entry("POST", "Patient", patient("2")),  # created in the same transaction, before the observations
        entry("POST", "Observation", observation(f"Patient?identifier={MRN}|1")),
        entry("POST", "Observation", observation(f"Patient?identifier={MRN}|2", code="2345-7")),
    )
    assert response.status_code == 200, response.get_json()
    created, first, second = response.get_json()["entry"]
    assert read(client, "/".join(located(first)))["subject"]["reference"] == "Patient/p1"
    assert read(client, "/".join(located(second)))["subject"]["reference"] == "/".join(located(created))


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        (f"Patient?identifier={MRN}|nobody", "matches nothing"),
        ("Patient?family=Garcia", "several"),
        ("Spaceship?name=x", "resource type"),
    ],
)
def test_conditional_reference_matching_none_or_several_fails_the_transaction(client, database, reference, problem):
    put(client, "Patient", "p1", patient("1"))
    put(client, "Patient", "p2", patient("2"))
    before = store_state(client, database)
    response = transaction(
        client, entry("POST", "Patient", patient("3")), entry("POST", "Observation", observation(reference))
    )
    assert 400 <= response.status_code < 500
    assert problem in diagnostics(response)
    assert "Entry 1" in diagnostics(response)
    assert store_state(client, database) == before


# -- preconditions per entry --------------------------------------------------------------


def test_if_match_per_entry(client):
    put(client, "Patient", "p1", patient("1"))
    put(client, "Patient", "p2", patient("2"))
    put(client, "Patient", "p3", patient("3"))
    response = transaction(
        client,
        entry("PUT", "Patient/p1", patient("1", family="New"), ifMatch='W/"1"'),
        entry("DELETE", "Patient/p2", ifMatch='W/"1"'),
        entry("PATCH", "Patient/p3", json_patch({"op": "add", "path": "/gender", "value": "male"}), ifMatch='W/"1"'),
    )
    assert response.status_code == 200, response.get_json()
    assert [e["response"]["etag"] for e in response.get_json()["entry"]] == ['W/"2"', 'W/"2"', 'W/"2"']
    assert client.get("/fhir/Patient/p2").status_code == 410
    stale = transaction(client, entry("PUT", "Patient/p1", patient("1", family="Lost"), ifMatch='W/"1"'))
    assert stale.status_code == 412
    assert "Entry 0" in diagnostics(stale)
    assert read(client, "Patient/p1")["name"][0]["family"] == "New"


def test_if_none_exist_per_entry(client):
    put(client, "Patient", "p1", patient("1"))
    response = transaction(
        client,
        entry("POST", "Patient", patient("1"), P1, ifNoneExist=f"identifier={MRN}|1"),
        entry("POST", "Patient", patient("2"), P2, ifNoneExist=f"identifier={MRN}|2"),
        entry("POST", "Observation", observation(P1)),
        entry("POST", "Observation", observation(P2, code="2345-7")),
    )
    assert response.status_code == 200, response.get_json()
    existing, created, first, second = response.get_json()["entry"]
    assert existing["response"]["status"].startswith("200")
    assert located(existing) == ("Patient", "p1")
    assert created["response"]["status"].startswith("201")
    assert read(client, "/".join(located(first)))["subject"]["reference"] == "Patient/p1"
    assert read(client, "/".join(located(second)))["subject"]["reference"] == "/".join(located(created))
    assert client.get("/fhir/Patient/p1/_history").get_json()["total"] == 1
    assert client.get("/fhir/Patient").get_json()["total"] == 2


def test_if_none_exist_matching_several_fails_the_transaction(client, database):
    put(client, "Patient", "p1", patient("1"))
    put(client, "Patient", "p2", patient("2"))
    before = store_state(client, database)
    response = transaction(
        client,
        entry("POST", "Observation", observation(P1)),
        entry("POST", "Patient", patient("9"), P1, ifNoneExist="family=Garcia"),
    )
    assert response.status_code == 412
    assert store_state(client, database) == before


def test_identical_conditional_creates_in_one_transaction_create_one_resource(client):
    response = transaction(
        client,
        entry("POST", "Patient", patient("1"), P1, ifNoneExist=f"identifier={MRN}|1"),
        entry("POST", "Patient", patient("1"), P2, ifNoneExist=f"identifier={MRN}|1"),
        entry("POST", "Observation", observation(P2)),
    )
    assert response.status_code == 200, response.get_json()
    first, second, obs = response.get_json()["entry"]
    assert located(first) == located(second)
    assert client.get("/fhir/Patient").get_json()["total"] == 1
    assert read(client, "/".join(located(obs)))["subject"]["reference"] == "/".join(located(first))


def test_if_none_match_and_if_modified_since_per_get_entry(client):
    put(client, "Patient", "p1", patient("1"))
    response = transaction(
        client,
        entry("GET", "Patient/p1", ifNoneMatch='W/"1"'),
        entry("GET", "Patient/p1", ifNoneMatch='W/"0"'),
        entry("GET", "Patient/p1", ifModifiedSince="Fri, 01 Jan 2100 00:00:00 GMT"),
        entry("GET", "Patient/p1", ifModifiedSince="Mon, 01 Jan 2001 00:00:00 GMT"),
        entry("HEAD", "Patient/p1"),
    )
    assert response.status_code == 200, response.get_json()
    entries = response.get_json()["entry"]
    assert [e["response"]["status"].split()[0] for e in entries] == ["304", "200", "304", "200", "200"]
    assert "resource" not in entries[0] and "resource" not in entries[2]
    assert entries[1]["resource"]["id"] == "p1"
    assert "resource" not in entries[4]  # HEAD: headers only
    assert entries[4]["response"]["etag"] == 'W/"1"'


def test_get_entries_read_history_and_versions(client):
    put(client, "Patient", "p1", patient("1"))
    put(client, "Patient", "p1", patient("1", family="Two"))
    entries = transaction(
        client,
        entry("GET", "Patient/p1/_history/1"),
        entry("GET", "Patient/p1/_history"),
        entry("GET", "Patient/_history?_count=1"),
        entry("GET", "_history"),
    ).get_json()["entry"]
    assert entries[0]["resource"]["name"][0]["family"] == "Garcia"
    assert entries[1]["resource"]["total"] == 2
    assert entries[2]["resource"]["type"] == "history"
    assert len(entries[2]["resource"]["entry"]) == 1
    assert entries[3]["resource"]["total"] == 2


# -- all or nothing -----------------------------------------------------------------------


FAILING_ENTRIES = {
    "invalid resource": (entry("POST", "Patient", {**patient("9"), "gender": "bogus"}), 422),
    "unknown element": (entry("PUT", "Patient/p9", {**patient("9", id="p9"), "colour": "blue"}), 400),
    "stale if-match": (entry("PUT", "Patient/p1", patient("1", family="X"), ifMatch='W/"9"'), 412),
    "read of unknown": (entry("GET", "Patient/nobody"), 404),
    "read of deleted": (entry("GET", "Patient/gone"), 410),
    "body id differs": (entry("PUT", "Patient/p1", patient("1", id="p2")), 400),
    "body type differs": (entry("POST", "Observation", patient("9")), 400),
    "unknown type": (entry("POST", "Spaceship", {"resourceType": "Spaceship"}), 400),
    "patch of unknown": (entry("PATCH", "Patient/nobody", json_patch({"op": "remove", "path": "/gender"})), 404),
    "patch test fails": (
        entry("PATCH", "Patient/p1", json_patch({"op": "test", "path": "/name/0/family", "value": "No"})),
        422,
    ),
    "patch breaks resource": (
        entry("PATCH", "Patient/p1", json_patch({"op": "add", "path": "/gender", "value": "bogus"})),
        422,
    ),
    "patch not a binary": (entry("PATCH", "Patient/p1", patient("1")), 400),
    "conditional update several": (entry("PUT", "Patient?family=Garcia", patient("9")), 412),
    "conditional patch none": (
        entry("PATCH", f"Patient?identifier={MRN}|none", json_patch({"op": "remove", "path": "/gender"})),
        404,
    ),
    "conditional delete several": (entry("DELETE", "Patient?family=Garcia"), 412),
    "delete stale if-match": (entry("DELETE", "Patient/p1", ifMatch='W/"5"'), 412),
    "bad search": (entry("GET", "Patient?nonsense=1"), 400),
}


@pytest.mark.parametrize("failing", FAILING_ENTRIES.values(), ids=list(FAILING_ENTRIES))
def test_a_failing_entry_leaves_the_store_exactly_as_before(client, database, failing):
    failing_entry, status = failing
    put(client, "Patient", "p1", patient("1"))
    put(client, "Patient", "p2", patient("2"))
    put(client, "Patient", "p3", patient("3"))
    put(client, "Patient", "gone", patient("4"))
    assert client.delete("/fhir/Patient/gone").status_code == 204
    before = store_state(client, database)
    response = transaction(
        client,
        entry("POST", "Patient", patient("10"), P1),
        entry("PUT", "Patient/p2", patient("2", family="Changed")),
        entry("DELETE", "Patient/p2x"),
        entry("POST", "Observation", observation(P1)),
        entry("PATCH", "Patient/p3", json_patch({"op": "add", "path": "/birthDate", "value": "1950-01-01"})),
        failing_entry,
        entry(
            "POST",
            "CarePlan",
            {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": {"reference": P1}},
        ),
    )
    assert response.status_code == status, response.get_json()
    assert "Entry 5" in diagnostics(response)
    assert store_state(client, database) == before
    assert read(client, "Patient/p2")["name"][0]["family"] == "Garcia"
    assert "birthDate" not in read(client, "Patient/p3")
    assert client.get("/fhir/Observation").get_json()["total"] == 0


def test_an_invalid_entry_names_itself_and_its_elements(client):
    response = transaction(
        client,
        entry("POST", "Patient", patient("1")),
        entry("POST", "Patient", {**patient("2"), "gender": "bogus"}),
    )
    assert response.status_code == 422
    issues = response.get_json()["issue"]
    assert any("Entry 1" in issue["diagnostics"] for issue in issues)
    assert any("Bundle.entry[1].resource.gender" in issue.get("expression", []) for issue in issues)


def test_a_batch_entry_stands_alone(client, database):
    response = batch(
        client,
        entry("POST", "Patient", patient("1")),
        entry("POST", "Patient", {**patient("2"), "gender": "bogus"}),
        entry("PUT", "Patient/p3", patient("3", id="p3")),
    )
    assert response.status_code == 200
    statuses = [e["response"]["status"].split()[0] for e in response.get_json()["entry"]]
    assert statuses == ["201", "422", "201"]
    assert client.get("/fhir/Patient").get_json()["total"] == 2
    counts = table_counts(database)
    assert counts["resources"] == 2
    assert counts["resource_versions"] == 2


def test_batch_resolves_no_temporary_references_between_entries(client):
    response = batch(client, entry("POST", "Patient", patient("1"), P1), entry("POST", "Observation", observation(P1)))
    statuses = [e["response"]["status"].split()[0] for e in response.get_json()["entry"]]
    assert statuses == ["201", "400"]


def test_batch_resolves_conditional_references_per_entry(client):
    put(client, "Patient", "p1", patient("1"))
    response = batch(
        client,
        entry("POST", "Observation", observation(f"Patient?identifier={MRN}|1")),
        entry("POST", "Observation", observation(f"Patient?identifier={MRN}|404")),
    )
    first, second = response.get_json()["entry"]
    assert read(client, "/".join(located(first)))["subject"]["reference"] == "Patient/p1"
    assert second["response"]["status"].startswith("400")


# -- the same resource twice --------------------------------------------------------------


@pytest.mark.parametrize(
    "entries",
    [
        [entry("PUT", "Patient/p1", patient("1", id="p1")), entry("PUT", "Patient/p1", patient("1", id="p1"))],
        [entry("PUT", "Patient/p1", patient("1", id="p1")), entry("DELETE", "Patient/p1")],
        [entry("DELETE", "Patient/p1"), entry("PATCH", "Patient/p1", json_patch({"op": "remove", "path": "/x"}))],
        [entry("POST", "Patient", patient("1"), P1), entry("POST", "Patient", patient("2"), P1)],
        # identities resolved from conditional urls overlap too (spec: "including resolved identities")
        [entry("DELETE", f"Patient?identifier={MRN}|1"), entry("PUT", "Patient/p1", patient("1", id="p1"))],
        [
            entry("PUT", f"Patient?identifier={MRN}|1", patient("1", family="A")),
            entry(
                "PATCH", f"Patient?identifier={MRN}|1", json_patch({"op": "add", "path": "/gender", "value": "male"})
            ),
        ],
        [
            entry("PUT", "Patient/p1", patient("1", id="p1", family="A")),
            entry("PUT", f"Patient?identifier={MRN}|1", patient("1", family="B")),
        ],
    ],
    ids=[
        "put-put",
        "put-delete",
        "delete-patch",
        "duplicate-fullUrl",
        "cond-delete-put",
        "cond-put-patch",
        "put-cond-put",
    ],
)
def test_two_entries_for_the_same_resource_answer_400(client, database, entries):
    put(client, "Patient", "p1", patient("1"))
    before = store_state(client, database)
    response = transaction(client, *entries)
    assert response.status_code == 400, response.get_json()
    assert store_state(client, database) == before


# -- patch entries ------------------------------------------------------------------------


def test_patch_entries_carry_a_binary_json_patch(client):
    put(client, "Patient", "p1", patient("1"))
    put(client, "Patient", "p2", patient("2"))
    response = transaction(
        client,
        entry("PATCH", "Patient/p1", json_patch({"op": "replace", "path": "/name/0/family", "value": "One"})),
        entry("PATCH", f"Patient?identifier={MRN}|2", json_patch({"op": "add", "path": "/gender", "value": "male"})),
    )
    assert response.status_code == 200, response.get_json()
    assert [e["response"]["status"].split()[0] for e in response.get_json()["entry"]] == ["200", "200"]
    assert read(client, "Patient/p1")["name"][0]["family"] == "One"
    assert read(client, "Patient/p2")["gender"] == "male"
    wrong_type = {**json_patch({"op": "remove", "path": "/gender"}), "contentType": "application/json"}
    assert transaction(client, entry("PATCH", "Patient/p2", wrong_type)).status_code == 400
    not_base64 = {**json_patch(), "data": "***"}
    assert transaction(client, entry("PATCH", "Patient/p2", not_base64)).status_code == 400
    not_a_patch = {**json_patch(), "data": base64.b64encode(b'{"op": "remove"}').decode()}
    assert transaction(client, entry("PATCH", "Patient/p2", not_a_patch)).status_code == 400


# -- conditional interactions inside a transaction ---------------------------------------


def test_conditional_update_entry_referenced_by_full_url(client):
    response = transaction(
        client,
        entry("PUT", f"Patient?identifier={MRN}|1", patient("1"), P1),
        entry("POST", "Observation", observation(P1)),
    )
    assert response.status_code == 200, response.get_json()
    created, obs = response.get_json()["entry"]
    assert created["response"]["status"].startswith("201")
    assert read(client, "/".join(located(obs)))["subject"]["reference"] == "/".join(located(created))
    read(client, "/".join(located(created)))


def test_conditional_delete_entry(client):
    put(client, "Patient", "p1", patient("1"))
    put(client, "Patient", "p2", patient("2"))
    response = transaction(
        client,
        entry("DELETE", f"Patient?identifier={MRN}|1"),
        entry("DELETE", f"Patient?identifier={MRN}|none"),
    )
    assert response.status_code == 200, response.get_json()
    assert client.get("/fhir/Patient/p1").status_code == 410
    assert client.get("/fhir/Patient/p2").status_code == 200


def test_conditional_delete_of_several_in_a_bundle_follows_the_server_setting(tmp_path):
    app = create_app({"database": str(tmp_path / "multi.db"), "conditional_delete_multiple": 1})
    try:
        client = app.test_client()
        put(client, "Patient", "p1", patient("1"))
        put(client, "Patient", "p2", patient("2"))
        response = transaction(client, entry("DELETE", "Patient?family=Garcia"))
        assert response.status_code == 200, response.get_json()
        assert client.get("/fhir/Patient").get_json()["total"] == 0
    finally:
        app.extensions["fhir_ccm.store"].close()


def conditional_bundle() -> list[dict]:
    """A transaction a system resends unchanged: every entry a conditional update by identifier."""
    return [
        entry("PUT", f"Patient?identifier={MRN}|42", patient("42"), P1),
        entry(
            "PUT",
            "Practitioner?identifier=http://example.org/npi|7",
            {"resourceType": "Practitioner", "identifier": [{"system": "http://example.org/npi", "value": "7"}]},
            OID,
        ),
        entry(
            "PUT",
            "Observation?identifier=http://example.org/obs|1",
            observation(
                P1,
                identifier=[{"system": "http://example.org/obs", "value": "1"}],
                performer=[{"reference": OID}],
            ),
        ),
        entry(
            "PUT",
            "CarePlan?identifier=http://example.org/plan|1",
            {
                "resourceType": "CarePlan",
                "identifier": [{"system": "http://example.org/plan", "value": "1"}],
                "status": "active",
                "intent": "plan",
                "subject": {"reference": P1},
                "activity": [{"detail": {"status": "scheduled", "performer": [{"reference": OID}]}}],
            },
        ),
    ]


def test_replaying_a_transaction_of_conditional_updates_changes_nothing(client, database):
    first = transaction(client, *conditional_bundle())
    assert first.status_code == 200, first.get_json()
    assert [e["response"]["status"].split()[0] for e in first.get_json()["entry"]] == ["201"] * 4
    patient_ref = "/".join(located(first.get_json()["entry"][0]))
    plan = read(client, "/".join(located(first.get_json()["entry"][3])))
    assert plan["subject"]["reference"] == patient_ref
    before = store_state(client, database)
    for _ in range(3):
        again = transaction(client, *conditional_bundle())
        assert again.status_code == 200, again.get_json()
        assert [e["response"]["status"].split()[0] for e in again.get_json()["entry"]] == ["200"] * 4
        assert [e["response"]["etag"] for e in again.get_json()["entry"]] == ['W/"1"'] * 4
        assert [located(e) for e in again.get_json()["entry"]] == [located(e) for e in first.get_json()["entry"]]
    assert store_state(client, database) == before


def test_rewriting_references_copies_only_what_changes():
    from fhir_ccm.interactions.bundle import _rewrite

    plan = {
        "resourceType": "CarePlan",
        "subject": {"reference": "urn:uuid:1"},
        "category": [{"coding": [{"system": "http://snomed.info/sct", "code": "734163000"}]}],
        "goal": [{"reference": "Goal/g1"}, {"reference": "urn:uuid:2"}],
    }
    before = json.loads(json.dumps(plan))
    mapping = {"urn:uuid:1": "Patient/p1", "urn:uuid:2": "Goal/g2"}
    rewritten = _rewrite(plan, lambda reference: mapping.get(reference, reference), mapping)
    assert rewritten["subject"] == {"reference": "Patient/p1"}
    assert rewritten["goal"] == [{"reference": "Goal/g1"}, {"reference": "Goal/g2"}]
    assert plan == before  # the Bundle as received is left as it was
    assert rewritten["category"] is plan["category"] and rewritten["goal"][0] is plan["goal"][0]
    assert _rewrite(before, lambda reference: reference, {}) is before
