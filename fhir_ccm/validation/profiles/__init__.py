"""Validation of resources against the R4 base definitions and against profiles.

API
---

``validate(resource, profiles=(), registry=None, mode=None) -> list[Issue]``
    Every problem of ``resource``, never stopping at the first. Base R4
    validation always runs (structure, cardinality, types and choices, unknown
    elements, primitive formats, bindings, references, contained resources,
    narrative XHTML, invariants); then the resource is validated against each
    profile url in ``profiles`` and in its ``meta.profile``. A profile the
    registry does not know gives a *warning* with code ``not-found`` on
    ``<Type>`` (asked for) or ``<Type>.meta.profile[i]`` (claimed): callers that
    require the profile turn it into an error by that code. ``mode`` is
    ``$validate``'s: ``"update"`` also requires an id, ``"delete"`` checks nothing
    (deleting is a business rule), ``"create"`` and None check the content.

    Every ``Issue`` has a severity (error, warning, information), an IssueType
    code, a message and one FHIRPath-like expression naming the value with its
    indexes and JSON names: ``CarePlan.activity[1].detail.code``,
    ``Observation.valueQuantity.code``, ``Patient.name[0].given[1]``. Codes used:
    ``structure`` (unknown element, wrong JSON shape, too many values, wrong type,
    wrong reference target, slicing rules), ``required`` (missing mandatory
    values, slice minimums), ``value`` (bad primitive, fixed/pattern mismatch,
    bad reference form, bad narrative XML), ``code-invalid`` (bindings: error
    for required, warning for extensible, information for preferred),
    ``invariant`` (a constraint failed, its key in the message), ``not-found``
    (unknown profile or extension), ``invalid`` (profile for another type),
    ``informational`` (a constraint could not be evaluated on this resource).

``Registry``
    StructureDefinitions, ValueSets and CodeSystems beyond the core:
    ``add(resource)``, ``load_paths(paths)`` (files, folders, Bundles),
    ``load_store(store)`` (the server's stored conformance resources),
    ``profile(url) -> CompiledProfile | None``, ``expand(url)``. A
    differential-only StructureDefinition gets its snapshot generated on add.

``validate_parts(resource, profiles=(), registry=None, mode=None, invariants=True)``
    The same issues as two lists, base R4's and the profiles'; without
    invariants the base walk is the structural check of every write.

``must_support_report(resource, profile_url, registry=None) -> list[MustSupport]``
    For each ``mustSupport`` element (and slice) of the profile: whether and
    where the resource populates it. Raises ``LookupError`` for an unknown
    profile, ``ValueError`` for a profile of another type.

``generate_snapshot(structure_definition, lookup)``
    The snapshot of a differential, from its base (``snapshot.py``).

``SKIPPED_INVARIANTS`` / ``NATIVE_INVARIANTS``
    Invariants not evaluated (with why) and those coded natively.

Performance: everything per definition (element trees, JSON key maps,
regexes, FHIRPath) is compiled once and cached; FHIRPath is compiled to Python
closures (``fhirpath.py``), with fhirpathpy as the fallback for anything the
native compiler does not cover.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fhir_ccm.errors import Issue
from fhir_ccm.validation.profiles.invariants import NATIVE as NATIVE_INVARIANTS
from fhir_ccm.validation.profiles.invariants import SKIPPED as SKIPPED_INVARIANTS
from fhir_ccm.validation.profiles.model import CompiledProfile
from fhir_ccm.validation.profiles.mustsupport import MustSupport, report
from fhir_ccm.validation.profiles.registry import Registry, default_registry
from fhir_ccm.validation.profiles.snapshot import SnapshotError, generate_snapshot
from fhir_ccm.validation.profiles.validator import MODES, profile_urls, run_validation, run_validation_parts

__all__ = [
    "MODES",
    "NATIVE_INVARIANTS",
    "SKIPPED_INVARIANTS",
    "CompiledProfile",
    "MustSupport",
    "Registry",
    "SnapshotError",
    "generate_snapshot",
    "must_support_report",
    "profile_urls",
    "validate",
    "validate_parts",
]


def validate(
    resource: dict[str, Any],
    profiles: Sequence[str] = (),
    registry: Registry | None = None,
    mode: str | None = None,
) -> list[Issue]:
    """Every issue of ``resource`` against base R4 and the profiles (see the module docstring)."""
    return run_validation(resource, profiles, registry or default_registry(), mode)


def validate_parts(
    resource: dict[str, Any],
    profiles: Sequence[str] = (),
    registry: Registry | None = None,
    mode: str | None = None,
    invariants: bool = True,
) -> tuple[list[Issue], list[Issue]]:
    """``validate``'s issues in two lists: base R4's, then the profiles'.

    ``invariants=False`` evaluates no FHIRPath constraint: what is left of the
    base walk is the structural check every write passes.
    """
    return run_validation_parts(resource, profiles, registry or default_registry(), mode, invariants)


def must_support_report(
    resource: dict[str, Any], profile_url: str, registry: Registry | None = None
) -> list[MustSupport]:
    """What ``resource`` has at each must-support element of the profile."""
    return report(resource, profile_url, registry or default_registry())
