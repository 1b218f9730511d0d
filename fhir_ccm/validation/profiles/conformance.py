"""Profile validation: what a profile adds to the base definition, checked on a resource.

Runs after the base walk, over the profile's element tree, visiting only the
elements the profile constrains (``model.annotate``): cardinality, narrowed
types and type profiles, target profiles of references, fixed and pattern
values, bindings, new invariants, maximum lengths and slicing (``slicing.py``).
Values of datatypes whose children the profile does not spell out are checked
against the datatype's profile when the element names one.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fhir_ccm.errors import Issue
from fhir_ccm.validation.profiles.fhirpath import Env
from fhir_ccm.validation.profiles.model import BACKBONE_TYPES, CompiledProfile, Element, TypeRef
from fhir_ccm.validation.profiles.navigation import ancestors
from fhir_ccm.validation.profiles.references import find_contained, parse_reference, type_of
from fhir_ccm.validation.profiles.slicing import check_slicing
from fhir_ccm.validation.profiles.values import a, deep_equal, pattern_matches

if TYPE_CHECKING:
    from fhir_ccm.validation.profiles.validator import Run

Found = list[tuple[Any, str | None, str]]  # value (None: only an id/extensions), type code, expression


class ProfileWalker:
    def __init__(self, run: Run) -> None:
        self.run = run

    def issue(self, code: str, message: str, path: str, severity: str = "error") -> None:
        self.run.issues.append(Issue(severity, code, message, (path,)))

    def resource(self, resource: dict[str, Any], profile: CompiledProfile, path: str) -> None:
        env = Env(resource, resource, self.run)
        self.value(profile.root, resource.get("resourceType"), resource, path, env)

    def value(self, element: Element, code: str | None, item: Any, path: str, env: Env) -> None:
        """Check one value against a profile element (and the elements below it)."""
        if code in ("Resource", "DomainResource") and isinstance(item, dict):
            code = item.get("resourceType")  # a contained or Bundle entry resource is of its own type
        if element.checks_types and code is not None and element.types:
            type_ref = _type_ref(element, code)
            if type_ref is None:
                allowed = ", ".join(sorted(element.type_codes))
                self.issue(
                    "structure", f"The type {code} is not allowed here by the profile (allowed: {allowed})", path
                )
                return
            if type_ref.profiles:
                self.type_profiles(type_ref, code, item, path, env)
            if type_ref.target_profiles and isinstance(item, dict):
                self.target_profiles(type_ref, item, path, env)
        if element.has_fixed and not deep_equal(item, element.fixed):
            self.issue("value", f"The value must be exactly {_show(element.fixed)} (fixed by the profile)", path)
        if element.has_pattern and not pattern_matches(item, element.pattern):
            self.issue("value", f"The value must match the pattern {_show(element.pattern)} of the profile", path)
        if element.checks_binding and element.binding is not None and code is not None:
            self.run.base.binding(element.binding, item, code, path)
        if element.max_length is not None and isinstance(item, str) and len(item) > element.max_length:
            self.issue(
                "value", f"The value is longer than {element.max_length} characters allowed by the profile", path
            )
        if element.new_constraints:
            node = element.path if code in BACKBONE_TYPES else code
            self.run.base.invariants(element.new_constraints, (item, code, node), path, env)
        if type(item) is dict and element.interesting_children:
            self.children(element, item, path, env)

    def children(self, parent: Element, value: dict[str, Any], path: str, env: Env) -> None:
        for child in parent.interesting_children:
            found, where = collect(child, value, path)
            self.values(child, found, where, env)

    def values(self, element: Element, found: Found, where: str, env: Env) -> None:
        """All values of one element: slicing, cardinality, then each value."""
        if element.slices or element.slicing:
            check_slicing(self, element, found, where, env)
        if element.checks_cardinality:
            count = len(found)
            if count < element.min:
                self.issue(
                    "required",
                    f"'{element.name}' needs at least {element.min} value(s) by the profile, found {count}",
                    where,
                )
            if element.max is not None and count > element.max:
                message = (
                    f"'{element.name}' is not allowed by the profile"
                    if element.max == 0
                    else f"'{element.name}' allows at most {element.max} value(s) by the profile, found {count}"
                )
                self.issue("structure", message, found[element.max][2] if element.max == 0 else where)
        for item, code, path in found:
            if item is not None:
                self.value(element, code, item, path, env)

    # ----------------------------------------------------------------------- types

    def type_profiles(self, type_ref: TypeRef, code: str, item: Any, path: str, env: Env) -> None:
        """The value conforms to (one of) the profiles of its type."""
        if code == "Extension" and isinstance(item, dict) and item.get("url") in type_ref.profiles:
            return  # the base walk checked the extension against its definition already
        profiles = []
        for url in type_ref.profiles:
            profile = self.run.registry.profile(url)
            if profile is None:
                self.issue(
                    "not-found",
                    f"The profile {url} is not known, so the value was not checked against it",
                    path,
                    "warning",
                )
            elif profile.kind == "resource" and isinstance(item, dict) and item.get("resourceType") != profile.type:
                self.issue(
                    "structure", f"The profile {url} is for {profile.type}, not {item.get('resourceType')}", path
                )
            elif not profile.is_core:
                profiles.append(profile)
        if len(profiles) == 1:
            self.value(profiles[0].root, code, item, path, env)
            return
        failures = []
        for profile in profiles:
            with self.run.capture() as issues:
                self.value(profile.root, code, item, path, env)
            if not any(issue.severity == "error" for issue in issues):
                return
            failures.append(profile.url)
        if failures:
            self.issue("structure", f"The value conforms to none of the profiles {', '.join(failures)}", path)

    def target_profiles(self, type_ref: TypeRef, value: dict[str, Any], path: str, env: Env) -> None:
        """A reference points to a resource of a type (and, when it can be resolved, a profile) allowed."""
        reference = value.get("reference")
        if not isinstance(reference, str):
            return
        profiles = [self.run.registry.profile(url) for url in type_ref.target_profiles]
        if any(profile is None for profile in profiles):
            return
        allowed = {profile.type for profile in profiles if profile is not None}
        resolved = self.run.find(reference, env.root)
        actual = type_of(resolved) if resolved is not None else parse_reference(reference).type
        if resolved is None and isinstance(value.get("type"), str):
            actual = actual or value["type"]
        where = f"{path}.reference"
        if actual is not None and "Resource" not in allowed and not ancestors(actual) & allowed:
            self.issue(
                "structure",
                f"A reference to {a(actual)} is not allowed here by the profile; it must be to "
                f"{' or '.join(sorted(allowed))}",
                where,
            )
            return
        if resolved is None or reference.startswith("#") and find_contained(env.root, reference) is None:
            return
        urls = [profile.url for profile in profiles if profile is not None and not profile.is_core]
        if urls and not any(self.run.conforms_to(resolved, url) for url in urls):
            self.issue("structure", f"The referenced resource does not conform to {' or '.join(urls)}", where)

    def conforms(self, element: Element, code: str | None, item: Any, env: Env) -> bool:
        """Whether a value passes a profile element's checks (for slices without discriminators)."""
        with self.run.capture() as issues:
            self.value(element, code, item, "", env)
        return not any(issue.severity == "error" for issue in issues)


def collect(element: Element, value: dict[str, Any], path: str) -> tuple[Found, str]:
    """The values of ``element`` in ``value`` (every JSON key of a choice), and the expression naming them."""
    keys_from = element.base if element.base is not None else element
    keys = keys_from.json_keys
    found: Found = []
    for key in keys:
        type_ref = keys_from.type_for_key(key)
        code = type_ref.code if type_ref is not None else ("BackboneElement" if element.children else None)
        item = value.get(key)
        if item is None:
            if "_" + key in value:
                found.append((None, code, f"{path}.{key}"))
            continue
        if type(item) is list:
            found.extend((entry, code, f"{path}.{key}[{index}]") for index, entry in enumerate(item))
        else:
            found.append((item, code, f"{path}.{key}"))
    return found, f"{path}.{keys[0] if len(keys) == 1 else element.name}"


def _type_ref(element: Element, code: str) -> TypeRef | None:
    for type_ref in element.types:
        if type_ref.code == code:
            return type_ref
    for type_ref in element.types:
        if type_ref.code in ancestors(code) or type_ref.code in ("Resource", "DomainResource"):
            return type_ref
    return None


def _show(value: Any) -> str:
    text = json.dumps(value, default=str, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= 200 else text[:197] + "..."
