"""Stable identifiers of what the engine produces, so a later run finds and updates it.

Values derive from the patient id and the kind of resource (and, for an
issue, a digest of its type and implicated sources): the caller can search
``CarePlan?identifier=http://fhir-ccm.org/reconciliation|<patient id>/care-plan``.
"""

from __future__ import annotations

RECONCILIATION_SYSTEM = "http://fhir-ccm.org/reconciliation"

# The unified resource types and the kind named in their identifier.
KINDS: dict[str, str] = {"CarePlan": "care-plan", "List": "medication-list", "CareTeam": "care-team"}


def patient_id(patient: str) -> str:
    """``ccm-garcia`` from ``Patient/ccm-garcia`` (or from the bare id)."""
    return patient.split("/", 1)[1] if patient.startswith("Patient/") else patient


def unified_identifier(patient: str, resource_type: str) -> dict[str, str]:
    return {"system": RECONCILIATION_SYSTEM, "value": f"{patient_id(patient)}/{KINDS[resource_type]}"}


def issue_identifier(patient: str, digest: str) -> dict[str, str]:
    return {"system": RECONCILIATION_SYSTEM, "value": f"{patient_id(patient)}/issue/{digest}"}
