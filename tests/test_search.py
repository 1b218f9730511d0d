"""Search through the REST API (http://hl7.org/fhir/R4/search.html), table-driven.

A small purpose-built corpus (``CORPUS``) is loaded once per module into its own
database for the read-only tables; tests that write (paging while other clients
write, injection attempts) use the per-test ``client`` fixture. Each table row
is a query and the ids it must match, exactly and (where ``_sort`` is given) in
order. Comments on rows give the range arithmetic that decides them; all
instants are in UTC unless the row says otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from flask.testing import FlaskClient

from fhir_ccm.app import create_app

FHIR_JSON = "application/fhir+json"
BASE = "http://localhost/fhir"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
LENIENT = {"Prefer": "handling=lenient"}


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [{"system": system, "code": code}]}
    if display is not None:
        concept["coding"][0]["display"] = display
    return concept


def ref(target: str) -> dict[str, str]:
    return {"reference": target}


def observation(id: str, code: dict[str, Any], subject: dict[str, Any] | None, **rest: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Observation", "id": id, "status": "final", "code": code}
    if subject is not None:
        resource["subject"] = subject
    return {**resource, **rest}


def quantity(value: float | int, code: str, unit: str | None = None) -> dict[str, Any]:
    return {"value": value, "unit": unit or code, "system": UCUM, "code": code}


# The corpus. Dates are chosen around precision and time-zone edges; see the tables below.
CORPUS: list[dict[str, Any]] = [
    {
        "resourceType": "Practitioner",
        "id": "prac-smith",
        "name": [{"family": "Smith", "given": ["John"]}],
    },
    {
        "resourceType": "Practitioner",
        "id": "prac-jones",
        "name": [{"family": "Jones", "given": ["Émile"]}],
    },
    {
        "resourceType": "Patient",
        "id": "pat-jose",
        "active": True,
        "name": [{"family": "Müller", "given": ["José"]}],
        "gender": "male",
        "birthDate": "1970-05-15",
        "identifier": [
            {
                "system": "urn:mrn",
                "value": "1001",
                "type": {"coding": [{"system": V2_0203, "code": "MR"}], "text": "Medical record number"},
            }
        ],
        "telecom": [{"system": "email", "value": "jose@example.org"}],
        "address": [{"city": "Zürich", "country": "CH"}],
        "generalPractitioner": [ref("Practitioner/prac-smith")],
    },
    {
        "resourceType": "Patient",
        "id": "pat-maria",
        "active": False,
        "name": [{"family": "Sánchez", "given": ["María", "Luisa"]}],
        "gender": "female",
        "birthDate": "1985",
        "identifier": [{"system": "urn:mrn", "value": "1002"}],
        # 2026-01-01T04:30Z: in UTC this death is on New Year's Day, not New Year's Eve.
        "deceasedDateTime": "2025-12-31T23:30:00-05:00",
        "generalPractitioner": [ref("Practitioner/prac-jones")],
    },
    {
        "resourceType": "Patient",
        "id": "pat-lee",
        "name": [{"family": "Lee", "given": ["Ann"]}],
        "gender": "female",
        "birthDate": "1985-02",
        "identifier": [{"value": "X-9"}],  # no system: only "X-9" and "|X-9" find it
        "link": [{"other": ref("Patient/pat-jose"), "type": "seealso"}],
    },
    {
        # Patient/shared and Group/shared: a bare "shared" is ambiguous for Observation.subject.
        "resourceType": "Patient",
        "id": "shared",
        "name": [{"family": "Zed,Jr"}],
        "gender": "unknown",
    },
    {"resourceType": "Group", "id": "shared", "type": "person", "actual": True, "name": "Shared group"},
    {
        "resourceType": "Observation",
        "id": "obs-bp",
        "status": "final",
        "category": [coding("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs")],
        "code": {"coding": [{"system": LOINC, "code": "85354-9", "display": "Blood pressure panel"}], "text": "BP"},
        "subject": ref("Patient/pat-jose"),
        "effectiveDateTime": "2026-03-04T10:15:00+10:00",  # 2026-03-04T00:15:00Z, to the second
        "component": [
            {"code": coding(LOINC, "8480-6"), "valueQuantity": quantity(120, "mm[Hg]", "mmHg")},
            {"code": coding(LOINC, "8462-4"), "valueQuantity": quantity(80, "mm[Hg]", "mmHg")},
        ],
    },
    observation(
        "obs-weight",
        coding(LOINC, "29463-7", "Body weight"),
        ref("Patient/pat-maria"),
        effectivePeriod={"start": "2026-01-10T08:00:00Z", "end": "2026-01-20T08:00:00Z"},
        valueQuantity=quantity(72.5, "kg"),
    ),
    observation(
        "obs-weight-lb",
        coding(LOINC, "29463-7"),
        ref("Patient/pat-jose"),
        effectiveDateTime="2025",  # the whole year
        valueQuantity={"value": 160, "unit": "lbs", "system": UCUM, "code": "[lb_av]"},
    ),
    observation(
        "obs-glucose",
        coding(LOINC, "2339-0", "Glucose"),
        ref("Patient/pat-lee"),
        effectiveTiming={"event": ["2026-02-01T08:00:00Z", "2026-02-03T08:00:00Z"]},  # first to last event
        valueQuantity=quantity(5.4, "mmol/L"),
        performer=[ref("Practitioner/prac-smith")],
    ),
    observation(
        "obs-temp",
        coding(LOINC, "8310-5", "Body temperature"),
        ref("Patient/pat-maria"),
        effectiveInstant="2026-03-04T23:59:59.999Z",  # the last millisecond of the day
        valueQuantity=quantity(37.0, "Cel"),
    ),
    observation(
        "obs-prelim",
        coding(LOINC, "8480-6"),
        ref("Patient/pat-maria"),
        status="preliminary",
        effectiveDateTime="2026-03-03T23:30:00-01:00",  # 2026-03-04T00:30Z
        valueQuantity=quantity(131, "mm[Hg]", "mmHg"),
    ),
    observation(
        "obs-smoking",  # no effective[x], a code with text only, a string value
        {"text": "Smoking status"},
        ref(f"{BASE}/Patient/pat-lee"),  # absolute, on this server
        valueString="Never smoked",
    ),
    observation(
        "obs-remote",
        coding(LOINC, "8302-2", "Body height"),
        ref("http://elsewhere.example/fhir/Patient/pat-lee"),  # same id, another server
        effectiveDateTime="2026-02-01",
    ),
    observation(
        "obs-by-identifier",
        coding(LOINC, "8302-2"),
        {"identifier": {"system": "urn:mrn", "value": "1001"}},
        effectiveDateTime="2026-02-02",
    ),
    observation("obs-group", coding(LOINC, "8302-2"), ref("Group/shared")),
    {
        "resourceType": "CareTeam",
        "id": "team-a",
        "subject": ref("Patient/pat-jose"),
        "participant": [{"member": ref("Practitioner/prac-smith")}],
        "period": {"start": "2026-01-01", "end": "2026-06-30"},
    },
    {
        "resourceType": "CareTeam",
        "id": "team-b",
        "subject": ref("Patient/pat-maria"),
        "participant": [{"member": ref("Practitioner/prac-jones")}],
    },
    {
        "resourceType": "Goal",
        "id": "goal-1",
        "meta": {
            "tag": [{"system": "urn:tags", "code": "review"}],
            "profile": ["http://example.org/StructureDefinition/goal"],
        },
        "lifecycleStatus": "active",
        "description": {"text": "HbA1c below 7%"},
        "subject": ref("Patient/pat-jose"),
        "startDate": "2026-01-01",
        "target": [{"dueDate": "2026-06-30"}],
    },
    {
        "resourceType": "Goal",
        "id": "goal-2",
        "lifecycleStatus": "completed",
        "description": {"text": "Walk daily"},
        "subject": ref("Patient/pat-maria"),
        "startDate": "2025-05-20",
    },
    {
        "resourceType": "CarePlan",
        "id": "cp-1",  # 2026-01-01 .. 2026-03-31
        "status": "active",
        "intent": "plan",
        "subject": ref("Patient/pat-jose"),
        "period": {"start": "2026-01-01", "end": "2026-03-31"},
        "careTeam": [ref("CareTeam/team-a")],
        "goal": [ref("Goal/goal-1")],
        "instantiatesUri": ["http://example.org/protocols/diabetes/v2"],
        "activity": [
            {
                "detail": {
                    "status": "in-progress",
                    "code": coding(SNOMED, "229065009", "Exercise therapy"),
                    "scheduledTiming": {"repeat": {"boundsPeriod": {"start": "2026-02-01", "end": "2026-02-28"}}},
                    "performer": [ref("Practitioner/prac-smith")],
                }
            }
        ],
    },
    {
        "resourceType": "CarePlan",
        "id": "cp-2",  # 2025-06-01 .. open end
        "status": "completed",
        "intent": "plan",
        "subject": ref("Patient/pat-maria"),
        "period": {"start": "2025-06-01"},
        "careTeam": [ref("CareTeam/team-b")],
        "instantiatesCanonical": ["http://example.org/fhir/PlanDefinition/walk|2.0"],
        "activity": [
            {
                "detail": {
                    "status": "completed",
                    # 07:00Z .. 08:00:00.999Z on 2025-07-01
                    "scheduledPeriod": {"start": "2025-07-01T09:00:00+02:00", "end": "2025-07-01T10:00:00+02:00"},
                }
            }
        ],
    },
    {
        "resourceType": "CarePlan",
        "id": "cp-3",  # open start .. 2025-12-31
        "status": "draft",
        "intent": "proposal",
        "subject": ref("Patient/pat-lee"),
        "period": {"end": "2025-12-31"},
        "instantiatesUri": ["http://example.org/protocolsX"],
        "activity": [{"detail": {"status": "scheduled", "scheduledString": "weekly"}}],
    },
    {
        "resourceType": "CarePlan",
        "id": "cp-4",  # 2026-03-15T10:00Z .. 2026-04-15: partly inside March
        "status": "active",
        "intent": "order",
        "subject": ref("Patient/pat-jose"),
        "period": {"start": "2026-03-15T10:00:00Z", "end": "2026-04-15"},
    },
    {
        "resourceType": "MedicationStatement",
        "id": "ms-1",  # from 2026-01-01, still going
        "status": "active",
        "medicationCodeableConcept": coding(RXNORM, "860975", "Metformin 500 MG"),
        "subject": ref("Patient/pat-jose"),
        "effectivePeriod": {"start": "2026-01-01"},
        "informationSource": ref("Practitioner/prac-smith"),
    },
    {
        "resourceType": "MedicationStatement",
        "id": "ms-2",
        "status": "completed",
        "medicationCodeableConcept": coding(RXNORM, "197361", "Amlodipine 5 MG"),
        "subject": ref("Patient/pat-maria"),
        "effectiveDateTime": "2025-11-02",
    },
    {
        "resourceType": "Provenance",
        "id": "prov-1",
        "target": [ref("CarePlan/cp-1")],
        "recorded": "2026-01-02T10:00:00.250Z",
        "agent": [{"who": ref("Practitioner/prac-smith")}],
    },
    {
        "resourceType": "Provenance",
        "id": "prov-2",
        "target": [ref("Observation/obs-bp"), ref("Patient/pat-jose")],
        "recorded": "2026-03-04T01:00:00Z",
        "agent": [{"who": ref("Practitioner/prac-jones")}],
    },
    {
        "resourceType": "RiskAssessment",
        "id": "ra-low",
        "status": "final",
        "subject": ref("Patient/pat-jose"),
        "prediction": [{"probabilityDecimal": 0.25}],
    },
    {
        "resourceType": "RiskAssessment",
        "id": "ra-high",
        "status": "final",
        "subject": ref("Patient/pat-maria"),
        "prediction": [{"probabilityDecimal": 100}],
    },
    {
        "resourceType": "RiskAssessment",
        "id": "ra-range",
        "status": "final",
        "subject": ref("Patient/pat-lee"),
        "prediction": [{"probabilityRange": {"low": {"value": 10}, "high": {"value": 30}}}],
    },
    {
        "resourceType": "ValueSet",
        "id": "vs-bp",
        "url": "http://example.org/fhir/ValueSet/blood-pressure",
        "status": "active",
        "compose": {"include": [{"system": LOINC, "concept": [{"code": "85354-9"}, {"code": "8480-6"}]}]},
    },
]


# -- helpers ----------------------------------------------------------------------------------


def put(client: FlaskClient, resource: dict[str, Any]) -> None:
    response = client.put(
        f"/fhir/{resource['resourceType']}/{resource['id']}", data=json.dumps(resource), content_type=FHIR_JSON
    )
    assert response.status_code in (200, 201), response.get_json()


def delete(client: FlaskClient, resource_type: str, id: str) -> None:
    assert client.delete(f"/fhir/{resource_type}/{id}").status_code in (200, 204)


def get(client: FlaskClient, url: str, status: int = 200, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = client.get(url if url.startswith("/") else f"/fhir/{url}", headers=headers or {})
    body = response.get_json()
    assert response.status_code == status, body
    return body


def follow(client: FlaskClient, link: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """GET an absolute link from a Bundle through the test client."""
    assert link.startswith(BASE), link
    return get(client, link[len("http://localhost") :], headers=headers)


def matches(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def included(bundle: dict[str, Any]) -> set[str]:
    return {
        f"{e['resource']['resourceType']}/{e['resource']['id']}"
        for e in bundle.get("entry", [])
        if e["search"]["mode"] == "include"
    }


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((item["url"] for item in bundle["link"] if item["relation"] == relation), None)


def link_params(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


def diagnostics(outcome: dict[str, Any]) -> str:
    assert outcome["resourceType"] == "OperationOutcome", outcome
    return " ".join(issue.get("diagnostics", "") for issue in outcome["issue"])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FlaskClient]:
    """A client over a database holding ``CORPUS``, shared by the read-only tables."""
    database: Path = tmp_path_factory.mktemp("search") / "corpus.db"
    app = create_app({"database": str(database), "unknown_profiles": "warn"})
    client = app.test_client()
    for resource in CORPUS:
        put(client, resource)
    yield client
    app.extensions["fhir_ccm.store"].close()


def search_ids(client: FlaskClient, query: str) -> list[str]:
    bundle = get(client, query + ("&" if "?" in query else "?") + "_count=1000")
    assert bundle["total"] == len(matches(bundle))
    return matches(bundle)


def check(client: FlaskClient, query: str, expected: list[str]) -> None:
    """The query matches exactly ``expected``; in that order when it sorts."""
    found = search_ids(client, query)
    if "_sort=" in query:
        assert found == expected
    else:
        assert sorted(found) == sorted(expected)


ALL_OBSERVATIONS = [
    "obs-bp",
    "obs-weight",
    "obs-weight-lb",
    "obs-glucose",
    "obs-temp",
    "obs-prelim",
    "obs-smoking",
    "obs-remote",
    "obs-by-identifier",
    "obs-group",
]


def observations_except(*ids: str) -> list[str]:
    return [id for id in ALL_OBSERVATIONS if id not in ids]


# -- token ------------------------------------------------------------------------------------

TOKEN_CASES = [
    ("Observation?code=8480-6", ["obs-prelim"]),  # component codes are not Observation.code
    ("Observation?combo-code=8480-6", ["obs-bp", "obs-prelim"]),
    ("Observation?code=http://loinc.org|29463-7", ["obs-weight", "obs-weight-lb"]),
    ("Observation?code=http://snomed.info/sct|29463-7", []),
    ("Observation?code=|29463-7", []),  # |code: only codes without a system
    ("Observation?code=http://loinc.org|", observations_except("obs-smoking")),  # system|: any code of it
    ("Patient?identifier=X-9", ["pat-lee"]),
    ("Patient?identifier=|X-9", ["pat-lee"]),
    ("Patient?identifier=|1001", []),
    ("Patient?identifier=urn:mrn|", ["pat-jose", "pat-maria"]),
    ("Patient?identifier=urn:mrn|1001", ["pat-jose"]),
    ("Patient?identifier=urn:other|1001", []),
    ("Patient?gender=male", ["pat-jose"]),
    ("Patient?gender=http://hl7.org/fhir/administrative-gender|female", ["pat-maria", "pat-lee"]),
    ("Patient?active=true", ["pat-jose"]),
    ("Patient?active=false", ["pat-maria"]),
    ("Patient?deceased=true", ["pat-maria"]),
    ("Patient?deceased=false", ["pat-jose", "pat-lee", "shared"]),
    ("Patient?email=jose@example.org", ["pat-jose"]),
    ("Patient?_id=pat-jose,pat-lee", ["pat-jose", "pat-lee"]),
    ("Observation?category=vital-signs", ["obs-bp"]),
    ("MedicationStatement?code=860975", ["ms-1"]),
    ("Goal?_tag=urn:tags|review", ["goal-1"]),
    ("Goal?_tag=review", ["goal-1"]),
    ("Goal?_tag:missing=true", ["goal-2"]),
    # :not reverses the match and so includes resources without any value
    ("Observation?code:not=29463-7", observations_except("obs-weight", "obs-weight-lb")),
    (
        "Observation?code:not=http://loinc.org|29463-7,8302-2",
        ["obs-bp", "obs-glucose", "obs-temp", "obs-prelim", "obs-smoking"],
    ),
    ("Observation?status:not=final", ["obs-prelim"]),
    ("Patient?active:not=true", ["pat-maria", "pat-lee", "shared"]),
    # :text searches Coding.display, CodeableConcept.text and Identifier.type.text like a string
    ("Observation?code:text=blood", ["obs-bp"]),
    ("Observation?code:text=PRESSURE", ["obs-bp"]),
    ("Observation?code:text=bp", ["obs-bp"]),
    ("Observation?code:text=smoking", ["obs-smoking"]),
    ("Observation?code:text=ressure", []),
    ("Patient?identifier:text=medical record", ["pat-jose"]),
    # :of-type is type-system|type-code|value of an Identifier
    (f"Patient?identifier:of-type={V2_0203}|MR|1001", ["pat-jose"]),
    (f"Patient?identifier:of-type={V2_0203}|MR|1002", []),
    (f"Patient?identifier:of-type={V2_0203}|DL|1001", []),
    # :missing
    ("Patient?active:missing=true", ["pat-lee", "shared"]),
    ("Patient?active:missing=false", ["pat-jose", "pat-maria"]),
    ("Patient?gender:missing=true", []),
    ("Observation?date:missing=true", ["obs-smoking", "obs-group"]),
    ("Observation?performer:missing=false", ["obs-glucose"]),
    ("Patient?name:missing=false", ["pat-jose", "pat-maria", "pat-lee", "shared"]),
    ("RiskAssessment?probability:missing=true", []),
    (
        "Observation?value-quantity:missing=true",
        ["obs-bp", "obs-smoking", "obs-remote", "obs-by-identifier", "obs-group"],
    ),
    # :in / :not-in: a ValueSet stored on this server, and one of the R4 definitions
    ("Observation?code:in=http://example.org/fhir/ValueSet/blood-pressure", ["obs-bp", "obs-prelim"]),
    (
        "Observation?code:not-in=http://example.org/fhir/ValueSet/blood-pressure",
        observations_except("obs-bp", "obs-prelim"),
    ),
    (
        "Patient?gender:in=http://hl7.org/fhir/ValueSet/administrative-gender",
        ["pat-jose", "pat-maria", "pat-lee", "shared"],
    ),
    ("Patient?gender:not-in=http://hl7.org/fhir/ValueSet/administrative-gender", []),
]


@pytest.mark.parametrize(("query", "expected"), TOKEN_CASES)
def test_token(corpus: FlaskClient, query: str, expected: list[str]) -> None:
    check(corpus, query, expected)


# -- string -----------------------------------------------------------------------------------

STRING_CASES = [
    ("Patient?name=muller", ["pat-jose"]),  # accents and case are ignored
    ("Patient?name=MÜLLER", ["pat-jose"]),
    ("Patient?name=Mül", ["pat-jose"]),  # starts with
    ("Patient?name=jos", ["pat-jose"]),  # any part of the name
    ("Patient?name=ller", []),  # not starts with
    ("Patient?name:contains=ller", ["pat-jose"]),
    ("Patient?name:contains=ÜLL", ["pat-jose"]),
    ("Patient?name:contains=%", []),  # LIKE wildcards are literal
    ("Patient?name:contains=_", []),
    ("Patient?name:exact=Müller", ["pat-jose"]),
    ("Patient?name:exact=muller", []),
    ("Patient?name:exact=Mül", []),
    ("Patient?family=sanchez", ["pat-maria"]),
    ("Patient?given=luisa", ["pat-maria"]),
    ("Patient?given=MARÍA", ["pat-maria"]),
    ("Practitioner?name=emile", ["prac-jones"]),
    ("Patient?address-city=zurich", ["pat-jose"]),
    ("Patient?address=ch", ["pat-jose"]),
    ("Observation?value-string=never", ["obs-smoking"]),
    ("Goal?_id=goal-1&lifecycle-status=active", ["goal-1"]),
    # several values are OR'ed; repeated parameters AND'ed
    ("Patient?name=muller,sanchez", ["pat-jose", "pat-maria"]),
    ("Patient?name=muller&name=jose", ["pat-jose"]),
    ("Patient?name=muller&name=sanchez", []),
    # an escaped comma is part of the value
    ("Patient?family=zed\\,jr", ["shared"]),
    ("Patient?family:exact=Zed\\,Jr", ["shared"]),
    ("Patient?family:exact=Zed,Jr", []),  # "Zed" or "Jr", neither exactly a family name
    ("Patient?family=nobody,zed", ["shared"]),
]


@pytest.mark.parametrize(("query", "expected"), STRING_CASES)
def test_string(corpus: FlaskClient, query: str, expected: list[str]) -> None:
    check(corpus, query, expected)


# -- date -------------------------------------------------------------------------------------

DATE_CASES = [
    # Observation.effective: bp 03-04T00:15:00Z (second); weight 01-10T08Z..01-20T08Z (Period);
    # glucose 02-01T08Z..02-03T08Z (Timing events); weight-lb 2025 (year); temp 03-04T23:59:59.999Z
    # (instant); prelim 03-03T23:30-01:00 = 03-04T00:30Z; remote 02-01; by-identifier 02-02 (days).
    ("Observation?date=2026-03-04", ["obs-bp", "obs-temp", "obs-prelim"]),
    ("Observation?date=eq2026-03-04", ["obs-bp", "obs-temp", "obs-prelim"]),
    ("Observation?date=2026-03-03", []),  # prelim was on the 3rd only in its own zone
    ("Observation?date=2026-03", ["obs-bp", "obs-temp", "obs-prelim"]),
    (
        "Observation?date=2026",
        ["obs-bp", "obs-weight", "obs-glucose", "obs-temp", "obs-prelim", "obs-remote", "obs-by-identifier"],
    ),
    ("Observation?date=2025", ["obs-weight-lb"]),
    ("Observation?date=2026-03-04T00:15:00Z", ["obs-bp"]),
    ("Observation?date=2026-03-04T10:15:00%2B10:00", ["obs-bp"]),  # the same second in another zone
    ("Observation?date=2026-03-04T00:15Z", ["obs-bp"]),  # minute precision
    ("Observation?date=2026-03-04T00:15:01Z", []),
    ("Observation?date=2026-03-04T23:59:59.999Z", ["obs-temp"]),
    ("Observation?date=2026-03-04T23:59:59Z", ["obs-temp"]),
    ("Observation?date=2026-01-15", []),  # inside the Period, but the Period is not inside the day
    ("Observation?date=2026-01", ["obs-weight"]),
    ("Observation?date=2026-02", ["obs-glucose", "obs-remote", "obs-by-identifier"]),
    ("Observation?date=2026-02-01", ["obs-remote"]),  # glucose's events span two days
    # gt: the target reaches above the search range; ge: that, or the target inside the range
    ("Observation?date=gt2026-03-03", ["obs-bp", "obs-temp", "obs-prelim"]),
    ("Observation?date=gt2026-03-04", []),  # temp's last millisecond is still the 4th
    ("Observation?date=gt2026-03-04T23:59:59.998Z", ["obs-temp"]),
    (
        "Observation?date=ge2026-01-15",
        ["obs-bp", "obs-weight", "obs-glucose", "obs-temp", "obs-prelim", "obs-remote", "obs-by-identifier"],
    ),
    ("Observation?date=ge2026-03-04", ["obs-bp", "obs-temp", "obs-prelim"]),
    ("Observation?date=ge2026-03-05", []),
    # lt: the target reaches below the search range; le: that, or the target inside the range
    ("Observation?date=lt2026-01-11", ["obs-weight", "obs-weight-lb"]),
    ("Observation?date=lt2026-01-10T08:00:00Z", ["obs-weight-lb"]),
    ("Observation?date=le2026-01-10T08:00:00Z", ["obs-weight-lb"]),  # weight's Period is not inside that second
    ("Observation?date=le2025", ["obs-weight-lb"]),
    ("Observation?date=lt2025", []),
    # sa: the target starts after the search range ends; eb: it ends before the search range starts
    (
        "Observation?date=sa2026-01-31",
        ["obs-bp", "obs-glucose", "obs-temp", "obs-prelim", "obs-remote", "obs-by-identifier"],
    ),
    (
        "Observation?date=sa2026-01-15",
        ["obs-bp", "obs-glucose", "obs-temp", "obs-prelim", "obs-remote", "obs-by-identifier"],
    ),
    ("Observation?date=eb2026-02-02", ["obs-weight", "obs-weight-lb", "obs-remote"]),
    ("Observation?date=eb2026-01-15", ["obs-weight-lb"]),  # weight overlaps the 15th
    # ne: the target is not inside the search range (resources without a date do not match)
    (
        "Observation?date=ne2026-03-04",
        ["obs-weight", "obs-weight-lb", "obs-glucose", "obs-remote", "obs-by-identifier"],
    ),
    # ap: ranges overlap once widened by 10% of the distance to now (at least a day)
    ("Observation?date=ap2025-06-15", ["obs-weight-lb"]),
    # several values OR, repeated parameters AND
    ("Observation?date=2025,2026-01", ["obs-weight-lb", "obs-weight"]),
    ("Observation?date=ge2026-02-01&date=lt2026-03-01", ["obs-glucose", "obs-remote", "obs-by-identifier"]),
    # CarePlan.period: cp-1 2026-01-01..2026-03-31; cp-2 2025-06-01..(open); cp-3 (open)..2025-12-31;
    # cp-4 2026-03-15T10:00Z..2026-04-15
    ("CarePlan?date=2026", ["cp-1", "cp-4"]),
    ("CarePlan?date=2026-03", []),  # no Period lies inside March
    ("CarePlan?date=ge2026-03-01&date=le2026-03-31", ["cp-1", "cp-2", "cp-4"]),  # overlap March
    ("CarePlan?date=ge2026-03-01", ["cp-1", "cp-2", "cp-4"]),
    ("CarePlan?date=gt2026-04-15", ["cp-2"]),  # only the open end reaches beyond
    ("CarePlan?date=gt2099-12-31", ["cp-2"]),
    ("CarePlan?date=lt2025-06-01", ["cp-3"]),  # only the open start reaches before
    ("CarePlan?date=lt1900", ["cp-3"]),
    ("CarePlan?date=le2026-03-31", ["cp-1", "cp-2", "cp-3", "cp-4"]),
    ("CarePlan?date=sa2025-12-31", ["cp-1", "cp-4"]),
    ("CarePlan?date=sa2026-03-15T09:59:59Z", ["cp-4"]),
    ("CarePlan?date=sa2026-03-15T10:00:00Z", []),
    ("CarePlan?date=eb2026-01-01", ["cp-3"]),
    ("CarePlan?date=ne2026", ["cp-2", "cp-3"]),
    # CarePlan.activity.detail.scheduled: Timing bounds (cp-1: February 2026), Period (cp-2), string (cp-3)
    ("CarePlan?activity-date=2026-02", ["cp-1"]),
    ("CarePlan?activity-date=2025-07-01", ["cp-2"]),
    ("CarePlan?activity-date=2025-07-01T07:00:00Z", []),
    ("CarePlan?activity-date=ge2025-07-01T07:30:00Z&activity-date=le2025-07-01T07:30:00Z", ["cp-2"]),
    ("CarePlan?activity-date:missing=true", ["cp-3", "cp-4"]),
    # precision: a month is a range of days, a year a range of months
    ("Goal?start-date=2025-05", ["goal-2"]),
    ("Goal?start-date=2025-05-20", ["goal-2"]),
    ("Goal?start-date=2025-05-21", []),
    ("Goal?start-date=ge2025-05-21", ["goal-1"]),
    ("Goal?target-date=le2026-06-30", ["goal-1"]),
    ("Patient?birthdate=1985", ["pat-maria", "pat-lee"]),
    ("Patient?birthdate=1985-02", ["pat-lee"]),
    ("Patient?birthdate=1985-02-10", []),
    ("Patient?birthdate=ge1985-02-10", ["pat-maria", "pat-lee"]),  # both years reach beyond the 10th
    ("Patient?birthdate=lt1985-02-10", ["pat-jose", "pat-maria", "pat-lee"]),
    ("Patient?birthdate=gt1985-02", ["pat-maria"]),
    ("Patient?birthdate=1970-05-15T12:00:00Z", []),  # a day is not inside a second
    # time zones: 2025-12-31T23:30-05:00 is 2026-01-01 in UTC
    ("Patient?death-date=2026-01-01", ["pat-maria"]),
    ("Patient?death-date=2025-12-31", []),
    ("Patient?death-date=2025-12-31T23:30:00-05:00", ["pat-maria"]),
    ("Patient?death-date=2026-01-01T04:30:00Z", ["pat-maria"]),
    ("Patient?death-date=2026-01-01T05:30:00%2B01:00", ["pat-maria"]),
    # an open-ended MedicationStatement is still going
    ("MedicationStatement?effective=ge2030-01-01", ["ms-1"]),
    ("MedicationStatement?effective=lt2025-12-01", ["ms-2"]),
    ("MedicationStatement?effective=2025-11-02", ["ms-2"]),
    # instants and fractions of seconds: prov-1 was recorded at 2026-01-02T10:00:00.250Z
    ("Provenance?recorded=2026-01-02T10:00:00Z", ["prov-1"]),
    ("Provenance?recorded=2026-01-02T10:00:00.250Z", ["prov-1"]),
    ("Provenance?recorded=2026-01-02T10:00:00.2Z", ["prov-1"]),  # .2 is .200 to .299
    ("Provenance?recorded=2026-01-02T10:00:00.3Z", []),
    ("Provenance?recorded=2026-01-02T10:00:00.25Z", ["prov-1"]),
    ("Provenance?recorded=gt2026-01-02T10:00:00Z", ["prov-2"]),
    ("Provenance?recorded=ge2026-01-02T10:00:00.200Z", ["prov-1", "prov-2"]),
    ("Provenance?recorded=lt2026-01-02T10:00:00.251Z", ["prov-1"]),
    ("Provenance?recorded=eb2026-01-02T10:00:00.251Z", ["prov-1"]),
    ("Provenance?recorded=eb2026-01-02T10:00:00.250Z", []),
    ("Provenance?_lastUpdated=gt2000", ["prov-1", "prov-2"]),
    ("Provenance?_lastUpdated=lt2000", []),
]


@pytest.mark.parametrize(("query", "expected"), DATE_CASES)
def test_date(corpus: FlaskClient, query: str, expected: list[str]) -> None:
    check(corpus, query, expected)


# -- number and quantity ----------------------------------------------------------------------

NUMBER_CASES = [
    # RiskAssessment.prediction.probability: ra-low 0.25, ra-high 100, ra-range 10..30 (a Range)
    ("RiskAssessment?probability=0.25", ["ra-low"]),
    ("RiskAssessment?probability=0.3", ["ra-low"]),  # [0.25, 0.35)
    ("RiskAssessment?probability=0.2", []),  # [0.15, 0.25): the upper bound is excluded
    ("RiskAssessment?probability=100", ["ra-high"]),
    ("RiskAssessment?probability=100.0", ["ra-high"]),
    ("RiskAssessment?probability=100.06", []),
    ("RiskAssessment?probability=eq20", []),  # the Range is not inside [19.5, 20.5)
    ("RiskAssessment?probability=ne100", ["ra-low", "ra-range"]),
    ("RiskAssessment?probability=gt50", ["ra-high"]),
    ("RiskAssessment?probability=gt20", ["ra-high", "ra-range"]),
    ("RiskAssessment?probability=gt100", []),  # gt/lt/ge/le compare with exactly the value
    ("RiskAssessment?probability=ge100", ["ra-high"]),
    ("RiskAssessment?probability=lt20", ["ra-low", "ra-range"]),
    ("RiskAssessment?probability=lt0.25", []),
    ("RiskAssessment?probability=le0.25", ["ra-low"]),
    ("RiskAssessment?probability=sa25", ["ra-high"]),  # the Range starts below 25
    ("RiskAssessment?probability=sa5", ["ra-high", "ra-range"]),
    ("RiskAssessment?probability=eb10", ["ra-low"]),
    ("RiskAssessment?probability=eb31", ["ra-low", "ra-range"]),
    ("RiskAssessment?probability=ap100", ["ra-high"]),  # 90..110
    ("RiskAssessment?probability=ap95", ["ra-high"]),  # 85.5..104.5
    ("RiskAssessment?probability=ap80", []),  # 72..88
    ("RiskAssessment?probability=ap20", ["ra-range"]),
    ("RiskAssessment?probability=0.25,100", ["ra-low", "ra-high"]),
    ("RiskAssessment?probability=-1", []),
]

QUANTITY_CASES = [
    # Observation.value: weight 72.5 kg; weight-lb 160 [lb_av] ("lbs"); glucose 5.4 mmol/L;
    # temp 37.0 Cel; prelim 131 mm[Hg]
    ("Observation?value-quantity=72.5", ["obs-weight"]),
    ("Observation?value-quantity=eq72.5", ["obs-weight"]),
    ("Observation?value-quantity=72.5|http://unitsofmeasure.org|kg", ["obs-weight"]),
    ("Observation?value-quantity=72.5||kg", ["obs-weight"]),  # no system: the code or the unit
    ("Observation?value-quantity=72.5|http://unitsofmeasure.org|g", []),
    ("Observation?value-quantity=72.5|urn:other|kg", []),
    ("Observation?value-quantity=160||lbs", ["obs-weight-lb"]),
    ("Observation?value-quantity=160||[lb_av]", ["obs-weight-lb"]),
    ("Observation?value-quantity=73", ["obs-weight"]),  # [72.5, 73.5)
    ("Observation?value-quantity=72", []),  # [71.5, 72.5)
    ("Observation?value-quantity=37", ["obs-temp"]),
    ("Observation?value-quantity=37.00", ["obs-temp"]),
    ("Observation?value-quantity=7.25e1", ["obs-weight"]),
    ("Observation?value-quantity=gt72.5", ["obs-weight-lb", "obs-prelim"]),
    ("Observation?value-quantity=ge72.5", ["obs-weight", "obs-weight-lb", "obs-prelim"]),
    ("Observation?value-quantity=lt37", ["obs-glucose"]),
    ("Observation?value-quantity=le5.4", ["obs-glucose"]),
    ("Observation?value-quantity=sa131", ["obs-weight-lb"]),
    ("Observation?value-quantity=eb5.5", ["obs-glucose"]),
    ("Observation?value-quantity=eb5.4", []),
    ("Observation?value-quantity=ne72.5", ["obs-weight-lb", "obs-glucose", "obs-temp", "obs-prelim"]),
    ("Observation?value-quantity=ap70", ["obs-weight"]),  # 63..77
    ("Observation?value-quantity=ap140||mm[Hg]", ["obs-prelim"]),  # 126..154
    ("Observation?value-quantity=ap140||kg", []),
    ("Observation?value-quantity=gt100||mm[Hg]", ["obs-prelim"]),
    ("Observation?value-quantity=lt100|http://unitsofmeasure.org|mm[Hg]", []),
    ("Observation?component-value-quantity=120", ["obs-bp"]),
    ("Observation?component-value-quantity=gt100|http://unitsofmeasure.org|mm[Hg]", ["obs-bp"]),
    ("Observation?combo-value-quantity=gt100||mm[Hg]", ["obs-bp", "obs-prelim"]),
    ("Observation?value-quantity=5.4,160", ["obs-glucose", "obs-weight-lb"]),
    ("Observation?value-quantity=gt5&value-quantity=lt50", ["obs-glucose", "obs-temp"]),
]


@pytest.mark.parametrize(("query", "expected"), NUMBER_CASES + QUANTITY_CASES)
def test_number_and_quantity(corpus: FlaskClient, query: str, expected: list[str]) -> None:
    check(corpus, query, expected)


# -- composite, uri, reference ----------------------------------------------------------------

COMPOSITE_CASES = [
    ("Observation?code-value-quantity=http://loinc.org|29463-7$gt100", ["obs-weight-lb"]),
    ("Observation?code-value-quantity=29463-7$72.5", ["obs-weight"]),
    ("Observation?code-value-quantity=29463-7$72.5|http://unitsofmeasure.org|kg", ["obs-weight"]),
    ("Observation?code-value-quantity=29463-7$72.5|http://unitsofmeasure.org|[lb_av]", []),
    ("Observation?code-value-quantity=2339-0$gt100", []),  # each half matches, never together
    ("Observation?code-value-quantity=8480-6$120", []),  # a component's pair is not the root's
    ("Observation?code-value-quantity=29463-7$72.5,29463-7$160", ["obs-weight", "obs-weight-lb"]),
    ("Observation?component-code-value-quantity=8480-6$gt110", ["obs-bp"]),
    ("Observation?component-code-value-quantity=8480-6$lt110", []),
    ("Observation?component-code-value-quantity=8462-4$80", ["obs-bp"]),
    ("Observation?component-code-value-quantity=8462-4$120", []),  # systolic's value, diastolic's code
    ("Observation?combo-code-value-quantity=8480-6$gt110", ["obs-bp", "obs-prelim"]),
    (
        "Observation?code-value-quantity:missing=false",
        ["obs-weight", "obs-weight-lb", "obs-glucose", "obs-temp", "obs-prelim"],
    ),
    ("Observation?component-code-value-quantity:missing=false", ["obs-bp"]),
    ("Observation?code-value-string=Smoking$never", []),  # the code has text only: no code to pair
]

URI_CASES = [
    ("CarePlan?instantiates-uri=http://example.org/protocols/diabetes/v2", ["cp-1"]),
    ("CarePlan?instantiates-uri=http://example.org/protocols/diabetes", []),
    ("CarePlan?instantiates-uri:below=http://example.org/protocols", ["cp-1"]),  # not .../protocolsX
    ("CarePlan?instantiates-uri:below=http://example.org/protocols/", ["cp-1"]),
    ("CarePlan?instantiates-uri:below=http://example.org", ["cp-1", "cp-3"]),
    ("CarePlan?instantiates-uri:below=http://example.org/protocols/diabetes/v2", ["cp-1"]),
    ("CarePlan?instantiates-uri:above=http://example.org/protocols/diabetes/v2/section-3", ["cp-1"]),
    ("CarePlan?instantiates-uri:above=http://example.org/protocols/diabetes/v2", ["cp-1"]),
    ("CarePlan?instantiates-uri:above=http://example.org/protocolsXY", []),  # protocolsX is no parent of it
    ("CarePlan?instantiates-uri:above=http://example.org/protocols", []),
    ("CarePlan?instantiates-uri:missing=true", ["cp-2", "cp-4"]),
    ("ValueSet?url=http://example.org/fhir/ValueSet/blood-pressure", ["vs-bp"]),
    ("ValueSet?url:below=http://example.org/fhir", ["vs-bp"]),
    ("Goal?_profile=http://example.org/StructureDefinition/goal", ["goal-1"]),
    ("Goal?_profile:below=http://example.org/StructureDefinition", ["goal-1"]),
]

REFERENCE_CASES = [
    ("Observation?subject=Patient/pat-jose", ["obs-bp", "obs-weight-lb"]),
    ("Observation?subject=pat-jose", ["obs-bp", "obs-weight-lb"]),  # a bare id among the target types
    ("Observation?subject:Patient=pat-jose", ["obs-bp", "obs-weight-lb"]),
    ("Observation?subject=Patient/pat-jose/_history/1", ["obs-bp", "obs-weight-lb"]),
    (f"Observation?subject={BASE}/Patient/pat-jose", ["obs-bp", "obs-weight-lb"]),  # absolute, on this server
    (f"Observation?subject={BASE}/Patient/pat-jose/_history/1", ["obs-bp", "obs-weight-lb"]),
    ("Observation?subject=Patient/pat-lee", ["obs-glucose", "obs-smoking"]),  # not the other server's pat-lee
    (f"Observation?subject={BASE}/Patient/pat-lee", ["obs-glucose", "obs-smoking"]),
    ("Observation?subject=http://elsewhere.example/fhir/Patient/pat-lee", ["obs-remote"]),
    ("Observation?subject=Patient/pat-jose,Patient/pat-lee", ["obs-bp", "obs-weight-lb", "obs-glucose", "obs-smoking"]),
    ("Observation?subject=Patient/shared", []),
    ("Observation?subject=Group/shared", ["obs-group"]),
    ("Observation?subject:Group=shared", ["obs-group"]),
    ("Observation?subject:Device=pat-jose", []),
    ("Observation?subject:identifier=urn:mrn|1001", ["obs-by-identifier"]),
    ("Observation?subject:identifier=1001", ["obs-by-identifier"]),
    ("Observation?subject:identifier=urn:mrn|1002", []),
    ("Observation?subject:identifier=urn:mrn|", ["obs-by-identifier"]),
    ("Observation?subject:identifier=|1001", []),  # |value: identifiers without a system
    ("Observation?patient=pat-maria", ["obs-weight", "obs-temp", "obs-prelim"]),
    ("Observation?subject:missing=true", []),
    ("Observation?performer=Practitioner/prac-smith", ["obs-glucose"]),
    ("Observation?performer=prac-smith", ["obs-glucose"]),
    ("CarePlan?care-team=team-a", ["cp-1"]),
    ("CarePlan?goal=Goal/goal-1", ["cp-1"]),
    ("Patient?general-practitioner=prac-smith", ["pat-jose"]),
    ("Patient?link=pat-jose", ["pat-lee"]),
    ("Provenance?target=Observation/obs-bp", ["prov-2"]),
    ("Provenance?target:CarePlan=cp-1", ["prov-1"]),
    ("Provenance?patient=pat-jose", ["prov-2"]),
    # canonical references match by URL, with or without the version
    ("CarePlan?instantiates-canonical=http://example.org/fhir/PlanDefinition/walk", ["cp-2"]),
    ("CarePlan?instantiates-canonical=http://example.org/fhir/PlanDefinition/walk|2.0", ["cp-2"]),
    ("CarePlan?instantiates-canonical=PlanDefinition/walk", []),
]


@pytest.mark.parametrize(("query", "expected"), COMPOSITE_CASES + URI_CASES + REFERENCE_CASES)
def test_composite_uri_reference(corpus: FlaskClient, query: str, expected: list[str]) -> None:
    check(corpus, query, expected)


def test_bare_id_existing_under_several_target_types_is_ambiguous(corpus: FlaskClient) -> None:
    outcome = get(corpus, "Observation?subject=shared", status=400)
    assert "shared" in diagnostics(outcome) and "subject" in diagnostics(outcome)
    # ... but only if it exists under several of the parameter's types: Goal.subject's are Group, Organization, Patient
    get(corpus, "Goal?subject=shared", status=400)
    assert search_ids(corpus, "CarePlan?care-team=shared") == []


# -- chaining and reverse chaining ------------------------------------------------------------

CHAIN_CASES = [
    ("Observation?subject:Patient.name=muller", ["obs-bp", "obs-weight-lb"]),
    ("Observation?subject.name=muller", ["obs-bp", "obs-weight-lb"]),
    ("Observation?subject:Patient.name:exact=Müller", ["obs-bp", "obs-weight-lb"]),
    ("Observation?subject:Patient.name=lee", ["obs-glucose", "obs-smoking"]),  # never the remote pat-lee
    (
        "Observation?subject:Patient.birthdate=1985",
        ["obs-weight", "obs-temp", "obs-prelim", "obs-glucose", "obs-smoking"],
    ),
    ("Observation?subject:Group.type=person", ["obs-group"]),
    (
        "Observation?subject:Patient.gender=male&subject:Patient.general-practitioner.name=smith",
        ["obs-bp", "obs-weight-lb"],
    ),
    ("Observation?subject:Patient.name=muller,lee", ["obs-bp", "obs-weight-lb", "obs-glucose", "obs-smoking"]),
    ("Observation?subject:Patient.active:missing=true", ["obs-glucose", "obs-smoking"]),
    (
        "Observation?subject:Patient.identifier:of-type=http://terminology.hl7.org/CodeSystem/v2-0203|MR|1001",
        ["obs-bp", "obs-weight-lb"],
    ),
    (
        "Observation?subject:Patient.gender:not=male",
        ["obs-weight", "obs-temp", "obs-prelim", "obs-glucose", "obs-smoking"],
    ),
    ("CarePlan?care-team.participant:Practitioner.name=smith", ["cp-1"]),
    ("CarePlan?care-team.participant.name=jones", ["cp-2"]),
    ("CarePlan?care-team.participant:Practitioner.name=nobody", []),
    ("Goal?subject:Patient.general-practitioner.name=jones", ["goal-2"]),
    ("Goal?subject:Patient.general-practitioner:Practitioner.family=smith", ["goal-1"]),
    ("Goal?patient.general-practitioner.given=emile", ["goal-2"]),
    ("MedicationStatement?source:Practitioner.name=smith", ["ms-1"]),
    ("Provenance?target:CarePlan.subject:Patient.gender=male", ["prov-1"]),
    ("Provenance?target:Patient.identifier=urn:mrn|1001", ["prov-2"]),
    ("Observation?subject:Patient._has:CarePlan:subject:status=completed", ["obs-weight", "obs-temp", "obs-prelim"]),
]

HAS_CASES = [
    ("Patient?_has:Observation:subject:code=29463-7", ["pat-jose", "pat-maria"]),
    ("Patient?_has:Observation:patient:code=2339-0", ["pat-lee"]),
    ("Patient?_has:Observation:subject:code=8302-2", []),  # the remote pat-lee is not this pat-lee
    ("Patient?_has:CarePlan:subject:status=completed", ["pat-maria"]),
    ("Patient?_has:Observation:subject:code=29463-7&_has:CarePlan:subject:status=completed", ["pat-maria"]),
    ("Patient?_has:Observation:subject:code=85354-9,2339-0", ["pat-jose", "pat-lee"]),
    ("Patient?_has:Provenance:target:agent=prac-jones", ["pat-jose"]),
    ("Patient?_has:Observation:subject:date=2026-03-04&gender=female", ["pat-maria"]),
    ("Group?_has:Observation:subject:code=8302-2", ["shared"]),
    ("Practitioner?_has:Patient:general-practitioner:_has:Observation:subject:code=85354-9", ["prac-smith"]),
    ("Practitioner?_has:CareTeam:participant:subject:Patient.name=sanchez", ["prac-jones"]),
    (
        "Practitioner?_has:Patient:general-practitioner:_has:CarePlan:subject:_has:Provenance:target:agent=prac-smith",
        ["prac-smith"],
    ),
]


@pytest.mark.parametrize(("query", "expected"), CHAIN_CASES + HAS_CASES)
def test_chain_and_has(corpus: FlaskClient, query: str, expected: list[str]) -> None:
    check(corpus, query, expected)


def test_a_search_too_deep_for_the_database_answers_400_too_costly(client: FlaskClient) -> None:
    """Chains nested deeper than SQLite parses are refused with an outcome, never a 500; nothing is written."""
    assert client.get("/fhir/Patient?organization.partof.partof.name=x").status_code == 200
    for query in (
        "Patient?organization:Organization.partof.partof.partof.name=x",
        "Patient?organization.partof.partof.partof.partof.partof.name=x",
    ):
        response = client.get(f"/fhir/{query}")
        assert response.status_code == 400, query
        (issue,) = response.get_json()["issue"]
        assert issue["code"] == "too-costly" and "nested too deeply" in issue["diagnostics"]
    created = client.post(
        "/fhir/Patient",
        json={"resourceType": "Patient"},
        headers={"If-None-Exist": "organization.partof.partof.partof.name=x", "Content-Type": "application/fhir+json"},
    )
    assert created.status_code == 400
    assert client.get("/fhir/Patient").get_json()["total"] == 0


def test_date_ap_margin_is_a_tenth_of_the_distance_to_now(client: FlaskClient) -> None:
    """ap widens the search range by 10% of its distance from now, and by at least a day."""
    from datetime import UTC, datetime, timedelta

    today = datetime.now(UTC).date()
    days = {"d-2": 2, "d-5": 5, "d-200": 200, "d-300": 300}
    for id, ago in days.items():
        put(client, observation(id, coding(LOINC, "8302-2"), None, effectiveDateTime=str(today - timedelta(ago))))
    near = today - timedelta(days=3)  # margin: one day
    assert sorted(search_ids(client, f"Observation?date=ap{near}")) == ["d-2"]
    far = today - timedelta(days=250)  # margin: 25 days, reaching neither 200 nor 300 days ago
    assert search_ids(client, f"Observation?date=ap{far}") == []
    farther = today - timedelta(days=320)  # margin: 32 days, reaching 300 days ago
    assert search_ids(client, f"Observation?date=ap{farther}") == ["d-300"]


# -- _sort ------------------------------------------------------------------------------------

SORT_CASES = [
    # birthdates: jose 1970-05-15; maria 1985; lee 1985-02; shared none (last either way)
    ("Patient?_sort=birthdate", ["pat-jose", "pat-maria", "pat-lee", "shared"]),
    ("Patient?_sort=-birthdate", ["pat-maria", "pat-lee", "pat-jose", "shared"]),  # by the end of each range
    ("Patient?_sort=family", ["pat-lee", "pat-jose", "pat-maria", "shared"]),  # Lee, Müller, Sánchez, Zed
    ("Patient?_sort=-family", ["shared", "pat-maria", "pat-jose", "pat-lee"]),
    ("Patient?_sort=gender,-birthdate", ["pat-maria", "pat-lee", "pat-jose", "shared"]),
    ("Patient?_sort=gender,family", ["pat-lee", "pat-maria", "pat-jose", "shared"]),
    ("Patient?_sort=-gender,family", ["shared", "pat-jose", "pat-lee", "pat-maria"]),
    ("Patient?_sort=_id", ["pat-jose", "pat-lee", "pat-maria", "shared"]),
    ("Patient?_sort=-_id", ["shared", "pat-maria", "pat-lee", "pat-jose"]),
    ("Patient?gender=female&_sort=given", ["pat-lee", "pat-maria"]),  # Ann; Luisa/María
    (
        "Observation?code=29463-7,2339-0,8310-5&_sort=date",
        ["obs-weight-lb", "obs-weight", "obs-glucose", "obs-temp"],
    ),
    (
        "Observation?code=29463-7,2339-0,8310-5&_sort=-date",
        ["obs-temp", "obs-glucose", "obs-weight", "obs-weight-lb"],
    ),
    ("Observation?code=29463-7&_sort=value-quantity", ["obs-weight", "obs-weight-lb"]),
    (
        "Observation?value-quantity:missing=false&_sort=-value-quantity",
        ["obs-weight-lb", "obs-prelim", "obs-weight", "obs-temp", "obs-glucose"],
    ),
    ("RiskAssessment?_sort=probability", ["ra-low", "ra-range", "ra-high"]),
    ("Goal?_sort=-start-date", ["goal-1", "goal-2"]),
    ("CarePlan?_sort=date", ["cp-3", "cp-2", "cp-1", "cp-4"]),  # an open start sorts first
    ("CarePlan?_sort=-date", ["cp-2", "cp-4", "cp-1", "cp-3"]),  # an open end sorts first
    ("CarePlan?_sort=status,-date", ["cp-4", "cp-1", "cp-2", "cp-3"]),
    ("CarePlan?_sort=subject,_id", ["cp-1", "cp-4", "cp-3", "cp-2"]),  # Patient/pat-jose, pat-lee, pat-maria
    ("CarePlan?_sort=instantiates-uri,_id", ["cp-1", "cp-3", "cp-2", "cp-4"]),
]


@pytest.mark.parametrize(("query", "expected"), SORT_CASES)
def test_sort(corpus: FlaskClient, query: str, expected: list[str]) -> None:
    check(corpus, query, expected)


# -- _include and _revinclude -----------------------------------------------------------------

INCLUDE_CASES = [
    ("Observation?_id=obs-bp&_include=Observation:subject", ["obs-bp"], {"Patient/pat-jose"}),
    ("Observation?_id=obs-bp&_include=Observation:subject:Patient", ["obs-bp"], {"Patient/pat-jose"}),
    ("Observation?_id=obs-bp&_include=Observation:subject:Group", ["obs-bp"], set()),
    ("Observation?_id=obs-group&_include=Observation:subject:Group", ["obs-group"], {"Group/shared"}),
    ("Observation?_id=obs-bp&_include=Observation:performer", ["obs-bp"], set()),
    # an absolute reference to this server is included; one to another server never
    ("Observation?_id=obs-smoking&_include=Observation:subject", ["obs-smoking"], {"Patient/pat-lee"}),
    ("Observation?_id=obs-remote&_include=Observation:subject", ["obs-remote"], set()),
    (
        "Observation?_id=obs-glucose,obs-smoking&_include=Observation:subject",
        ["obs-glucose", "obs-smoking"],
        {"Patient/pat-lee"},
    ),
    (
        "Observation?_id=obs-glucose&_include=Observation:subject&_include=Observation:performer",
        ["obs-glucose"],
        {"Patient/pat-lee", "Practitioner/prac-smith"},
    ),
    (
        "CarePlan?_id=cp-1&_include=*",
        ["cp-1"],
        {"Patient/pat-jose", "CareTeam/team-a", "Goal/goal-1", "Practitioner/prac-smith"},
    ),
    (
        "CarePlan?_id=cp-1&_include=CarePlan:*",
        ["cp-1"],
        {"Patient/pat-jose", "CareTeam/team-a", "Goal/goal-1", "Practitioner/prac-smith"},
    ),
    ("CarePlan?_id=cp-1&_include=CarePlan:care-team", ["cp-1"], {"CareTeam/team-a"}),
    # :iterate follows the included resources' references too
    (
        "CarePlan?_id=cp-1&_include=CarePlan:care-team&_include:iterate=CareTeam:participant",
        ["cp-1"],
        {"CareTeam/team-a", "Practitioner/prac-smith"},
    ),
    (
        "Goal?_id=goal-2&_include=Goal:subject&_include:iterate=Patient:general-practitioner",
        ["goal-2"],
        {"Patient/pat-maria", "Practitioner/prac-jones"},
    ),
    ("Patient?_id=pat-jose&_revinclude=Provenance:target", ["pat-jose"], {"Provenance/prov-2"}),
    (
        "Patient?_id=pat-jose&_revinclude=Observation:subject",
        ["pat-jose"],
        {"Observation/obs-bp", "Observation/obs-weight-lb"},
    ),
    (
        "Patient?_id=pat-lee&_revinclude=Observation:subject",
        ["pat-lee"],
        {"Observation/obs-glucose", "Observation/obs-smoking"},
    ),
    ("Patient?_id=pat-jose&_revinclude=Provenance:*", ["pat-jose"], {"Provenance/prov-2"}),
    (
        "CarePlan?_id=cp-1&_revinclude=Provenance:target&_include=CarePlan:subject",
        ["cp-1"],
        {"Provenance/prov-1", "Patient/pat-jose"},
    ),
    (
        "Patient?_id=pat-lee&_revinclude=Observation:subject&_include:iterate=Observation:performer",
        ["pat-lee"],
        {"Observation/obs-glucose", "Observation/obs-smoking", "Practitioner/prac-smith"},
    ),
    (
        "Practitioner?_id=prac-smith&_revinclude=Patient:general-practitioner&_revinclude:iterate=Observation:subject",
        ["prac-smith"],
        {"Patient/pat-jose", "Observation/obs-bp", "Observation/obs-weight-lb"},
    ),
    (
        "Practitioner?_id=prac-jones&_revinclude=Patient:general-practitioner"
        "&_revinclude:iterate=Provenance:target&_include:iterate=Provenance:agent",
        ["prac-jones"],
        {"Patient/pat-maria"},
    ),
    # a match is never repeated as an include
    ("Patient?_id=pat-jose,pat-lee&_revinclude=Patient:link", ["pat-jose", "pat-lee"], set()),
    ("Patient?_id=pat-jose&_revinclude=Patient:link", ["pat-jose"], {"Patient/pat-lee"}),
]


@pytest.mark.parametrize(("query", "expected", "expected_included"), INCLUDE_CASES)
def test_include_and_revinclude(
    corpus: FlaskClient, query: str, expected: list[str], expected_included: set[str]
) -> None:
    bundle = get(corpus, query)
    assert sorted(matches(bundle)) == sorted(expected)
    assert included(bundle) == expected_included
    assert bundle["total"] == len(expected)  # includes do not count
    assert all(entry["search"]["mode"] in ("match", "include") for entry in bundle["entry"])


def test_revinclude_wildcard_adds_every_resource_referencing_the_matches(corpus: FlaskClient) -> None:
    bundle = get(corpus, "Patient?_id=pat-jose&_revinclude=*")
    assert included(bundle) == {
        "Patient/pat-lee",
        "Observation/obs-bp",
        "Observation/obs-weight-lb",
        "CareTeam/team-a",
        "Goal/goal-1",
        "CarePlan/cp-1",
        "CarePlan/cp-4",
        "MedicationStatement/ms-1",
        "Provenance/prov-2",
        "RiskAssessment/ra-low",
    }


def test_includes_follow_the_page(client: FlaskClient) -> None:
    """_include adds what the entries of this page reference, page by page."""
    for number in range(3):
        put(client, {"resourceType": "Practitioner", "id": f"gp{number}"})
        put(
            client,
            {"resourceType": "Patient", "id": f"p{number}", "generalPractitioner": [ref(f"Practitioner/gp{number}")]},
        )
    bundle = get(client, "Patient?_sort=_id&_count=2&_include=Patient:general-practitioner")
    assert matches(bundle) == ["p0", "p1"] and included(bundle) == {"Practitioner/gp0", "Practitioner/gp1"}
    bundle = follow(client, link(bundle, "next") or "")
    assert matches(bundle) == ["p2"] and included(bundle) == {"Practitioner/gp2"}


# -- system and compartment search ------------------------------------------------------------

SYSTEM_CASES = [
    ("/fhir?_tag=review", ["goal-1"]),
    ("/fhir?_type=Goal,CarePlan&_lastUpdated=gt2000&_sort=-_id", ["goal-2", "goal-1", "cp-4", "cp-3", "cp-2", "cp-1"]),
    ("/fhir?_type=Patient,Practitioner&_id=prac-smith,pat-jose", ["pat-jose", "prac-smith"]),
    ("/fhir?_id=goal-1", ["goal-1"]),
    ("/fhir?_type=Goal,CarePlan&_id=goal-1,cp-1,ms-1", ["goal-1", "cp-1"]),
    ("/fhir?_type=Patient,Practitioner&_has:Observation:performer:code=2339-0", ["prac-smith"]),
]


@pytest.mark.parametrize(("query", "expected"), SYSTEM_CASES)
def test_system_search(corpus: FlaskClient, query: str, expected: list[str]) -> None:
    check(corpus, query, expected)


COMPARTMENT_CASES = [
    ("Patient/pat-jose/Observation", ["obs-bp", "obs-weight-lb"]),
    ("Patient/pat-lee/Observation", ["obs-glucose", "obs-smoking"]),  # not the other server's pat-lee
    ("Patient/pat-jose/Observation?code=85354-9", ["obs-bp"]),
    ("Patient/pat-jose/CarePlan", ["cp-1", "cp-4"]),
    ("Patient/pat-jose/CareTeam", ["team-a"]),
    ("Patient/pat-jose/Goal", ["goal-1"]),
    ("Patient/pat-jose/MedicationStatement", ["ms-1"]),
    ("Patient/pat-jose/Provenance", ["prov-2"]),
    ("Patient/pat-jose/RiskAssessment", ["ra-low"]),
    ("Patient/pat-maria/Observation?_sort=-date", ["obs-temp", "obs-prelim", "obs-weight"]),
    ("Patient/nobody/Observation", []),
    ("Practitioner/prac-smith/Observation", ["obs-glucose"]),
    ("Practitioner/prac-smith/CarePlan", ["cp-1"]),
    ("Practitioner/prac-smith/CareTeam", ["team-a"]),
    ("Practitioner/prac-smith/MedicationStatement", ["ms-1"]),
    ("Practitioner/prac-smith/Provenance", ["prov-1"]),
]


@pytest.mark.parametrize(("query", "expected"), COMPARTMENT_CASES)
def test_compartment_search(corpus: FlaskClient, query: str, expected: list[str]) -> None:
    check(corpus, query, expected)


def test_compartment_search_refuses_types_outside_the_compartment(corpus: FlaskClient) -> None:
    outcome = get(corpus, "Patient/pat-jose/Practitioner", status=400)
    assert "Practitioner" in diagnostics(outcome)
    get(corpus, "Patient/pat-jose/Bogus", status=404)


def test_compartment_self_link(corpus: FlaskClient) -> None:
    bundle = get(corpus, "Patient/pat-jose/Observation?code=85354-9")
    assert link(bundle, "self") == f"{BASE}/Patient/pat-jose/Observation?code=85354-9"


# -- the searchset Bundle ---------------------------------------------------------------------


def test_searchset_bundle_shape(corpus: FlaskClient) -> None:
    bundle = get(corpus, "Observation?subject=Patient/pat-jose&_include=Observation:subject&_sort=date")
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    assert bundle["total"] == 2
    assert (
        link(bundle, "self") == f"{BASE}/Observation?subject=Patient/pat-jose&_include=Observation:subject&_sort=date"
    )
    assert link(bundle, "next") is None
    assert [(e["fullUrl"], e["search"]["mode"]) for e in bundle["entry"]] == [
        (f"{BASE}/Observation/obs-weight-lb", "match"),
        (f"{BASE}/Observation/obs-bp", "match"),
        (f"{BASE}/Patient/pat-jose", "include"),
    ]
    assert bundle["entry"][0]["resource"]["valueQuantity"]["value"] == 160


def test_empty_searchset(corpus: FlaskClient) -> None:
    bundle = get(corpus, "Patient?name=nobody")
    assert bundle["total"] == 0 and "entry" not in bundle
    assert link(bundle, "self") == f"{BASE}/Patient?name=nobody"


def test_self_link_escapes_what_it_must(corpus: FlaskClient) -> None:
    bundle = get(corpus, "Observation?date=2026-03-04T10:15:00%2B10:00&value-string=never%20smoked")
    self_link = link(bundle, "self") or ""
    assert link_params(self_link) == [("date", "2026-03-04T10:15:00+10:00"), ("value-string", "never smoked")]
    follow(corpus, self_link)


# -- _count, _total, _summary, _elements ------------------------------------------------------

TOTAL_CASES = [("", True), ("&_total=accurate", True), ("&_total=estimate", True), ("&_total=none", False)]


@pytest.mark.parametrize(("parameter", "has_total"), TOTAL_CASES)
def test_total(corpus: FlaskClient, parameter: str, has_total: bool) -> None:
    bundle = get(corpus, f"Patient?gender=female{parameter}")
    assert ("total" in bundle) is has_total
    assert sorted(matches(bundle)) == ["pat-lee", "pat-maria"]
    if has_total:
        assert bundle["total"] == 2


def test_total_none_still_pages(client: FlaskClient) -> None:
    for number in range(3):
        put(client, {"resourceType": "Patient", "id": f"p{number}"})
    bundle = get(client, "Patient?_total=none&_count=2")
    assert "total" not in bundle and len(matches(bundle)) == 2
    assert matches(follow(client, link(bundle, "next") or "")) == ["p2"]


def test_summary_count(corpus: FlaskClient) -> None:
    bundle = get(corpus, "Observation?subject=Patient/pat-maria&_summary=count")
    assert bundle["total"] == 3 and "entry" not in bundle
    assert link(bundle, "self") == f"{BASE}/Observation?subject=Patient/pat-maria&_summary=count"


def test_count_zero_gives_the_total_only(corpus: FlaskClient) -> None:
    bundle = get(corpus, "Observation?_count=0")
    assert bundle["total"] == len(ALL_OBSERVATIONS) and "entry" not in bundle
    assert link(bundle, "next") is None


@pytest.mark.parametrize("summary", ["true", "text", "data"])
def test_summary_subsets_entries(corpus: FlaskClient, summary: str) -> None:
    bundle = get(corpus, f"Patient?_id=pat-jose&_summary={summary}")
    (entry,) = bundle["entry"]
    tags = entry["resource"]["meta"].get("tag", [])
    assert any(tag["code"] == "SUBSETTED" for tag in tags)
    assert entry["resource"]["id"] == "pat-jose"
    if summary == "true":
        assert "name" in entry["resource"] and "address" in entry["resource"]
    if summary == "text":
        assert "name" not in entry["resource"]


def test_elements(corpus: FlaskClient) -> None:
    bundle = get(corpus, "Patient?_id=pat-jose&_elements=gender,birthDate&_include=Patient:general-practitioner")
    patient = next(e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "match")
    assert set(patient) == {"resourceType", "id", "meta", "gender", "birthDate"}
    assert link(bundle, "self") == (
        f"{BASE}/Patient?_id=pat-jose&_elements=gender,birthDate&_include=Patient:general-practitioner"
    )
    get(corpus, "Patient?_elements=bogus", status=400)


def test_count_default_and_maximum(client: FlaskClient) -> None:
    for number in range(25):
        put(client, {"resourceType": "Patient", "id": f"p{number:02d}", "gender": "other"})
    bundle = get(client, "Patient?gender=other")
    assert len(matches(bundle)) == 20 and bundle["total"] == 25
    assert dict(link_params(link(bundle, "next") or ""))["_count"] == "20"
    for count in ("5000", "9" * 5000):
        bundle = get(client, f"Patient?gender=other&_count={count}")
        assert len(matches(bundle)) == 25
        assert link(bundle, "self") == f"{BASE}/Patient?gender=other&_count=1000"  # as capped


# -- paging -----------------------------------------------------------------------------------


def test_paging_links(client: FlaskClient) -> None:
    for number in range(7):
        put(client, {"resourceType": "Patient", "id": f"p{number}", "gender": "other"})
    first = get(client, "Patient?gender=other&_sort=-_id&_count=3")
    assert matches(first) == ["p6", "p5", "p4"] and first["total"] == 7
    assert link(first, "self") == f"{BASE}/Patient?gender=other&_sort=-_id&_count=3"
    assert link(first, "previous") is None
    second = follow(client, link(first, "next") or "")
    assert matches(second) == ["p3", "p2", "p1"] and second["total"] == 7
    assert matches(follow(client, link(second, "self") or "")) == ["p3", "p2", "p1"]
    assert matches(follow(client, link(second, "previous") or "")) == ["p6", "p5", "p4"]
    assert matches(follow(client, link(second, "first") or "")) == ["p6", "p5", "p4"]
    third = follow(client, link(second, "next") or "")
    assert matches(third) == ["p0"] and link(third, "next") is None
    assert link(first, "last") == link(second, "last") == link(third, "self")
    params = dict(link_params(link(third, "self") or ""))
    assert params["gender"] == "other" and params["_sort"] == "-_id" and params["_offset"] == "6"


def test_unknown_snapshot_is_gone(client: FlaskClient) -> None:
    outcome = get(client, "Patient?_snapshot=nonesuch&_offset=10", status=410)
    assert "expired" in diagnostics(outcome)


def test_paging_returns_each_match_once_while_others_write(client: FlaskClient) -> None:
    """55 matches paged by 10; between pages other clients create, update and delete matching resources."""
    originals = {f"orig-{number:02d}" for number in range(55)}
    for id in sorted(originals):
        put(client, {"resourceType": "Patient", "id": id, "gender": "other", "name": [{"family": "Paged"}]})
    seen: list[str] = []
    bundle = get(client, "Patient?name=paged&_count=10&_sort=family")
    page = 0
    while True:
        assert bundle["total"] == 55
        seen += matches(bundle)
        # other writers: new matches, an update moving a new match in the sort order, deletions
        put(client, {"resourceType": "Patient", "id": f"new-{page}", "name": [{"family": "Paged"}]})
        put(client, {"resourceType": "Patient", "id": f"new-{page}", "name": [{"family": "Paged A"}]})
        if page > 0:
            delete(client, "Patient", f"new-{page - 1}")
        put(client, {"resourceType": "Patient", "id": f"aaa-{page}", "name": [{"family": "Paged"}]})
        page += 1
        next_link = link(bundle, "next")
        if next_link is None:
            break
        bundle = follow(client, next_link)
    assert page == 6
    assert len(seen) == len(set(seen)) == 55
    assert set(seen) == originals
    # a fresh search sees the writes
    assert get(client, "Patient?name=paged&_summary=count")["total"] == 55 + 6 + 1


def test_paging_drops_deleted_matches_and_shows_current_versions(client: FlaskClient) -> None:
    for number in range(4):
        put(client, {"resourceType": "Patient", "id": f"p{number}", "gender": "other"})
    first = get(client, "Patient?gender=other&_count=2&_sort=_id")
    delete(client, "Patient", "p2")
    put(client, {"resourceType": "Patient", "id": "p3", "gender": "other", "active": True})
    second = follow(client, link(first, "next") or "")
    assert matches(second) == ["p3"]
    assert second["entry"][0]["resource"]["active"] is True


# -- POST _search ------------------------------------------------------------------------------

POST_CASES = [
    "Patient?name=muller,sanchez",
    "Observation?subject:Patient.name=muller&_sort=-date",
    "Observation?code-value-quantity=http://loinc.org|29463-7$gt100",
    "Patient?_has:Observation:subject:code=29463-7&_include=Patient:general-practitioner",
    "CarePlan?date=ge2026-03-01&date=le2026-03-31&_sort=_id",
    "Observation?date=2026-03-04T10:15:00%2B10:00",
    "Patient?family=zed\\,jr",
]


@pytest.mark.parametrize("query", POST_CASES)
def test_post_search_equals_get(corpus: FlaskClient, query: str) -> None:
    resource_type, _, parameters = query.partition("?")
    got = get(corpus, query)
    response = corpus.post(
        f"/fhir/{resource_type}/_search", data=parameters, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200, response.get_json()
    posted = response.get_json()
    assert [e["fullUrl"] for e in posted["entry"]] == [e["fullUrl"] for e in got["entry"]]
    assert [e["search"] for e in posted["entry"]] == [e["search"] for e in got["entry"]]
    assert posted["total"] == got["total"] and link(posted, "self") == link(got, "self")


def test_post_search_merges_url_and_body_parameters(corpus: FlaskClient) -> None:
    response = corpus.post(
        "/fhir/Patient/_search?gender=female", data="name=lee", content_type="application/x-www-form-urlencoded"
    )
    assert matches(response.get_json()) == ["pat-lee"]
    response = corpus.post(
        "/fhir/_search", data="_type=Practitioner&name=jones", content_type="application/x-www-form-urlencoded"
    )
    assert matches(response.get_json()) == ["prac-jones"]


def test_post_search_pages(client: FlaskClient) -> None:
    for number in range(3):
        put(client, {"resourceType": "Patient", "id": f"p{number}", "gender": "other"})
    response = client.post(
        "/fhir/Patient/_search",
        data="gender=other&_count=2&_sort=_id",
        content_type="application/x-www-form-urlencoded",
    )
    bundle = response.get_json()
    assert matches(bundle) == ["p0", "p1"]
    assert matches(follow(client, link(bundle, "next") or "")) == ["p2"]


# -- strictness -------------------------------------------------------------------------------

BAD_REQUESTS = [
    # (query, a text the OperationOutcome must contain)
    ("Patient?bogus=1", "bogus"),
    ("Patient?name:bogus=x", ":bogus"),
    ("Patient?name:not=x", ":not"),
    ("Patient?gender:exact=male", ":exact"),
    ("Patient?birthdate:contains=1970", ":contains"),
    ("Patient?birthdate=2026-13", "2026-13"),
    ("Patient?birthdate=1970-02-30", "birthdate"),
    ("Patient?birthdate=yesterday", "birthdate"),
    ("Patient?birthdate=xx1970", "xx1970"),
    ("Patient?birthdate=", "birthdate"),
    ("Observation?date=2026-03-04T10:15:00+10:00", "%2B"),  # an unescaped + arrives as a space
    ("Patient?name=", "name"),
    ("Patient?gender:missing=maybe", "maybe"),
    ("Patient?identifier:of-type=MR|1001", "of-type"),
    ("Patient?identifier=a|b|c", "identifier"),
    ("Observation?value-quantity=heavy", "heavy"),
    ("Observation?value-quantity=1|2", "value-quantity"),
    ("RiskAssessment?probability=1|x|y", "probability"),
    ("RiskAssessment?probability=NaN", "NaN"),
    ("Observation?code-value-quantity=8480-6", "code-value-quantity"),
    ("Observation?code:in=http://example.org/unknown-value-set", "unknown-value-set"),
    ("Observation?subject:Practitioner=prac-smith", "Practitioner"),
    ("Observation?subject=Bogus/1/2", "Bogus/1/2"),
    ("Observation?code.name=x", "code"),
    ("Observation?subject:Patient.bogus=x", "bogus"),
    ("Observation?subject:Group.name=x", "name"),
    ("Observation?subject:Bogus.name=x", "Bogus"),
    ("Patient?_has:Observation:bogus:code=x", "bogus"),
    ("Patient?_has:Bogus:subject:code=x", "Bogus"),
    ("Patient?_has:Observation:subject", "_has"),
    ("Patient?_has:Goal:subject:bogus=1", "bogus"),
    ("Patient?_has:CarePlan:care-team:status=x", "care-team"),
    ("Patient?_sort=bogus", "bogus"),
    ("Patient?_sort=name,-bogus", "bogus"),
    ("Patient?_sort=", "_sort"),
    ("Patient?_sort=name&_sort=gender", "_sort"),
    ("Patient?_count=abc", "abc"),
    ("Patient?_count=-1", "_count"),
    ("Patient?_count=2&_count=3", "_count"),
    ("Patient?_total=maybe", "maybe"),
    ("Patient?_summary=maybe", "maybe"),
    ("Patient?_include=Patient:bogus", "bogus"),
    ("Patient?_include=Patient", "_include"),
    ("Patient?_include=Bogus:subject", "Bogus"),
    ("Patient?_include=Patient:general-practitioner:Patient", "Patient"),
    ("Patient?_include=Observation:subject", "Observation:subject"),  # not from the searched type
    ("Patient?_include:bogus=Patient:link", "_include:bogus"),
    ("Patient?_revinclude=Observation:bogus", "bogus"),
    ("Patient?_revinclude=Observation:code", "code"),
    ("Patient?_offset=x", "_offset"),
    # Unicode digits pass str.isdigit(), dates past 9999 overflow datetime: still 400s, never 500s
    ("Patient?_count=²", "²"),
    ("Patient?_count=١٠", "_count"),
    ("Patient?_snapshot=x&_offset=²", "_offset"),
    ("Patient?_snapshot=x&_offset=99999999999999999999", "_offset"),
    ("Patient?birthdate=9999-12-31T23:59:59-14:00", "birthdate"),
    ("Patient?birthdate=２０２６", "birthdate"),
    ("RiskAssessment?probability=١٠", "probability"),
    ("Patient?_offset=10", "_snapshot"),  # offsets only page through a snapshot
    ("/fhir?_type=Patient,Observation&name=x", "name"),
    ("/fhir?_type=Bogus", "Bogus"),
    ("Patient/pat-jose/Practitioner", "Practitioner"),
]


@pytest.mark.parametrize(("query", "named"), BAD_REQUESTS)
def test_bad_requests_are_400_naming_the_problem(corpus: FlaskClient, query: str, named: str) -> None:
    outcome = get(corpus, query, status=400)
    assert named in diagnostics(outcome)
    assert outcome["issue"][0]["severity"] in ("error", "fatal")


@pytest.mark.parametrize(("query", "named"), [(q, n) for q, n in BAD_REQUESTS if "?" in q])
def test_bad_requests_by_post_are_400_too(corpus: FlaskClient, query: str, named: str) -> None:
    path, _, parameters = query.partition("?")
    path = "/fhir/_search" if path == "/fhir" else f"/fhir/{path}/_search"
    response = corpus.post(path, data=parameters, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert named in diagnostics(response.get_json())


LENIENT_CASES = [
    # (query, matches, ignored parameters, self link parameters)
    ("Patient?bogus=1&name=muller", ["pat-jose"], ["bogus"], [("name", "muller")]),
    ("Patient?name=muller&bogus:exact=1&other=2", ["pat-jose"], ["bogus:exact", "other"], [("name", "muller")]),
    (
        "Observation?subject:Patient.bogus=x&code=8480-6",
        ["obs-prelim"],
        ["subject:Patient.bogus"],
        [("code", "8480-6")],
    ),
    (
        "Patient?_has:Observation:subject:bogus=x",
        ["pat-jose", "pat-maria", "pat-lee", "shared"],
        ["_has:Observation:subject:bogus"],
        [],
    ),
]


@pytest.mark.parametrize(("query", "expected", "ignored", "used"), LENIENT_CASES)
def test_lenient_handling_ignores_unknown_parameters(
    corpus: FlaskClient, query: str, expected: list[str], ignored: list[str], used: list[tuple[str, str]]
) -> None:
    get(corpus, query, status=400)
    bundle = get(corpus, query, headers=LENIENT)
    assert sorted(matches(bundle)) == sorted(expected) and bundle["total"] == len(expected)
    assert link_params(link(bundle, "self") or "") == used
    outcomes = [e for e in bundle["entry"] if e["search"]["mode"] == "outcome"]
    assert len(outcomes) == 1 and "fullUrl" not in outcomes[0]
    issues = outcomes[0]["resource"]["issue"]
    assert [issue["severity"] for issue in issues] == ["warning"] * len(ignored)
    for name, issue in zip(ignored, issues, strict=True):
        assert name in issue["diagnostics"]


@pytest.mark.parametrize(
    "query",
    ["Patient?name:bogus=x", "Patient?birthdate=2026-13", "Patient?_sort=bogus", "Patient?_include=Patient:bogus"],
)
def test_lenient_handling_still_refuses_malformed_values_and_modifiers(corpus: FlaskClient, query: str) -> None:
    get(corpus, query, status=400, headers=LENIENT)


def test_strict_handling_is_the_default(corpus: FlaskClient) -> None:
    get(corpus, "Patient?bogus=1", status=400, headers={"Prefer": "handling=strict"})


# -- values reach SQL only as bound parameters -------------------------------------------------

INJECTIONS = [
    "Patient?name=x' OR '1'='1",
    "Patient?name:exact=x' OR '1'='1",
    "Patient?name:contains=' OR 1=1 --",
    "Patient?_id=1' OR 1=1 --",
    "Patient?identifier=x'); DROP TABLE resources; --|1",
    'Patient?family="; DELETE FROM resources; --',
    "Observation?subject=Patient/1' OR '1'='1",
    "Observation?subject:identifier=a' OR 'a'='a|b",
    "Observation?code:text=' UNION SELECT type, id FROM resources --",
    "Observation?subject:Patient.name=x' OR '1'='1",
    "Patient?_has:Observation:subject:code=x' OR '1'='1",
    "CarePlan?instantiates-uri:above=x' OR '1'='1",
    "CarePlan?instantiates-uri:below=x' OR '1'='1",
    "Patient?name=%25",
    "Patient?name=_",
]


@pytest.mark.parametrize("query", INJECTIONS)
def test_injection_looking_values_find_nothing_and_break_nothing(client: FlaskClient, query: str) -> None:
    put(
        client,
        {"resourceType": "Patient", "id": "victim", "name": [{"family": "Victim"}], "identifier": [{"value": "1"}]},
    )
    put(client, observation("obs", coding(LOINC, "1"), ref("Patient/victim")))
    assert search_ids(client, query) == []
    assert search_ids(client, "Patient") == ["victim"] and search_ids(client, "Observation") == ["obs"]


@pytest.mark.parametrize(
    "query",
    ["Patient?_sort=name;DROP TABLE resources", "Patient?name'--=x", "Patient?_include=Patient:link' OR '1'='1"],
)
def test_injection_looking_names_are_refused(client: FlaskClient, query: str) -> None:
    put(client, {"resourceType": "Patient", "id": "victim"})
    get(client, query, status=400)
    assert search_ids(client, "Patient") == ["victim"]


def test_stored_value_sets_expand_for_in(client: FlaskClient) -> None:
    """:in with a ValueSet stored here: listed concepts, an imported ValueSet, exclusions, an expansion."""
    for id, code in (("a", "1"), ("b", "2"), ("c", "3")):
        put(client, observation(id, coding("urn:codes", code), None))
    put(client, observation("d", coding("urn:other", "1"), None))
    value_sets = [
        {"id": "one-two", "compose": {"include": [{"system": "urn:codes", "concept": [{"code": "1"}, {"code": "2"}]}]}},
        {
            "id": "two",
            "compose": {
                "include": [{"valueSet": ["http://example.org/vs/one-two"]}],
                "exclude": [{"system": "urn:codes", "concept": [{"code": "1"}]}],
            },
        },
        {
            "id": "expanded",
            "expansion": {"timestamp": "2026-01-01", "contains": [{"system": "urn:codes", "code": "3"}]},
        },
        {"id": "whole", "compose": {"include": [{"system": "urn:codes"}]}},
    ]
    for value_set in value_sets:
        url = f"http://example.org/vs/{value_set['id']}"
        put(client, {"resourceType": "ValueSet", "status": "active", "url": url, **value_set})
    assert sorted(search_ids(client, "Observation?code:in=http://example.org/vs/one-two")) == ["a", "b"]
    assert sorted(search_ids(client, "Observation?code:in=http://example.org/vs/one-two|1.0")) == ["a", "b"]
    assert search_ids(client, "Observation?code:in=http://example.org/vs/two") == ["b"]
    assert search_ids(client, "Observation?code:in=http://example.org/vs/expanded") == ["c"]
    assert sorted(search_ids(client, "Observation?code:not-in=http://example.org/vs/one-two")) == ["c", "d"]
    outcome = get(client, "Observation?code:in=http://example.org/vs/whole", status=400)
    assert "http://example.org/vs/whole" in diagnostics(outcome)


def test_a_snapshot_does_not_serve_another_types_search(client: FlaskClient) -> None:
    for number in range(3):
        put(client, {"resourceType": "Patient", "id": f"p{number}"})
    next_link = link(get(client, "Patient?_count=2"), "next") or ""
    snapshot = dict(link_params(next_link))["_snapshot"]
    outcome = get(client, f"Observation?_snapshot={snapshot}&_offset=0&_count=2", status=400)
    assert "_snapshot" in diagnostics(outcome)


def test_deleted_and_replaced_versions_are_not_found(client: FlaskClient) -> None:
    """Only current, live versions match, are chained to, reverse-chained from or included."""
    put(client, {"resourceType": "Practitioner", "id": "gp", "name": [{"family": "Old"}]})
    put(
        client,
        {
            "resourceType": "Patient",
            "id": "p",
            "name": [{"family": "Kept"}],
            "generalPractitioner": [ref("Practitioner/gp")],
        },
    )
    put(client, observation("o", coding(LOINC, "1"), ref("Patient/p")))
    put(client, {"resourceType": "Practitioner", "id": "gp", "name": [{"family": "New"}]})
    assert search_ids(client, "Practitioner?name=old") == []
    assert search_ids(client, "Practitioner?name=new") == ["gp"]
    assert search_ids(client, "Patient?general-practitioner.name=new") == ["p"]
    delete(client, "Practitioner", "gp")
    delete(client, "Observation", "o")
    assert search_ids(client, "Practitioner") == []
    assert search_ids(client, "Patient?general-practitioner.name=new") == []
    assert search_ids(client, "Patient?_has:Observation:subject:code=1") == []
    assert search_ids(client, "Patient?general-practitioner=gp") == ["p"]  # the reference itself remains
    bundle = get(client, "Patient?_id=p&_include=Patient:general-practitioner&_revinclude=Observation:subject")
    assert matches(bundle) == ["p"] and included(bundle) == set()
    assert search_ids(client, "Patient/p/Observation") == []
    put(client, observation("o", coding(LOINC, "2"), ref("Patient/p")))  # back, with another code
    assert search_ids(client, "Patient?_has:Observation:subject:code=2") == ["p"]
    assert search_ids(client, "Observation?code=1") == []
