"""Server-assigned ids: valid FHIR ids, unique, and ordered by creation time (UUID version 7)."""

from __future__ import annotations

import time
import uuid

from fhir_ccm.ids import new_id
from fhir_ccm.interactions.resource_types import require_id


def test_ids_are_valid_unique_version_7_uuids():
    ids = [new_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for id in ids[:100]:
        assert require_id(id) == id
        parsed = uuid.UUID(id)
        assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == id


def test_later_ids_sort_after_earlier_ones():
    earlier = [new_id() for _ in range(50)]
    time.sleep(0.003)
    later = [new_id() for _ in range(50)]
    assert max(earlier) < min(later)


def test_the_id_starts_with_the_creation_time():
    before = time.time_ns() // 1_000_000
    id = new_id()
    after = time.time_ns() // 1_000_000
    assert before <= uuid.UUID(id).int >> 80 <= after


def test_creates_and_transactions_get_time_ordered_ids(client):
    created = client.post("/fhir/Patient", json={"resourceType": "Patient", "gender": "female"})
    first = created.headers["Location"].split("/Patient/")[1].split("/")[0]
    time.sleep(0.003)
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:6f4f9a7e-2c1d-4c7b-9a55-0d1f2e3c4b5a",
                "resource": {"resourceType": "Patient", "gender": "male"},
                "request": {"method": "POST", "url": "Patient"},
            }
        ],
    }
    response = client.post("/fhir", json=bundle)
    assert response.status_code == 200, response.get_json()
    second = response.get_json()["entry"][0]["response"]["location"].split("/")[1]
    assert uuid.UUID(first).version == 7 and uuid.UUID(second).version == 7
    assert first < second
