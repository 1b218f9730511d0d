"""StructureDefinition snapshots compiled into element trees, once per definition.

An ``Element`` is one ElementDefinition with what the walks need precomputed:
its JSON keys (``value[x]`` gives ``valueQuantity``...), child elements by
name, mandatory children, compiled invariants, fixed/pattern values, binding,
slicing and slices. Children of a datatype that the snapshot does not spell out
come from the datatype's own definition (``core_profile(type)``).

For a profile (``derivation = constraint``) each element is also compared with
the base R4 element at the same place (``annotate``): only what a profile adds
(tighter cardinality, narrowed types, target profiles, fixed and pattern values,
other bindings, new invariants, slicing) is checked by the profile walk, and
subtrees the profile leaves alone are never visited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import Any

from fhir_ccm.definitions import CORE_PREFIX, structure_definitions
from fhir_ccm.definitions.elements import FHIR_TYPE_EXTENSION, FHIRPATH_SYSTEM
from fhir_ccm.validation.profiles.invariants import NATIVE, Invariant, from_constraint
from fhir_ccm.validation.profiles.primitives import PrimitiveSpec, primitive_spec

RESOURCE = "Resource"
BACKBONE_TYPES = frozenset({"BackboneElement", "Element"})


@dataclass(frozen=True)
class TypeRef:
    """One allowed type of an element, with its profiles."""

    code: str
    profiles: tuple[str, ...] = ()
    target_profiles: tuple[str, ...] = ()
    primitive: PrimitiveSpec | None = field(default=None, compare=False)

    @cached_property
    def target_types(self) -> frozenset[str] | None:
        """Resource types a core-only ``targetProfile`` list allows; None for any (or non-core profiles)."""
        if not self.target_profiles:
            return None
        names = set()
        for url in self.target_profiles:
            if not url.startswith(CORE_PREFIX):
                return None
            names.add(url[len(CORE_PREFIX) :])
        return None if RESOURCE in names else frozenset(names)


@dataclass(frozen=True)
class Discriminator:
    type: str  # value | pattern | type | profile | exists
    path: str


@dataclass(frozen=True)
class Slicing:
    discriminators: tuple[Discriminator, ...]
    rules: str  # open | closed | openAtEnd
    ordered: bool


def _type_code(entry: dict[str, Any]) -> str:
    code = str(entry.get("code", ""))
    if code.startswith(FHIRPATH_SYSTEM):
        for extension in entry.get("extension", []):
            if extension.get("url") == FHIR_TYPE_EXTENSION:
                return str(extension.get("valueUrl") or extension.get("valueUri") or "string")
        return "string"
    return code


def _value_of(definition: dict[str, Any], prefix: str) -> tuple[bool, Any]:
    for key, value in definition.items():
        if key.startswith(prefix) and key[len(prefix) : len(prefix) + 1].isupper():
            return True, value
    return False, None


def json_key(name: str, code: str) -> str:
    """The JSON property of element ``name`` holding type ``code``."""
    return name[:-3] + code[0].upper() + code[1:] if name.endswith("[x]") else name


class Element:
    """One compiled ElementDefinition."""

    def __init__(self, definition: dict[str, Any]) -> None:
        self.definition = definition
        self.id: str = definition.get("id") or definition["path"]
        self.path: str = definition["path"]
        self.name: str = self.path.rsplit(".", 1)[-1]
        self.slice_name: str | None = definition.get("sliceName")
        self.min: int = int(definition.get("min", 0))
        maximum = str(definition.get("max", "*"))
        self.max: int | None = None if maximum == "*" else int(maximum)
        base_max = str((definition.get("base") or {}).get("max", maximum))
        self.is_array = base_max != "1"
        self.types: tuple[TypeRef, ...] = tuple(
            TypeRef(
                _type_code(entry),
                tuple(entry.get("profile", ())),
                tuple(entry.get("targetProfile", ())),
                primitive_spec(_type_code(entry)),
            )
            for entry in definition.get("type", ())
        )
        self.is_choice = self.name.endswith("[x]")
        self.content_reference: str | None = definition.get("contentReference")
        self.has_fixed, self.fixed = _value_of(definition, "fixed")
        self.has_pattern, self.pattern = _value_of(definition, "pattern")
        binding = definition.get("binding") or {}
        value_set = binding.get("valueSet")
        self.binding: tuple[str, str] | None = (
            (binding.get("strength", "example"), value_set.split("|", 1)[0]) if value_set else None
        )
        constraints = [from_constraint(c) for c in definition.get("constraint", ())]
        self.constraint_keys = frozenset(c.key for c in constraints)
        self.constraints: tuple[Invariant, ...] = tuple(c for c in constraints if c.key not in NATIVE)
        slicing = definition.get("slicing")
        self.slicing: Slicing | None = (
            Slicing(
                tuple(Discriminator(d["type"], d["path"]) for d in slicing.get("discriminator", ())),
                slicing.get("rules", "open"),
                bool(slicing.get("ordered", False)),
            )
            if slicing
            else None
        )
        self.must_support = bool(definition.get("mustSupport"))
        self.is_modifier = bool(definition.get("isModifier"))
        self.max_length: int | None = definition.get("maxLength")
        self.children: dict[str, Element] = {}
        self.slices: list[Element] = []
        self.keys: dict[str, tuple[Element, TypeRef]] = {}
        self.required: tuple[tuple[Element, tuple[str, ...]], ...] = ()
        self.choice_groups: tuple[tuple[str, ...], ...] = ()
        self.referenced: Element | None = None  # the target of a contentReference
        self.combined_invariants: dict[str, tuple[Invariant, ...]] = {}  # by the id of a datatype root
        self.discriminator_cache: dict[Any, Any] = {}  # slicing.py: what a slice expects, per discriminator
        # Set by annotate() for profile elements.
        self.base: Element | None = None
        self.checks_cardinality = False
        self.checks_types = False
        self.checks_binding = False
        self.new_constraints: tuple[Invariant, ...] = ()
        self.interesting = True
        self.interesting_children: tuple[Element, ...] = ()

    def __repr__(self) -> str:
        return f"<Element {self.id}>"

    @property
    def type_codes(self) -> frozenset[str]:
        return frozenset(t.code for t in self.types)

    @cached_property
    def json_keys(self) -> tuple[str, ...]:
        """The JSON properties that hold this element's values (one per type for a choice)."""
        if self.content_reference or not self.types:
            return (self.name,)
        return tuple(dict.fromkeys(json_key(self.name, t.code) for t in self.types))

    @cached_property
    def _type_by_key(self) -> dict[str, TypeRef]:
        found: dict[str, TypeRef] = {}
        for type_ref in self.types:
            found.setdefault(json_key(self.name, type_ref.code), type_ref)
        return found

    def type_for_key(self, key: str) -> TypeRef | None:
        return self._type_by_key.get(key)

    def node(self, code: str) -> Element | None:
        """Where the children of a value of type ``code`` here are described."""
        if self.children:
            return self
        if self.referenced is not None:
            return self.referenced
        return _core_root(code)

    def finish(self) -> None:
        """Build the JSON key map, mandatory children and choice groups from the children."""
        keys: dict[str, tuple[Element, TypeRef]] = {}
        required = []
        choices = []
        for child in self.children.values():
            names = child.json_keys
            if child.content_reference:
                keys[child.name] = (child, TypeRef("BackboneElement"))
            else:
                for type_ref in child.types:
                    keys[json_key(child.name, type_ref.code)] = (child, type_ref)
            if child.min > 0:
                required.append((child, names))
            if child.is_choice and len(names) > 1:
                choices.append(names)
        self.keys = keys
        self.required = tuple(required)
        self.choice_groups = tuple(choices)


