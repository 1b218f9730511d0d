"""Loading resources from files: JSON resources, Bundles, ndjson and XML.

Every resource goes through the update interaction with its own id, so loading
the same files twice creates no duplicates and no new versions. Resources
without an id are created. Entries of batch and transaction Bundles and of
collections are loaded one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhir_ccm.errors import FhirError
from fhir_ccm.formats.json_format import parse_resource
from fhir_ccm.formats.xml_format import xml_to_resource
from fhir_ccm.interactions import LOCAL_CONTEXT, Context
from fhir_ccm.interactions.create import create
from fhir_ccm.interactions.update import update
from fhir_ccm.interactions.validate import files_under
from fhir_ccm.store import Store

UNPACKED_BUNDLE_TYPES = frozenset({"transaction", "batch", "collection"})


@dataclass
class LoadReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] | None = None

    def __post_init__(self) -> None:
        self.failed = self.failed or []


def documents_in(path: Path) -> Iterator[tuple[str, dict[str, Any] | FhirError]]:
    """Each document of a file with where it is: the file, or ``file line N`` for ndjson.

    A document that does not parse comes as its error, so one bad line of a large
    ndjson export is reported while the lines around it still load.
    """
    data = path.read_bytes()
    if path.suffix != ".ndjson":
        try:
            yield str(path), xml_to_resource(data) if path.suffix == ".xml" else parse_resource(data)
        except FhirError as error:
            yield str(path), error
        return
    for number, line in enumerate(data.splitlines(), 1):
        if line.strip():
            try:
                yield f"{path} line {number}", parse_resource(line)
            except FhirError as error:
                yield f"{path} line {number}", error


def _unpacked(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if resource.get("resourceType") == "Bundle" and resource.get("type") in UNPACKED_BUNDLE_TYPES:
        for entry in resource.get("entry", []):
            if isinstance(entry.get("resource"), dict):
                yield entry["resource"]
    else:
        yield resource


def load_paths(store: Store, paths: Iterable[str | Path], context: Context = LOCAL_CONTEXT) -> LoadReport:
    """Load every resource under ``paths``; a failing file, ndjson line or resource is reported, the rest loads."""
    report = LoadReport()
    assert report.failed is not None
    for path in files_under(paths):
        try:
            documents = list(documents_in(path))
        except OSError as error:
            report.failed.append((str(path), str(error)))
            continue
        for where, document in documents:
            if isinstance(document, FhirError):
                report.failed.append((where, _details(document)))
                continue
            for resource in _unpacked(document):
                try:
                    _load_one(store, context, resource, report)
                except FhirError as error:
                    label = f"{where} {resource.get('resourceType')}/{resource.get('id', '')}"
                    report.failed.append((label, _details(error)))
    return report


def _details(error: FhirError) -> str:
    return "; ".join(
        f"{', '.join(issue.expression)}: {issue.diagnostics}" if issue.expression else issue.diagnostics
        for issue in error.issues
    )


def _load_one(store: Store, context: Context, resource: dict[str, Any], report: LoadReport) -> None:
    resource_type = str(resource.get("resourceType"))
    if "id" not in resource:
        create(store, context, resource_type, resource)
        report.created += 1
        return
    result = update(store, context, resource_type, str(resource["id"]), resource)
    if result.status == 201:
        report.created += 1
    elif result.message.endswith("unchanged"):
        report.unchanged += 1
    else:
        report.updated += 1
