"""Parameters that select a part of another's values store each value once (``search.coverage``).

Searches must not tell the difference: each query here runs against a store
written with the current rows and against one whose index holds every row of
every parameter, as databases written before the rule do, and both must match
the same resources.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from fhir_ccm.app import create_app
from fhir_ccm.interactions.versions import LAST_UPDATED, instant_millis
from fhir_ccm.reindex import reindex
from fhir_ccm.search.coverage import selects_from, stored_codes
from fhir_ccm.search.extract import rows_for
from fhir_ccm.search.parameters import all_parameter_codes, parameters_for
from fhir_ccm.search.rows import DateRow, ReferenceRow, StringRow
from fhir_ccm.search.sql import TABLES

FHIR_JSON = "application/fhir+json"

RESOURCES: list[dict[str, Any]] = [
    {
        "resourceType": "Patient",
        "id": "lee",
        "name": [{"family": "Lee", "given": ["Ann"], "prefix": ["Dr"]}],
        "address": [{"line": ["1 Elm St"], "city": "Springfield", "state": "IL", "postalCode": "62704"}],
        "telecom": [{"system": "phone", "value": "555-0100"}, {"system": "fax", "value": "555-0199"}],
    },
    {
        "resourceType": "Patient",
        "id": "ngo",
        "name": [{"family": "Ngo", "given": ["Bao"], "text": "Bao Ngo"}],
        "address": [{"city": "Shelbyville", "country": "US"}],
        "telecom": [{"system": "email", "value": "bao@example.org"}],
    },
    {"resourceType": "Patient", "id": "nameless"},
    {"resourceType": "Group", "id": "cohort", "type": "person", "actual": True},
    {
        "resourceType": "CarePlan",
        "id": "plan-lee",
        "status": "active",
        "intent": "plan",
        "subject": {"reference": "Patient/lee"},
    },
    {
        "resourceType": "CarePlan",
        "id": "plan-cohort",
        "status": "draft",
        "intent": "plan",
        "subject": {"reference": "Group/cohort"},
    },
]

# query -> the ids it matches, in order where it sorts
QUERIES = {
    "Patient?name=lee": ["lee"],
    "Patient?name=ann": ["lee"],
    "Patient?name=dr": ["lee"],
    "Patient?name=bao%20ngo": ["ngo"],
    "Patient?name:exact=Ngo": ["ngo"],
    "Patient?name:contains=ee": ["lee"],
    "Patient?phonetic=ngo": ["ngo"],
    "Patient?family=lee": ["lee"],
    "Patient?family=ann": [],
    "Patient?given=ann": ["lee"],
    "Patient?name:missing=true": ["nameless"],
    "Patient?name:missing=false&_sort=name": ["lee", "ngo"],  # by the least part: "ann" before "bao"
    "Patient?_sort=-name&name:missing=false": ["ngo", "lee"],  # by the greatest part: "ngo" after "lee"
    "Patient?address=springfield": ["lee"],
    "Patient?address=1%20elm": ["lee"],
    "Patient?address=us": ["ngo"],
    "Patient?address-city=springfield": ["lee"],
    "Patient?address-city=1%20elm": [],
    "Patient?address-postalcode=62704": ["lee"],
    "Patient?telecom=555-0199": ["lee"],
    "Patient?telecom=bao@example.org": ["ngo"],
    "Patient?phone=555-0100": ["lee"],
    "Patient?phone=555-0199": [],
    "Patient?email=bao@example.org": ["ngo"],
    "CarePlan?subject=Patient/lee": ["plan-lee"],
    "CarePlan?subject=Group/cohort": ["plan-cohort"],
    "CarePlan?subject:missing=false&_sort=_id": ["plan-cohort", "plan-lee"],
    "CarePlan?patient=lee": ["plan-lee"],
    "CarePlan?subject:Patient.name=lee": ["plan-lee"],
    "CarePlan?subject.name=lee": ["plan-lee"],
    "Patient?_has:CarePlan:subject:status=active": ["lee"],
    "Patient/lee/CarePlan": ["plan-lee"],
}


def _load(database: Path, every_row: bool) -> Iterator[FlaskClient]:
    app = create_app({"database": str(database), "unknown_profiles": "warn"})
    client = app.test_client()
    for resource in RESOURCES:
        response = client.put(
            f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers={"Content-Type": FHIR_JSON}
        )
        assert response.status_code in (200, 201), response.get_json()
    store = app.extensions["fhir_ccm.store"]
    if every_row:
        written: set[Any] = set()
        with store.atomic():
            for version in store.iter_current(None):
                resource = client.get(f"/fhir/{version.resource_type}/{version.id}").get_json()
                rows = [
                    row for param in parameters_for(version.resource_type).values() for row in rows_for(param, resource)
                ]
                moment = instant_millis(version.last_updated)
                rows = [row for row in rows if row.param != LAST_UPDATED] + [DateRow(LAST_UPDATED, moment, moment)]
                store.replace_index(version.resource_type, version.id, list(dict.fromkeys(rows)))
                written.update(rows)
        # the values narrower codes hold, written again under the broader ones
        assert {ReferenceRow("subject", "Patient", "lee"), StringRow("name", "lee", "Lee")} <= written
    yield client
    store.close()


@pytest.fixture(scope="module", params=["current rows", "every row"])
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskClient]:
    database = tmp_path_factory.mktemp("coverage") / "store.db"
    yield from _load(database, every_row=request.param == "every row")


@pytest.mark.parametrize("query, expected", QUERIES.items(), ids=list(QUERIES))
def test_searches_match_the_same_resources_whichever_rows_are_stored(
    client: FlaskClient, query: str, expected: list[str]
) -> None:
    response = client.get("/fhir/" + query, headers={"Accept": FHIR_JSON})
    assert response.status_code == 200, response.get_json()
    bundle = response.get_json()
    found = [entry["resource"]["id"] for entry in bundle.get("entry", []) if entry["search"]["mode"] == "match"]
    assert found == expected if "_sort" in query else sorted(found) == sorted(expected)


def test_reindex_rewrites_an_old_layout_without_the_repeated_values(tmp_path: Path) -> None:
    loading = _load(tmp_path / "old.db", every_row=True)
    client = next(loading)
    store = client.application.extensions["fhir_ccm.store"]

    def rows() -> int:
        with store._connection() as connection:
            return sum(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES.values())

    before = rows()
    assert reindex(store) == len(RESOURCES)
    assert rows() < before
    for query in ("Patient?name=ann", "Patient?phonetic=ngo", "CarePlan?subject=Patient/lee", "Patient/lee/CarePlan"):
        bundle = client.get("/fhir/" + query, headers={"Accept": FHIR_JSON}).get_json()
        assert sorted(entry["resource"]["id"] for entry in bundle["entry"]) == sorted(QUERIES[query]), query
    next(loading, None)  # closes the store


def test_include_follows_a_reference_stored_under_the_narrower_code(client: FlaskClient) -> None:
    bundle = client.get("/fhir/CarePlan?_include=CarePlan:subject", headers={"Accept": FHIR_JSON}).get_json()
    included = {
        f"{entry['resource']['resourceType']}/{entry['resource']['id']}"
        for entry in bundle["entry"]
        if entry["search"]["mode"] == "include"
    }
    assert included == {"Patient/lee", "Group/cohort"}
    bundle = client.get("/fhir/Patient?_revinclude=CarePlan:subject&_id=lee", headers={"Accept": FHIR_JSON}).get_json()
    assert {entry["resource"]["id"] for entry in bundle["entry"]} == {"lee", "plan-lee"}


def test_the_parts_the_r4_parameters_share() -> None:
    assert set(stored_codes("name")) == {"name", "phonetic", "family", "given"}
    assert set(stored_codes("phonetic")) == {"phonetic", "family", "given"}
    assert set(stored_codes("address")) >= {"address", "address-city", "address-state", "address-postalcode"}
    assert set(stored_codes("telecom")) == {"telecom", "phone", "email"}
    assert stored_codes("subject") == ("subject", "patient")
    assert stored_codes("status") == ("status",)
    assert stored_codes("patient") == ("patient",)


def test_no_code_reads_itself_through_a_narrower_one() -> None:
    for code in all_parameter_codes():
        codes = stored_codes(code)
        assert codes[0] == code and len(set(codes)) == len(codes)
        for narrower in codes[1:]:
            assert code not in stored_codes(narrower), (code, narrower)


def test_a_pair_counts_only_where_it_holds_in_every_type() -> None:
    # Consent's patient is Consent.patient, not a part of its actor, so actor never reads patient rows.
    consent = parameters_for("Consent")
    assert not selects_from(consent["patient"], consent["actor"])
    assert "patient" not in stored_codes("actor")
    # An expression continuing past a where() is not a selection from the broader one.
    patient = parameters_for("Patient")
    assert selects_from(patient["phone"], patient["telecom"])
    assert not selects_from(patient["address-use"], patient["address"])  # a token, not a string part
