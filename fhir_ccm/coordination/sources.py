"""The input of a reconciliation: sorted by kind, selected, and checked to be about one patient.

The engine applies the issue's selection itself, so a caller may pass every
resource of the patient's compartment plus what those resources reference:

- CarePlan with status active or on-hold;
- MedicationRequest with intent plan or order;
- MedicationStatement, Goal, CareTeam and Condition unless entered-in-error
  (Goals also unless cancelled or rejected: they are no longer anyone's target);
- Practitioner, Medication, Organization, PractitionerRole and Patient only to
  resolve references; any other type is ignored.

Every element the engine reads must have its FHIR JSON shape (``shapes``),
else ``InvalidSource``. Every clinical source must have ``subject`` the patient; one that names another
patient, or none, raises ``PatientMismatch``. The same ``Type/id`` given twice
counts once (the higher ``meta.versionId`` wins). A resource carrying a
reconciliation identifier is an earlier run's output, never a source.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fhir_ccm.coordination.errors import InvalidSource, PatientMismatch
from fhir_ccm.coordination.identifiers import RECONCILIATION_SYSTEM
from fhir_ccm.coordination.references import as_object, key_of, person_name, reference_key
from fhir_ccm.coordination.shapes import check_shape

Selector = Callable[[dict[str, Any]], bool]


def _not_in_error(resource: dict[str, Any]) -> bool:
    return resource.get("status") != "entered-in-error"


def _condition_selected(resource: dict[str, Any]) -> bool:
    codings = (resource.get("verificationStatus") or {}).get("coding") or []
    return not any(isinstance(c, dict) and c.get("code") == "entered-in-error" for c in codings)


# The clinical kinds: which resources of each type take part.
SELECTED: dict[str, Selector] = {
    "CarePlan": lambda r: r.get("status") in ("active", "on-hold"),
    "Goal": lambda r: r.get("lifecycleStatus") not in ("entered-in-error", "cancelled", "rejected"),
    "MedicationStatement": _not_in_error,
    "MedicationRequest": lambda r: r.get("intent") in ("plan", "order") and _not_in_error(r),
    "CareTeam": _not_in_error,
    "Condition": _condition_selected,
}
LOOKUP_TYPES = frozenset({"Practitioner", "Medication", "Organization", "PractitionerRole", "Patient"})


@dataclass(frozen=True)
class Sources:
    """Selected sources by kind, each tuple sorted by key; ``lookup`` resolves references."""

    patient: str
    patient_display: str | None
    care_plans: tuple[dict[str, Any], ...]
    goals: tuple[dict[str, Any], ...]
    medications: tuple[dict[str, Any], ...]
    care_teams: tuple[dict[str, Any], ...]
    conditions: tuple[dict[str, Any], ...]
    lookup: dict[str, dict[str, Any]]

    def resolve(self, reference: Any) -> dict[str, Any] | None:
        key = reference_key(reference)
        return self.lookup.get(key) if key else None


def patient_key(patient: dict[str, Any] | str) -> str:
    """``Patient/id`` from a Patient resource, an id, or a reference string."""
    if isinstance(patient, dict):
        if patient.get("resourceType") != "Patient" or not patient.get("id"):
            raise PatientMismatch("The patient must be a Patient resource with an id")
        return f"Patient/{patient['id']}"
    key = reference_key(patient) if "/" in patient else f"Patient/{patient}"
    if not key or not key.startswith("Patient/"):
        raise PatientMismatch(f"{patient!r} does not name a Patient")
    return key


def collect(resources: Sequence[dict[str, Any]], patient: dict[str, Any] | str) -> Sources:
    key = patient_key(patient)
    latest = _deduplicated(resources)
    for resource in latest.values():
        _check_subject(resource, key)
    lookup = {k: r for k, r in latest.items() if r["resourceType"] in LOOKUP_TYPES or r["resourceType"] in SELECTED}
    other = next((k for k in lookup if k.startswith("Patient/") and k != key), None)
    if other:
        raise PatientMismatch(f"The sources include {other}, another patient than {key}")
    display = person_name(patient) if isinstance(patient, dict) else None
    if display is None and key in lookup:
        display = person_name(lookup[key])

    def kind(*resource_types: str) -> tuple[dict[str, Any], ...]:
        chosen = (r for _, r in sorted(latest.items()) if r["resourceType"] in resource_types)
        return tuple(r for r in chosen if SELECTED[r["resourceType"]](r) and not _is_output(r))

    return Sources(
        patient=key,
        patient_display=display,
        care_plans=kind("CarePlan"),
        goals=kind("Goal"),
        medications=kind("MedicationStatement", "MedicationRequest"),
        care_teams=kind("CareTeam"),
        conditions=kind("Condition"),
        lookup=lookup,
    )


def _is_output(resource: dict[str, Any]) -> bool:
    identifiers = resource.get("identifier") or []
    return any(isinstance(i, dict) and i.get("system") == RECONCILIATION_SYSTEM for i in identifiers)


def _deduplicated(resources: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for resource in resources:
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise InvalidSource("Every source must be a FHIR resource (a JSON object with a resourceType)")
        if not isinstance(resource.get("id"), str) or not resource["id"]:
            raise InvalidSource(f"A {resource['resourceType']} source has no id, so nothing could cite it")
        check_shape(resource)
        key = key_of(resource)
        if key not in latest or _recency(resource) > _recency(latest[key]):
            latest[key] = resource
    return latest


def _recency(resource: dict[str, Any]) -> tuple[int, str, str]:
    """Orders two copies of one resource: version number, then lastUpdated, then content."""
    meta = as_object(resource.get("meta"))
    version = str(meta.get("versionId", ""))
    number = int(version) if version.isdigit() else -1
    return number, str(meta.get("lastUpdated", "")), json.dumps(resource, sort_keys=True, default=str)


def _check_subject(resource: dict[str, Any], patient: str) -> None:
    if resource["resourceType"] not in SELECTED:
        return
    subject = resource.get("subject")
    found = reference_key(subject)
    if found != patient:
        named = f"about {found}" if found else "about no identifiable patient"
        raise PatientMismatch(f"{key_of(resource)} is {named}; every source must be about {patient}")