@dataclass(eq=False)
class CompiledProfile:
    """A StructureDefinition ready to validate against."""

    url: str
    type: str
    kind: str
    derivation: str
    root: Element
    elements: dict[str, Element]  # by id
    definition: dict[str, Any] = field(repr=False)

    @property
    def is_core(self) -> bool:
        return self.derivation != "constraint"

    @cached_property
    def is_modifier_extension(self) -> bool:
        return self.type == "Extension" and any(e.path == "Extension" and e.is_modifier for e in self.elements.values())


def split_id(element_id: str) -> tuple[str, str]:
    """``CarePlan.category:assess.coding`` -> (``CarePlan.category:assess``, ``coding``)."""
    parent, _, own = element_id.rpartition(".")
    return parent, own


def compile_structure(sd: dict[str, Any]) -> CompiledProfile:
    """Compile a StructureDefinition that has a snapshot."""
    definitions = sd["snapshot"]["element"]
    root = Element(definitions[0])
    by_id: dict[str, Element] = {root.id: root}
    for definition in definitions[1:]:
        element = Element(definition)
        parent_id, own = split_id(element.id)
        by_id[element.id] = element
        parent = by_id.get(parent_id)
        if parent is None:
            continue  # an element below something the snapshot does not define: ignored
        name, _, slice_name = own.partition(":")
        sliced = parent.children.get(name)
        if slice_name and sliced is not None:
            sliced.slices.append(element)
        else:
            parent.children[name] = element
    for element in by_id.values():
        if element.content_reference:
            element.referenced = by_id.get(element.content_reference.split("#", 1)[-1])
        element.finish()
    return CompiledProfile(
        url=sd["url"],
        type=sd["type"],
        kind=sd.get("kind", ""),
        derivation=sd.get("derivation", "specialization"),
        root=root,
        elements=by_id,
        definition=sd,
    )


