"""Care coordination engine: one reconciled view of what several providers say about one patient.

Pure: the standard library and this package only (no Flask, no store), so the
``$reconcile`` operation, persistence and the command line are layered on top.

API
===

``reconcile(sources, patient, clock, new_id, assembler, previous=None, *, on_behalf_of=None) -> Reconciliation``

- ``sources``: resources as JSON dicts, in any order. The engine selects what
  the issue names itself (CarePlan active or on-hold; Goal; MedicationStatement;
  MedicationRequest with intent plan or order; CareTeam; entered-in-error
  left out), and uses Condition (for C1), Practitioner (for T1-T3) and
  Medication resources to resolve references: pass what the sources
  reference. Other types are ignored, and so is an earlier run's output
  (anything carrying a reconciliation identifier).
- ``patient``: the Patient resource, its id, or ``"Patient/<id>"``. A clinical
  source about another patient (or none) raises ``PatientMismatch`` (answer
  422); a source without resourceType or id, or with an element the engine
  reads in the wrong JSON shape (``shapes``), raises ``InvalidSource`` (422).
  Both are ``ReconcileError`` (a ``ValueError``).
- ``clock``: a FHIR instant (``2026-01-15T09:30:00Z``), used for
  ``Provenance.recorded``, ``List.date``, ``DetectedIssue.identifiedDateTime``
  and the Bundle timestamp.
- ``new_id(resource_type) -> id``: called in a fixed order (CarePlan, List,
  CareTeam unless ``previous`` has them, each new DetectedIssue in report
  order, three Provenances, the Bundle).
- ``assembler``: a Reference to the server as a Device or Organization
  (``{"reference": "Device/fhir-ccm"}``): the Provenance agent (type
  assembler) and, for a Device, the DetectedIssue author. ``on_behalf_of``:
  the Organization a Device acts for (US Core requires it for a Device agent).
- ``previous``: a ``Previous`` with the unified resources and DetectedIssues an
  earlier run stored (``Previous.from_resources(stored, patient)`` sorts them
  by identifier). Their ids are reused; a clinician-resolved issue (final with
  a mitigation) stays as stored while its implicated sources keep their
  ``meta.versionId``; open issues no longer found come back in
  ``Reconciliation.withdrawn_issues`` with status cancelled.

``Reconciliation`` holds ``care_plan``, ``medication_list``, ``care_team``,
``detected_issues``, ``provenances`` (resource dicts), ``conflicts`` (frozen
``Conflict`` values), ``withdrawn_issues``; ``resources()`` lists what to
store, ``bundle(base_url=None)`` gives the collection Bundle. Unified resources
carry the identifier ``http://fhir-ccm.org/reconciliation|<patient id>/care-plan``
(``medication-list``, ``care-team``; ``unified_identifier``), DetectedIssues
``<patient id>/issue/<digest>``, so a later run can find and update them.

Rules
=====

Medications (``medication_rules``; a position is what agreeing sources say):
M1 same ingredients, strength, route, form, daily dose and interval: one
entry, no issue; M2 daily dose differs: dose-conflict DOSE moderate; M3 same
daily dose, another interval: dose-conflict DOSEIVL low; M4 same ingredients by
another route or form (or shared in two products): duplicate-therapy DUPTHPGEN
moderate; M5 different ingredients of one ATC 4th level: duplicate-therapy
DUPTHPCLS moderate; M5b a listed pair: duplicate-therapy DUPTHPY high (wins
over M5); M6 active against stopped/completed/not-taken: status-conflict
moderate; M7 no RxNorm coding: an entry of its own flagged ``unverified``.
Goals (``goals``, ``targets``): G1 equal targets after conversion merge; G2
different targets: goal-conflict, low if they overlap, moderate if disjoint.
Care team (``careteam``, ``npi``): T1 same valid NPI and family name merge;
T2 same valid NPI, other family name: careteam-identity-conflict (KEY205) low;
T3 NPI failing the check: invalid-identifier (FORMAT) low, one per
Practitioner. Conditions (``conditions``): C1 one ``addresses`` entry per
(system, code).

A pair of disagreeing positions gets one DetectedIssue implicating all their
sources; three mutually different doses of one drug give three issues.
"""

from fhir_ccm.coordination.conflicts import Conflict
from fhir_ccm.coordination.engine import Previous, Reconciliation, reconcile
from fhir_ccm.coordination.errors import InvalidSource, PatientMismatch, ReconcileError
from fhir_ccm.coordination.identifiers import RECONCILIATION_SYSTEM, issue_identifier, unified_identifier

__all__ = [
    "RECONCILIATION_SYSTEM",
    "Conflict",
    "InvalidSource",
    "PatientMismatch",
    "Previous",
    "Reconciliation",
    "ReconcileError",
    "issue_identifier",
    "reconcile",
    "unified_identifier",
]
