"""Slicing (profiling.html#slicing): which slice each value belongs to, and the slicing rules.

A value belongs to the first slice whose discriminators all match it:

- ``value`` / ``pattern``: the value at the discriminator path equals (or
  contains) what the slice fixes there: a fixed or pattern value on the element
  at that path or on an ancestor, a required binding, or for an extension slice
  with a type profile the profile's url;
- ``exists``: the path has a value exactly when the slice requires one;
- ``type``: the value at the path has one of the slice's types (``resolve()``
  paths compare the referenced resource's type with the target profiles);
- ``profile``: the value at the path conforms to the slice's profile.

A slicing without discriminators matches a value to a slice it conforms to.
Then each slice's cardinality is checked, ``closed`` refuses unmatched values,
``openAtEnd`` wants them after all matched ones, ``ordered`` wants the slices
in order, and every matched value is checked against its slice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fhir_ccm.validation.profiles.fhirpath import Env, compile_native
from fhir_ccm.validation.profiles.model import BACKBONE_TYPES, Discriminator, Element, Slicing
from fhir_ccm.validation.profiles.navigation import ancestors
from fhir_ccm.validation.profiles.terminology import member
from fhir_ccm.validation.profiles.values import deep_equal, pattern_matches

if TYPE_CHECKING:
    from fhir_ccm.validation.profiles.conformance import Found, ProfileWalker

URL_SLICING = Slicing((Discriminator("value", "url"),), "open", False)
TYPE_SLICING = Slicing((Discriminator("type", "$this"),), "open", False)


def assign(walker: ProfileWalker, element: Element, found: Found, env: Env) -> list[int | None]:
    """The index of the slice each value belongs to (None: no slice)."""
    slicing = element.slicing or _default_slicing(element)
    assigned: list[int | None] = []
    for item, code, _ in found:
        match = None
        if item is not None:
            for index, slice_element in enumerate(element.slices):
                if _matches(walker, slice_element, slicing, item, code, env):
                    match = index
                    break
        assigned.append(match)
    return assigned


def check_slicing(walker: ProfileWalker, element: Element, found: Found, where: str, env: Env) -> None:
    slicing = element.slicing or _default_slicing(element)
    slices = element.slices
    assigned = assign(walker, element, found, env)
    for index, slice_element in enumerate(slices):
        count = assigned.count(index)
        if count < slice_element.min:
            walker.issue(
                "required",
                f"The slice '{slice_element.slice_name}' needs at least {slice_element.min} value(s), found {count}",
                where,
            )
        if slice_element.max is not None and count > slice_element.max:
            walker.issue(
                "structure",
                f"The slice '{slice_element.slice_name}' allows at most {slice_element.max} value(s), found {count}",
                where,
            )
    _rules(walker, element, slicing, found, assigned)
    for (item, code, path), slot in zip(found, assigned, strict=True):
        if slot is not None:
            walker.value(slices[slot], code, item, path, env)


def _default_slicing(element: Element) -> Slicing:
    return URL_SLICING if element.name in ("extension", "modifierExtension") else TYPE_SLICING


def _rules(walker: ProfileWalker, element: Element, slicing: Slicing, found: Found, assigned: list[int | None]) -> None:
    unmatched_seen = False
    highest = -1
    for (item, _, path), index in zip(found, assigned, strict=True):
        if index is None:
            unmatched_seen = True
            if slicing.rules == "closed":
                walker.issue(
                    "structure", f"The value matches no slice of {element.id}, and the slicing is closed", path
                )
            elif element.path == "Extension.extension" and _relative_url(item):
                walker.issue("structure", f"The extension defines no part '{item['url']}'", path)
            continue
        if slicing.rules == "openAtEnd" and unmatched_seen:
            walker.issue(
                "structure",
                f"Values in slices of {element.id} must come before the others (the slicing is open at the end)",
                path,
            )
        if slicing.ordered and index < highest:
            walker.issue("structure", f"The slices of {element.id} must appear in the order the profile defines", path)
        highest = max(highest, index)


def _relative_url(item: Any) -> bool:
    return isinstance(item, dict) and isinstance(item.get("url"), str) and ":" not in item["url"]


def _matches(
    walker: ProfileWalker, slice_element: Element, slicing: Slicing, item: Any, code: str | None, env: Env
) -> bool:
    if not slicing.discriminators:
        return walker.conforms(slice_element, code, item, env)
    return all(_discriminator(walker, slice_element, d, item, code, env) for d in slicing.discriminators)


def _discriminator(
    walker: ProfileWalker, slice_element: Element, discriminator: Discriminator, item: Any, code: str | None, env: Env
) -> bool:
    node = slice_element.path if code in BACKBONE_TYPES else code
    try:
        values = compile_native(discriminator.path)([(item, code, node)], env)
    except Exception:  # an unusable discriminator path matches nothing
        return False
    kind = discriminator.type
    if kind in ("value", "pattern"):
        expected = _cached(slice_element, discriminator, _expected)
        if expected is None:
            return False
        how, wanted = expected
        if how == "binding":
            expansion = walker.run.registry.expand(wanted)
            return expansion is not None and any(member(v[0], v[1] or "", expansion) for v in values)
        test = deep_equal if how == "fixed" else pattern_matches
        return bool(values) and all(any(test(v[0], w) for v in values) for w in wanted)
    if kind == "exists":
        target = _element_at(slice_element, discriminator.path)
        if target is None:
            return False
        if target.min >= 1:
            return bool(values)
        return not values if target.max == 0 else True
    if kind == "type":
        types = _cached(slice_element, discriminator, _expected_types)
        if discriminator.path.endswith("resolve()"):
            types = frozenset(_profile_type(walker, url) for url in types)
        return bool(types) and any(v[1] is not None and ancestors(v[1]) & types for v in values)
    if kind == "profile":
        urls = _cached(slice_element, discriminator, _expected_profiles)
        return any(_conforms(walker, v, url, env) for v in values for url in urls)
    return False


def _conforms(walker: ProfileWalker, value: tuple[Any, Any, Any], url: str, env: Env) -> bool:
    if isinstance(value[0], dict) and "resourceType" in value[0]:
        return walker.run.conforms_to(value[0], url) is True
    profile = walker.run.registry.profile(url)
    return profile is not None and walker.conforms(profile.root, value[1], value[0], env)


def _profile_type(walker: ProfileWalker, url: str) -> str:
    profile = walker.run.registry.profile(url)
    return profile.type if profile is not None else url.rsplit("/", 1)[-1]


def _cached(slice_element: Element, discriminator: Discriminator, compute: Any) -> Any:
    key = (compute.__name__, discriminator)
    if key not in slice_element.discriminator_cache:
        slice_element.discriminator_cache[key] = compute(slice_element, discriminator.path)
    return slice_element.discriminator_cache[key]


# --------------------------------------------------------------------------- what a slice expects


def segments(path: str) -> list[str]:
    """A discriminator path split at dots outside quotes and parentheses; ``$this`` is no segment."""
    parts, current, depth, quoted = [], "", 0, False
    for char in path:
        if char == "'":
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
        if char == "." and depth == 0 and not quoted:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [part for part in parts if part and part != "$this"]


def _child(element: Element, segment: str) -> Element | None:
    if segment.startswith("extension("):
        url = segment[len("extension(") : -1].strip("'\"")
        extension = element.children.get("extension")
        for candidate in extension.slices if extension is not None else ():
            if any(url in t.profiles for t in candidate.types):
                return candidate
        return None
    if segment.startswith(("ofType(", "as(")):
        return element
    return element.children.get(segment) or element.children.get(segment + "[x]")


def _element_at(slice_element: Element, path: str) -> Element | None:
    element: Element | None = slice_element
    for segment in segments(path):
        if element is None or segment == "resolve()":
            break
        element = _child(element, segment)
    return element


def _navigate(value: Any, names: list[str]) -> list[Any]:
    current = [value]
    for name in names:
        following: list[Any] = []
        for entry in current:
            if isinstance(entry, dict) and name in entry:
                child = entry[name]
                following.extend(child if isinstance(child, list) else [child])
        current = following
    return current


def _expected(slice_element: Element, path: str) -> tuple[str, Any] | None:
    names = segments(path)
    element = slice_element
    for position, segment in enumerate(names):
        if element.has_fixed:
            return "fixed", _navigate(element.fixed, names[position:])
        if element.has_pattern:
            return "pattern", _navigate(element.pattern, names[position:])
        child = _child(element, segment)
        if child is None:
            profiles = [p for t in element.types if t.code == "Extension" for p in t.profiles]
            if names[position:] == ["url"] and profiles:
                return "fixed", [profiles[0]]
            return None
        element = child
    if element.has_fixed:
        return "fixed", [element.fixed]
    if element.has_pattern:
        return "pattern", [element.pattern]
    if element.binding is not None and element.binding[0] == "required":
        return "binding", element.binding[1]
    return None


def _expected_types(slice_element: Element, path: str) -> frozenset[str]:
    target = _element_at(slice_element, path)
    if target is None:
        return frozenset()
    if path.endswith("resolve()"):
        return frozenset(url for t in target.types for url in t.target_profiles)
    return target.type_codes


def _expected_profiles(slice_element: Element, path: str) -> tuple[str, ...]:
    target = _element_at(slice_element, path)
    if target is None:
        return ()
    if path.endswith("resolve()"):
        return tuple(url for t in target.types for url in t.target_profiles)
    return tuple(url for t in target.types for url in t.profiles)
