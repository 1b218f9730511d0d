"""The must-support report: which elements a profile flags ``mustSupport`` a resource populates.

Must-support is an obligation on systems, not on instances, so it is reported,
never validated: an auditor sees, per flagged element (and slice), how many
values the resource has there and where.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_ccm.validation.profiles.conformance import Found, collect
from fhir_ccm.validation.profiles.fhirpath import Env
from fhir_ccm.validation.profiles.model import Element
from fhir_ccm.validation.profiles.registry import Registry
from fhir_ccm.validation.profiles.slicing import assign
from fhir_ccm.validation.profiles.validator import Run


@dataclass(frozen=True)
class MustSupport:
    """One must-support element of a profile, and what the resource has there."""

    element: str  # element id, e.g. "CarePlan.category:assess"
    path: str  # element path, e.g. "CarePlan.category"
    populated: bool
    count: int
    expressions: tuple[str, ...]  # where the values are, e.g. ("CarePlan.category[0]",)


def report(resource: dict[str, Any], url: str, registry: Registry) -> list[MustSupport]:
    profile = registry.profile(url)
    if profile is None:
        raise LookupError(f"The profile {url} is not known")
    resource_type = resource.get("resourceType")
    if profile.type != resource_type:
        raise ValueError(f"The profile {url} is for {profile.type}, not {resource_type}")
    bundle = resource if resource_type == "Bundle" else None
    run = Run(registry, bundle)
    env = Env(resource, resource, run)
    out: list[MustSupport] = []
    _walk(run, profile.root, [(resource, resource_type, str(resource_type))], env, out)
    return out


def _walk(run: Run, element: Element, values: Found, env: Env, out: list[MustSupport]) -> None:
    for child in element.children.values():
        found: Found = []
        for value, _, path in values:
            if isinstance(value, dict):
                found.extend(collect(child, value, path)[0])
        _report(child, found, out)
        if child.slices:
            assigned = assign(run.profiles, child, found, env)
            for index, slice_element in enumerate(child.slices):
                matched = [entry for entry, slot in zip(found, assigned, strict=True) if slot == index]
                _report(slice_element, matched, out)
                _walk(run, slice_element, matched, env, out)
        if child.children:
            _walk(run, child, found, env, out)


def _report(element: Element, found: Found, out: list[MustSupport]) -> None:
    if element.must_support:
        expressions = tuple(path for _, _, path in found)
        out.append(MustSupport(element.id, element.path, bool(found), len(found), expressions))
