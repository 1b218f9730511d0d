"""What the engine refuses to reconcile, named for the outcome the operation answers with."""

from __future__ import annotations


class ReconcileError(ValueError):
    "The sources cannot be reconciled as given (422 Unprocessable Entity)."


class PatientMismatch(ReconcileError):
    "A source is about another patient, or about no patient at all (422 Unprocessable Entity)."


class InvalidSource(ReconcileError):
    "A source the engine cannot read: no resourceType, no id, or an element of the wrong JSON shape (422)."
