"""The reindex command rebuilds the search index from the stored resources."""

import sqlite3
import subprocess
import sys

from conftest import EXAMPLE_DATA, EXAMPLES

from fhir_ccm.loader import load_paths
from fhir_ccm.reindex import reindex
from fhir_ccm.search.parse import parse_search


def patient_careplans(store) -> list[str]:
    page = store.search(parse_search(("CarePlan",), [("patient", "Patient/ccm-garcia")]))
    return sorted(v.id for v in page.matches)


def test_reindex_rebuilds_a_lost_index(store, database):
    load_paths(store, EXAMPLE_DATA)
    before = patient_careplans(store)
    assert len(before) == 3
    connection = sqlite3.connect(database)
    with connection:
        connection.execute("DELETE FROM idx_reference")
        connection.execute("DELETE FROM idx_date")
    connection.close()
    assert patient_careplans(store) == []
    assert reindex(store) == store.count()
    assert patient_careplans(store) == before
    updated = store.search(parse_search(("CarePlan",), [("_lastUpdated", "ge2000-01-01")]))
    assert updated.total == 12


def test_reindex_command(database):
    subprocess.run(
        [sys.executable, "-m", "fhir_ccm", "load", "--database", str(database), str(EXAMPLES / "maria-garcia")],
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [sys.executable, "-m", "fhir_ccm", "reindex", "--database", str(database), "--type", "CarePlan"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert "reindexed 3 resources" in result.stdout