@cache
def compiled_core(url: str) -> CompiledProfile | None:
    """A vendored R4 StructureDefinition, compiled once and shared by every registry."""
    sd = structure_definitions().get(url)
    if sd is None or "snapshot" not in sd:
        return None
    profile = compile_structure(sd)
    if profile.derivation == "constraint":
        annotate(profile)
    return profile


@cache
def _core_root(type_name: str) -> Element | None:
    profile = core_profile(type_name)
    return None if profile is None else profile.root


def core_profile(type_name: str) -> CompiledProfile | None:
    """The base definition of a type."""
    return compiled_core(CORE_PREFIX + type_name)


# --------------------------------------------------------------------------- profile deltas


def _core_child(core: Element | None, name: str, code: str | None) -> Element | None:
    if core is None:
        return None
    if core.children:
        return core.children.get(name)
    if core.referenced is not None:
        return core.referenced.children.get(name)
    codes = [code] if code else [t.code for t in core.types]
    if len(codes) != 1:
        return None
    profile = core_profile(codes[0])
    return None if profile is None else profile.root.children.get(name)


def annotate(profile: CompiledProfile) -> None:
    """Mark what each profile element adds to the base definition (see the module docstring)."""
    core = core_profile(profile.type)
    _annotate(profile.root, core.root if core else None, is_slice=False)


def _annotate(element: Element, base: Element | None, is_slice: bool) -> bool:
    element.base = base
    if base is None:
        element.checks_cardinality = True
        element.checks_types = bool(element.types)
        element.checks_binding = element.binding is not None
        element.new_constraints = element.constraints
    else:
        element.checks_cardinality = is_slice or (element.min, element.max) != (base.min, base.max)
        element.checks_types = (
            element.type_codes != base.type_codes
            or any(t.profiles for t in element.types)
            or {t.target_profiles for t in element.types} != {t.target_profiles for t in base.types}
        )
        element.checks_binding = element.binding != base.binding
        element.new_constraints = tuple(c for c in element.constraints if c.key not in base.constraint_keys)
    single = next(iter(element.type_codes)) if len(element.type_codes) == 1 else None
    interesting_children = []
    for child in element.children.values():
        if _annotate(child, _core_child(base, child.name, single), is_slice=False):
            interesting_children.append(child)
    for slice_element in element.slices:
        _annotate(slice_element, base, is_slice=True)
    element.interesting_children = tuple(interesting_children)
    element.interesting = bool(
        element.checks_cardinality
        or element.checks_types
        or element.checks_binding
        or element.new_constraints
        or element.has_fixed
        or element.has_pattern
        or element.slicing
        or element.slices
        or interesting_children
        or (base is not None and element.max_length is not None and element.max_length != base.max_length)
    )
    return element.interesting
