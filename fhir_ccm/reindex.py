"""Rebuilding the search index from the stored resources.

Needed after the extraction rules change (a new parameter, a fix in how a
datatype is indexed): every live resource is indexed again from its stored
JSON, in batches of one transaction each, so the server can keep serving.
"""

from __future__ import annotations

from fhir_ccm.formats.json_format import parse_json
from fhir_ccm.interactions.versions import LAST_UPDATED, instant_millis
from fhir_ccm.search.extract import extract_rows
from fhir_ccm.search.rows import DateRow
from fhir_ccm.store import Store

BATCH = 500


def reindex(store: Store, resource_type: str | None = None) -> int:
    """Index every live resource (of one type, or all) again; returns how many."""
    versions = list(store.iter_current(resource_type))
    for start in range(0, len(versions), BATCH):
        with store.atomic():
            for version in versions[start : start + BATCH]:
                assert version.json is not None
                resource = parse_json(version.json)
                moment = instant_millis(version.last_updated)
                rows = [row for row in extract_rows(resource) if row.param != LAST_UPDATED]
                rows.append(DateRow(LAST_UPDATED, moment, moment))
                store.replace_index(version.resource_type, version.id, rows)
    return len(versions)
