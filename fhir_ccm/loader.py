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

from fhir_ccm.errors import FhirError, Invalid
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


def resources_in(path: Path) -> Iterator[dict[str, Any]]:
    data = path.read_bytes()
    if path.suffix == ".ndjson":
        for number, line in enumerate(data.splitlines(), 1):
            if line.strip():
                try:
                    yield from _unpacked(parse_resource(line))
                except Invalid as error:
                    raise Invalid(f"line {number}: {error.message}", issues=error.issues) from None
        return
    resource = xml_to_resource(data) if path.suffix == ".xml" else parse_resource(data)
    yield from _unpacked(resource)


def _unpacked(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if resource.get("resourceType") == "Bundle" and resource.get("type") in UNPACKED_BUNDLE_TYPES:
        for entry in resource.get("entry", []):
            if isinstance(entry.get("resource"), dict):
                yield entry["resource"]
    else:
        yield resource


def load_paths(store: Store, paths: Iterable[str | Path], context: Context = LOCAL_CONTEXT) -> LoadReport:
    """Load every resource under ``paths``; failures are reported, the rest still loads."""
    report = LoadReport()
    assert report.failed is not None
    for path in files_under(paths):
        try:
            resources = list(resources_in(path))
        except (FhirError, OSError) as error:
            report.failed.append((str(path), str(error)))
            continue
        for resource in resources:
            try:
                _load_one(store, context, resource, report)
            except FhirError as error:
                details = "; ".join(
                    f"{', '.join(issue.expression)}: {issue.diagnostics}" if issue.expression else issue.diagnostics
                    for issue in error.issues
                )
                report.failed.append((f"{path} {resource.get('resourceType')}/{resource.get('id', '')}", details))
    return report


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
