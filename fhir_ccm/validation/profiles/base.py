"""Base R4 validation: one walk over a resource against the vendored definitions.

Checked on every value: the element exists in the definition (unknown
elements), arrays and single values are where the definition puts them,
cardinality, mandatory elements, one value per choice, the JSON type and regex
of primitives, ``ele-1``, required/extensible/preferred bindings, reference
forms and target types, extensions against their definitions (by url), the
narrative XHTML rules, the contained-resource rules (``dom-2`` ... ``dom-5``),
``dom-6``, ``ref-1``, and every other invariant of the resource and of each datatype it
uses. Contained resources and Bundle entries are walked as resources of their
own type. Every problem becomes an ``Issue``; the walk never stops early.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fhir_ccm.definitions import resource_types
from fhir_ccm.errors import Issue
from fhir_ccm.validation.profiles.fhirpath import Env
from fhir_ccm.validation.profiles.invariants import Invariant
from fhir_ccm.validation.profiles.model import Element, TypeRef, core_profile
from fhir_ccm.validation.profiles.narrative import check_narrative
from fhir_ccm.validation.profiles.navigation import ancestors
from fhir_ccm.validation.profiles.primitives import ID_PATTERN, problem
from fhir_ccm.validation.profiles.references import find_contained, local_references, parse_reference, type_of
from fhir_ccm.validation.profiles.terminology import SEVERITY, binding_problem
from fhir_ccm.validation.profiles.values import Item, a

if TYPE_CHECKING:
    from fhir_ccm.validation.profiles.validator import Run

ELE_1 = "Constraint ele-1 failed: All FHIR elements must have a @value or children"
REF_1 = "Constraint ref-1 failed: SHALL have a contained resource if a local reference is provided"
DOM_MESSAGES = {
    "dom-2": "If the resource is contained in another resource, it SHALL NOT contain nested Resources",
    "dom-3": "If the resource is contained in another resource, it SHALL be referred to from elsewhere in the "
    "resource or SHALL refer to the containing resource",
    "dom-4": "If a resource is contained in another resource, it SHALL NOT have a meta.versionId or a meta.lastUpdated",
    "dom-5": "If a resource is contained in another resource, it SHALL NOT have a security label",
    "dom-6": "A resource should have narrative for robust management",
}
CONTAINED, ENTRY, NESTED = "contained", "entry", "nested"  # where a resource sits: see resource()
MAX_DEPTH = 64  # nested objects, as the write-time checks allow


class BaseWalker:
    def __init__(self, run: Run) -> None:
        self.run = run
        self.depth = 0
        self._element_node = core_profile("Element")

    def issue(self, code: str, message: str, path: str, severity: str = "error") -> None:
        self.run.issues.append(Issue(severity, code, message, (path,)))

    # ----------------------------------------------------------------------- resources

    def resource(self, resource: Any, path: str, root: dict[str, Any] | None = None, place: str | None = None) -> None:
        """Walk a resource: ``place`` is None at the top, else ``contained``, ``entry`` (of a Bundle) or
        ``nested`` (``Parameters.parameter.resource``, ``Bundle.entry.response.outcome``); ``root`` is the
        container of a contained resource. Only the top and Bundle entries are expected to have a narrative."""
        if not isinstance(resource, dict):
            self.issue("structure", "A resource must be a JSON object", path or "Resource")
            return
        resource_type = resource.get("resourceType")
        profile = core_profile(resource_type) if isinstance(resource_type, str) else None
        if profile is None or resource_type not in resource_types():
            self.issue("structure", f"Unknown resource type {resource_type!r}", path or "Resource")
            return
        where = path or resource_type
        env = Env(resource, root if place == CONTAINED and root is not None else resource, self.run)
        resource_id = resource.get("id")
        if resource_id is not None and not (isinstance(resource_id, str) and ID_PATTERN.fullmatch(resource_id)):
            self.issue("value", f"The id {resource_id!r} is not a valid resource id", f"{where}.id")
        if place == CONTAINED and resource_id is None:
            self.issue("required", "A contained resource must have an id", f"{where}.id")
        self.object(resource, profile.root, where, env, is_resource=True)
        self.invariants(profile.root.constraints, (resource, resource_type, resource_type), where, env)
        if isinstance(resource.get("contained"), list):
            self.contained_rules(resource, where)
        if place in (None, ENTRY) and "DomainResource" in ancestors(resource_type):
            text = resource.get("text")
            if not (isinstance(text, dict) and text.get("div")):
                self.issue("invariant", f"Constraint dom-6 failed: {DOM_MESSAGES['dom-6']}", where, "warning")

    def contained_rules(self, resource: dict[str, Any], path: str) -> None:
        references: set[str] | None = None
        for index, contained in enumerate(resource["contained"]):
            if not isinstance(contained, dict):
                continue
            where = f"{path}.contained[{index}]"
            if "contained" in contained:
                self.dom("dom-2", where)
            meta = contained.get("meta")
            if isinstance(meta, dict):
                if "versionId" in meta or "lastUpdated" in meta:
                    self.dom("dom-4", where)
                if meta.get("security"):
                    self.dom("dom-5", where)
            contained_id = contained.get("id")
            if isinstance(contained_id, str):
                if references is None:
                    references = local_references(resource)
                if "#" + contained_id not in references and "#" not in local_references(contained):
                    self.dom("dom-3", where)

    def dom(self, key: str, path: str) -> None:
        self.issue("invariant", f"Constraint {key} failed: {DOM_MESSAGES[key]}", path)

    # ----------------------------------------------------------------------- elements

    def object(self, value: dict[str, Any], node: Element, path: str, env: Env, is_resource: bool = False) -> None:
        if self.depth >= MAX_DEPTH:
            self.issue("structure", f"Elements are nested deeper than {MAX_DEPTH} levels", path)
            return
        self.depth += 1
        try:
            self._object(value, node, path, env, is_resource)
        finally:
            self.depth -= 1

    def _object(self, value: dict[str, Any], node: Element, path: str, env: Env, is_resource: bool) -> None:
        keys = node.keys
        for key, item in value.items():
            slot = keys.get(key)
            if slot is None:
                if is_resource and key == "resourceType":
                    continue
                if key[:1] == "_" and len(key) > 1:
                    self.companion(node, key, item, value, path, env)
                else:
                    self.issue("structure", f"Unknown element '{key}'", f"{path}.{key}")
                continue
            element, type_ref = slot
            where = f"{path}.{key}"
            if element.is_array:
                if type(item) is not list:
                    self.issue("structure", f"'{key}' must be a JSON array", where)
                    continue
                if not item:
                    self.issue("structure", "An array must not be empty", where)
                    continue
                if element.max is not None and len(item) > element.max:
                    self.issue("structure", f"'{key}' allows at most {element.max} value(s), found {len(item)}", where)
                companion = value.get("_" + key) if type_ref.primitive is not None else None
                for index, entry in enumerate(item):
                    if entry is None:
                        if not (type(companion) is list and index < len(companion) and companion[index] is not None):
                            message = "null is only allowed where '_' holds an id or extensions"
                            self.issue("structure", message, f"{where}[{index}]")
                        continue
                    self.value(element, type_ref, entry, f"{where}[{index}]", env)
            elif type(item) is list:
                self.issue("structure", f"'{key}' must not be a JSON array", where)
            elif item is None:
                self.issue("structure", "null is not allowed here", where)
            else:
                self.value(element, type_ref, item, where, env)
        for element, names in node.required:
            if not any(name in value or "_" + name in value for name in names):
                self.issue("required", f"Missing mandatory element '{element.name}'", f"{path}.{names[0]}")
        for names in node.choice_groups:
            present = [name for name in names if name in value]
            if len(present) > 1:
                self.issue("structure", f"Only one of {', '.join(present)} is allowed", f"{path}.{present[1]}")

    def companion(self, node: Element, key: str, item: Any, parent: dict[str, Any], path: str, env: Env) -> None:
        """``_name``: the id and extensions of primitive ``name``."""
        name = key[1:]
        slot = node.keys.get(name)
        if slot is None or slot[1].primitive is None or slot[1].code == "xhtml":
            self.issue("structure", f"Unknown element '{key}'", f"{path}.{key}")
            return
        where = f"{path}.{name}"
        values = parent.get(name)
        if slot[0].is_array:
            if type(item) is not list or (
                values is not None and (type(values) is not list or len(values) != len(item))
            ):
                self.issue("structure", f"'{key}' must be an array as long as '{name}'", f"{path}.{key}")
                return
            for index, entry in enumerate(item):
                present = type(values) is list and values[index] is not None
                self.primitive_element(entry, present, f"{where}[{index}]", env)
        elif type(item) is not dict:
            self.issue("structure", f"'{key}' must be a JSON object", f"{path}.{key}")
        else:
            self.primitive_element(item, name in parent, where, env)

    def primitive_element(self, item: Any, has_value: bool, path: str, env: Env) -> None:
        if item is None:
            return
        if type(item) is not dict:
            self.issue("structure", "The id and extensions of a primitive must be a JSON object", path)
            return
        if not has_value and not item.get("extension"):
            self.issue("invariant", ELE_1, path)
        if self._element_node is not None:
            self.object(item, self._element_node.root, path, env)

    def value(self, element: Element, type_ref: TypeRef, item: Any, path: str, env: Env) -> None:
        spec = type_ref.primitive
        if spec is not None:
            if type(item) is dict or type(item) is list:
                self.issue("structure", f"'{_name(path)}' must be a primitive value", path)
                return
            found = problem(spec, item)
            if found is not None:
                self.issue("value", found, path)
                return
            if spec.code == "xhtml":
                self.narrative(item, path)
            if element.binding is not None and element.binding[0] in SEVERITY:
                self.binding(element.binding, item, spec.code, path)
            if element.constraints:
                self.invariants(element.constraints, (item, spec.code, None), path, env)
            return
        if type_ref.code == "Resource":
            if element.name == "contained":
                self.run.base.resource(item, path, env.root, CONTAINED)
            else:
                self.run.base.resource(item, path, None, ENTRY if element.path == "Bundle.entry.resource" else NESTED)
            return
        if type(item) is not dict:
            self.issue("structure", f"'{_name(path)}' must be a JSON object", path)
            return
        if not item or (len(item) == 1 and "id" in item):
            self.issue("invariant", ELE_1, path)
        node = element.node(type_ref.code)
        if node is None:
            return
        self.object(item, node, path, env)
        invariants = _invariants_for(element, node)
        if invariants:
            fhirpath_node = node.path if type_ref.code in ("BackboneElement", "Element") else type_ref.code
            self.invariants(invariants, (item, type_ref.code, fhirpath_node), path, env)
        if element.binding is not None and element.binding[0] in SEVERITY:
            self.binding(element.binding, item, type_ref.code, path)
        if type_ref.code == "Reference":
            self.reference(type_ref, item, path, env)
        elif type_ref.code == "Extension":
            self.extension(element, item, path, env)
        if type_ref.profiles and type_ref.code != "Extension":
            self.type_profiles(type_ref, item, path, env)

    # ----------------------------------------------------------------------- rules

    def invariants(self, invariants: tuple[Invariant, ...], item: Item, path: str, env: Env) -> None:
        if not self.run.invariants:
            return
        for invariant in invariants:
            try:
                result = invariant.evaluate(item, env)
            except Exception as error:  # an evaluation problem is reported, never raised
                self.issue(
                    "informational", f"Constraint {invariant.key} could not be evaluated: {error}", path, "information"
                )
                continue
            if result is False:
                severity = "error" if invariant.severity == "error" else "warning"
                self.issue("invariant", f"Constraint {invariant.key} failed: {invariant.human}", path, severity)

    def binding(self, binding: tuple[str, str], value: Any, type_code: str, path: str) -> None:
        strength, value_set = binding
        message = binding_problem(strength, value_set, value, type_code, self.run.registry.expand)
        if message is not None:
            self.issue("code-invalid", message, path, SEVERITY[strength])

    def narrative(self, div: str, path: str) -> None:
        for key, message in check_narrative(div):
            if key:
                self.issue("invariant", f"Constraint {key} failed: {message}", path)
            else:
                self.issue("value", message, path)

    def reference(self, type_ref: TypeRef, value: dict[str, Any], path: str, env: Env) -> None:
        reference = value.get("reference")
        if not isinstance(reference, str):
            return
        parsed = parse_reference(reference)
        if parsed.problem:
            self.issue("value", parsed.problem, f"{path}.reference")
            return
        actual = parsed.type
        if parsed.kind == "contained":
            target = find_contained(env.root, reference)
            if target is None and self.run.invariants:
                self.issue("invariant", REF_1, path)
            actual = type_of(target)
        elif parsed.kind == "urn" and self.run.bundle is not None:
            actual = type_of(self.run.bundle.find(reference))
        declared = value.get("type")
        if isinstance(declared, str) and declared in resource_types():
            if actual is not None and declared != actual:
                self.issue("value", f"The reference is to {a(actual)} but its type says {declared}", f"{path}.type")
            actual = actual or declared
        allowed = type_ref.target_types
        if actual is not None and allowed is not None and not (ancestors(actual) & allowed):
            self.issue(
                "structure",
                f"A reference to {a(actual)} is not allowed here; it must be to {' or '.join(sorted(allowed))}",
                f"{path}.reference",
            )

    def type_profiles(self, type_ref: TypeRef, value: dict[str, Any], path: str, env: Env) -> None:
        """Profiles the R4 definitions themselves put on a type (``SimpleQuantity``) are part of base R4."""
        for url in type_ref.profiles:
            profile = self.run.registry.profile(url)
            if profile is not None and not profile.is_core:
                self.run.profiles.value(profile.root, type_ref.code, value, path, env)

    def extension(self, element: Element, value: dict[str, Any], path: str, env: Env) -> None:
        url = value.get("url")
        if not isinstance(url, str):
            return
        if ":" not in url:  # a relative url names a part of a complex extension: its definition checks it
            if element.path != "Extension.extension":
                self.issue("value", f"The extension url '{url}' must be absolute", f"{path}.url")
            return
        modifier = element.name == "modifierExtension"
        definition = self.run.registry.profile(url)
        if definition is None or definition.type != "Extension":
            self.issue(
                "not-found",
                f"The extension {url} is not known, so it was not checked against a definition",
                path,
                "warning" if modifier else "information",
            )
            return
        if definition.is_modifier_extension != modifier:
            where = "modifierExtension" if definition.is_modifier_extension else "extension"
            self.issue("structure", f"The extension {url} must be used in '{where}'", path)
        self.run.profiles.value(definition.root, "Extension", value, path, env)


def _name(path: str) -> str:
    """The JSON name at the end of an expression: ``CarePlan.category[0]`` -> ``category``."""
    return path.rsplit(".", 1)[-1].split("[", 1)[0]


def _invariants_for(element: Element, node: Element) -> tuple[Invariant, ...]:
    """The element's own invariants plus, for a datatype, the datatype's (each key once)."""
    if node is element:
        return element.constraints
    cached = element.combined_invariants.get(node.id)
    if cached is None:
        keys = {invariant.key for invariant in element.constraints}
        cached = element.constraints + tuple(c for c in node.constraints if c.key not in keys)
        element.combined_invariants[node.id] = cached
    return cached
