"""``$reconcile``: the coordination engine as an operation on the server.

``POST Patient/{id}/$reconcile`` gathers what the providers stored about the
patient (CarePlans, Goals, MedicationStatements, MedicationRequests,
CareTeams, and the Conditions, Practitioners and Medications they reference),
runs the pure engine and answers its collection Bundle. With ``persist=true``
the output is stored in one transaction: a later run finds the unified
resources by identifier and updates them, and clinician-resolved
DetectedIssues stay resolved. ``POST $reconcile`` with a collection Bundle
reconciles the given sources and stores nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fhir_ccm.coordination import RECONCILIATION_SYSTEM, Previous, ReconcileError, Reconciliation, reconcile
from fhir_ccm.errors import Invalid, NotFound, Unprocessable
from fhir_ccm.formats.json_format import parse_json
from fhir_ccm.ids import new_id
from fhir_ccm.interactions import Context, Result
from fhir_ccm.interactions.references import references_in
from fhir_ccm.interactions.resource_types import require_id
from fhir_ccm.interactions.update import update
from fhir_ccm.search.parse import MAX_COUNT, parse_search
from fhir_ccm.store import Store
from fhir_ccm.store.sqlite import format_instant

ASSEMBLER_ID = "fhir-ccm"
ASSEMBLER = {"reference": f"Device/{ASSEMBLER_ID}", "display": "fhir-ccm reconciliation engine"}
ASSEMBLER_DEVICE = {
    "resourceType": "Device",
    "id": ASSEMBLER_ID,
    "status": "active",
    "deviceName": [{"name": "fhir-ccm reconciliation engine", "type": "user-friendly-name"}],
}
SOURCE_TYPES = ("CarePlan", "Goal", "MedicationStatement", "MedicationRequest", "CareTeam")
REFERENCED_TYPES = ("Condition", "Practitioner", "Medication")


def parse_persist(body: dict[str, Any] | None) -> bool:
    """The optional Parameters body: ``persist`` (valueBoolean), false by default."""
    if body is None:
        return False
    if body.get("resourceType") != "Parameters":
        raise Invalid("$reconcile takes a Parameters body (or none)")
    persist = False
    for parameter in body.get("parameter") or []:
        if parameter.get("name") == "persist":
            if not isinstance(parameter.get("valueBoolean"), bool):
                raise Invalid("The persist parameter takes a valueBoolean")
            persist = parameter["valueBoolean"]
        else:
            raise Invalid(f"Unknown $reconcile parameter '{parameter.get('name')}'")
    return persist


def _all_matches(store: Store, resource_type: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Every live resource a search finds, however many pages it takes."""
    query = parse_search((resource_type,), [*params, ("_count", str(MAX_COUNT))])
    found: list[dict[str, Any]] = []
    page = store.search(query)
    while True:
        found += [parse_json(version.json) for version in page.matches if version.json]
        if page.snapshot is None or page.total is None or page.offset + query.count >= page.total:
            return found
        query = parse_search(
            (resource_type,),
            [
                *params,
                ("_count", str(MAX_COUNT)),
                ("_snapshot", page.snapshot),
                ("_offset", str(page.offset + query.count)),
            ],
        )
        page = store.search(query)


def _is_unified(resource: dict[str, Any]) -> bool:
    """Output of an earlier run: never a source of a later one."""
    return any(identifier.get("system") == RECONCILIATION_SYSTEM for identifier in resource.get("identifier") or [])


def gather_sources(store: Store, patient_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(sources about the patient with what they reference, what earlier runs stored)."""
    patient = f"Patient/{patient_id}"
    sources, previous = [], []
    for resource_type in (*SOURCE_TYPES, "List"):
        for resource in _all_matches(store, resource_type, [("patient", patient)]):
            if _is_unified(resource):
                previous.append(resource)
            elif resource_type in SOURCE_TYPES:
                sources.append(resource)
    previous += _all_matches(
        store, "DetectedIssue", [("patient", patient), ("identifier", f"{RECONCILIATION_SYSTEM}|")]
    )
    referenced = []
    for reference in sorted(set(references_in(sources))):
        resource_type, _, id = reference.partition("/")
        if resource_type in REFERENCED_TYPES and id and "/" not in id:
            stored = store.read(resource_type, id)
            if stored is not None and stored.json is not None:
                referenced.append(parse_json(stored.json))
    return sources + referenced, previous


def _clock() -> str:
    return format_instant(datetime.now(UTC))


def _new_id(resource_type: str) -> str:
    return new_id()


def _run_engine(
    sources: list[dict[str, Any]], patient: dict[str, Any] | str, previous: Previous | None
) -> Reconciliation:
    try:
        return reconcile(sources, patient, _clock(), _new_id, ASSEMBLER, previous)
    except ReconcileError as error:
        raise Unprocessable(str(error)) from None


def reconcile_patient(store: Store, context: Context, patient_id: str, persist: bool = False) -> Result:
    require_id(patient_id)
    stored = store.read("Patient", patient_id)
    if stored is None or stored.deleted or stored.json is None:
        raise NotFound(f"Patient/{patient_id} is not known")
    patient = parse_json(stored.json)
    sources, stored_outputs = gather_sources(store, patient_id)
    previous = Previous.from_resources(stored_outputs, patient) if stored_outputs else None
    if not persist:
        return Result(200, resource=_run_engine(sources, patient, previous).bundle(context.base_url))
    with store.atomic():
        # Gathered again under the write lock, so two runs at once cannot both create unified resources.
        sources, stored_outputs = gather_sources(store, patient_id)
        previous = Previous.from_resources(stored_outputs, patient) if stored_outputs else None
        result = _run_engine(sources, patient, previous)
        update(store, context, "Device", ASSEMBLER_ID, ASSEMBLER_DEVICE)
        for resource in [*result.resources(), *result.withdrawn_issues]:
            update(store, context, resource["resourceType"], resource["id"], resource)
    return Result(200, resource=result.bundle(context.base_url), message="Reconciliation stored")


def reconcile_bundle(store: Store, context: Context, bundle: dict[str, Any]) -> Result:
    """Reconcile the sources of a collection Bundle; nothing is stored."""
    if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "collection":
        raise Invalid("$reconcile at the base takes a Bundle of type collection holding the sources")
    sources = [entry["resource"] for entry in bundle.get("entry") or [] if isinstance(entry.get("resource"), dict)]
    patients = [r for r in sources if r.get("resourceType") == "Patient"]
    patient = patients[0] if len(patients) == 1 else _subject_of(sources)
    return Result(200, resource=_run_engine(sources, patient, None).bundle(context.base_url))


def _subject_of(sources: list[dict[str, Any]]) -> str:
    for resource in sources:
        for key in ("subject", "patient"):
            reference = (resource.get(key) or {}).get("reference") if isinstance(resource.get(key), dict) else None
            if isinstance(reference, str) and reference.startswith("Patient/"):
                return reference
    raise Unprocessable("None of the sources names a patient")
