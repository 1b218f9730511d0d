"""One validation run: the base walk, then each profile, with the issues collected.

``Run`` is also the FHIRPath services: ``resolve()`` looks in the container's
``contained`` and the Bundle being validated (else a stub with the type read
from the reference), ``conformsTo()`` validates the resource against the
profile in a nested run, ``memberOf()`` uses the registry's expansions and
``htmlChecks()`` the narrative rules.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from fhir_ccm.errors import Issue
from fhir_ccm.validation.profiles.base import BaseWalker
from fhir_ccm.validation.profiles.conformance import ProfileWalker
from fhir_ccm.validation.profiles.fhirpath import Env
from fhir_ccm.validation.profiles.narrative import html_checks
from fhir_ccm.validation.profiles.references import BundleIndex, find_contained, stub
from fhir_ccm.validation.profiles.registry import Registry
from fhir_ccm.validation.profiles.terminology import member
from fhir_ccm.validation.profiles.values import Item

MODES = (None, "create", "update", "delete")
MAX_NESTING = 4  # conformsTo() inside conformsTo() ...


class Run:
    def __init__(
        self, registry: Registry, bundle: dict[str, Any] | None = None, depth: int = 0, invariants: bool = True
    ) -> None:
        self.registry = registry
        self.issues: list[Issue] = []
        self.base_issue_count = 0  # the issues of the base walk come first
        self.invariants = invariants  # False: no FHIRPath constraint is evaluated (the structural check on write)
        self.bundle = BundleIndex(bundle) if bundle is not None else None
        self.depth = depth
        self.base = BaseWalker(self)
        self.profiles = ProfileWalker(self)

    @contextmanager
    def capture(self) -> Iterator[list[Issue]]:
        """Collect the issues of a trial check apart (slice matching, alternative profiles)."""
        saved = self.issues
        self.issues = []
        try:
            yield self.issues
        finally:
            self.issues = saved

    def validate(self, resource: Any, profiles: Sequence[str], mode: str | None) -> list[Issue]:
        self.base.resource(resource, "")
        self.base_issue_count = len(self.issues)
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            return self.issues
        resource_type = resource["resourceType"]
        if mode == "update" and not resource.get("id"):
            self.issues.append(
                Issue("error", "required", "An update needs the id of the resource", (f"{resource_type}.id",))
            )
        for url, expression in profile_urls(resource, profiles):
            self.profile(resource, url, expression)
        return self.issues

    def profile(self, resource: dict[str, Any], url: str, expression: str) -> None:
        profile = self.registry.profile(url)
        resource_type = resource["resourceType"]
        if profile is None:
            why = self.registry.problem(url)
            self.issues.append(
                Issue(
                    "warning",
                    "not-found",
                    f"The profile {url} is not known{f' ({why})' if why else ''}; "
                    "the resource was not validated against it",
                    (expression,),
                )
            )
        elif profile.type != resource_type:
            self.issues.append(
                Issue(
                    "error", "invalid", f"The profile {url} is for {profile.type}, not {resource_type}", (expression,)
                )
            )
        elif not profile.is_core:
            self.profiles.resource(resource, profile, resource_type)

    # ----------------------------------------------------------------------- FHIRPath services

    def find(self, reference: str, root: dict[str, Any]) -> dict[str, Any] | None:
        """The resource a reference points to inside what is being validated."""
        if reference.startswith("#"):
            return find_contained(root, reference)
        return self.bundle.find(reference) if self.bundle is not None else None

    def resolve(self, reference: str, env: Env) -> dict[str, Any] | None:
        found = self.find(reference, env.root)
        return found if found is not None else stub(reference)

    def conforms_to(self, resource: dict[str, Any], url: str) -> bool | None:
        if self.depth >= MAX_NESTING or self.registry.profile(url) is None:
            return None
        nested = Run(self.registry, depth=self.depth + 1)
        nested.bundle = self.bundle
        issues = nested.validate(resource, [url], None)
        return not any(issue.severity in ("error", "fatal") for issue in issues)

    def member_of(self, item: Item, url: str) -> bool | None:
        expansion = self.registry.expand(url)
        if expansion is None:
            return None
        return member(item[0], item[1] or "", expansion)

    def html_checks(self, div: str) -> bool:
        return html_checks(div)


def profile_urls(resource: dict[str, Any], profiles: Sequence[str]) -> list[tuple[str, str]]:
    """The profiles asked for, then those the resource claims (``meta.profile``), each once."""
    resource_type = resource["resourceType"]
    urls = {url: resource_type for url in profiles}
    meta = resource.get("meta")
    claimed = meta.get("profile") if isinstance(meta, dict) else None
    if isinstance(claimed, list):
        for index, url in enumerate(claimed):
            if isinstance(url, str):
                urls.setdefault(url, f"{resource_type}.meta.profile[{index}]")
    return list(urls.items())


def run_validation(resource: Any, profiles: Sequence[str], registry: Registry, mode: str | None) -> list[Issue]:
    base, profiled = run_validation_parts(resource, profiles, registry, mode)
    return list(dict.fromkeys(base + profiled))


def run_validation_parts(
    resource: Any, profiles: Sequence[str], registry: Registry, mode: str | None, invariants: bool = True
) -> tuple[list[Issue], list[Issue]]:
    """The issues of the base walk and those of the profiles, each without repeats."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of create, update, delete or None, not {mode!r}")
    if mode == "delete":
        return [], []
    bundle = resource if isinstance(resource, dict) and resource.get("resourceType") == "Bundle" else None
    run = Run(registry, bundle, invariants=invariants)
    issues = run.validate(resource, profiles, mode)
    cut = run.base_issue_count
    return list(dict.fromkeys(issues[:cut])), list(dict.fromkeys(issues[cut:]))
