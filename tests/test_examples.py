"""Every file in examples/ parses, validates, survives JSON -> XML -> JSON and loads idempotently."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from fhir_ccm.formats.json_format import canonical_json, parse_resource
from fhir_ccm.formats.xml_format import resource_to_xml, xml_to_resource
from fhir_ccm.loader import load_paths
from fhir_ccm.store import HistoryQuery
from fhir_ccm.validation import check_issues

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
GOLDEN = EXAMPLES / "reconcile"  # the coordination engine's scenarios, tested with the engine
DATA_DIRS = sorted(path for path in EXAMPLES.iterdir() if path.is_dir() and path != GOLDEN)
FILES = sorted(path for directory in DATA_DIRS for path in directory.rglob("*.json"))


def test_there_is_a_multi_provider_data_set():
    types = Counter(parse_resource(path.read_bytes())["resourceType"] for path in FILES)
    assert types["Patient"] >= 4
    for resource_type in ("Practitioner", "Organization", "Condition", "CarePlan", "Goal", "CareTeam"):
        assert types[resource_type] >= 4, resource_type
    assert types["MedicationStatement"] >= 8


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(EXAMPLES)) for p in FILES])
def test_example_is_valid_and_round_trips_through_xml(path):
    resource = parse_resource(path.read_bytes())
    assert check_issues(resource) == []
    assert path.name == f"{resource['resourceType']}-{resource['id']}.json"
    again = xml_to_resource(resource_to_xml(resource))
    assert canonical_json(again) == canonical_json(resource)


def test_references_resolve_within_the_examples():
    resources = [parse_resource(path.read_bytes()) for path in FILES]
    known = {f"{r['resourceType']}/{r['id']}" for r in resources}
    dangling = set()

    def walk(value):
        if isinstance(value, dict):
            reference = value.get("reference")
            if isinstance(reference, str) and not reference.startswith("#"):
                if reference not in known:
                    dangling.add(reference)
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for resource in resources:
        walk(resource)
    assert dangling == set()


def test_loading_twice_creates_no_duplicates_and_no_versions(store):
    first = load_paths(store, DATA_DIRS)
    assert first.failed == []
    assert first.created == len(FILES)
    versions = store.history(HistoryQuery()).total
    second = load_paths(store, DATA_DIRS)
    assert second.failed == []
    assert (second.created, second.updated, second.unchanged) == (0, 0, len(FILES))
    assert store.history(HistoryQuery()).total == versions
    assert store.count() == len(FILES)


def test_the_planted_decimal_keeps_its_precision(store):
    load_paths(store, DATA_DIRS)
    stored = [v.json for v in store.iter_current("MedicationStatement")]
    assert any('"value":2.50' in (json or "") for json in stored)
