"""The shape of FHIR JSON, read from the StructureDefinition snapshots.

A *node* names a place in the element tree: a type name (``"Quantity"``,
``"CarePlan"``) or a backbone path inside one (``"CarePlan.activity.detail"``).
``properties(node)`` maps every JSON property name that may appear there to a
``Property`` telling its element, its concrete type and where its children are.
Choice elements are expanded (``value[x]`` gives ``valueQuantity``,
``valueString``, ...). Walkers of resources (bindings, XML, summaries) all use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from fhir_ccm.definitions import CORE_PREFIX, structure_definition, structure_definitions

FHIRPATH_SYSTEM = "http://hl7.org/fhirpath/System."
FHIR_TYPE_EXTENSION = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"

# JSON number and boolean primitives; every other primitive is a JSON string.
NUMBER_TYPES = frozenset({"decimal", "integer", "positiveInt", "unsignedInt"})
BOOLEAN_TYPES = frozenset({"boolean"})
RESOURCE_TYPE = "Resource"


@dataclass(frozen=True)
class Property:
    """One JSON property allowed at a node."""

    name: str  # JSON name, e.g. "valueQuantity"
    path: str  # element path in the definition, e.g. "Observation.value[x]"
    type_code: str  # concrete type, e.g. "Quantity", "code", "BackboneElement"
    node: str | None  # where its children are described; None for primitives
    min: int
    is_array: bool
    is_primitive: bool
    is_summary: bool
    is_choice: bool
    binding_strength: str | None
    value_set: str | None
    xml_attribute: bool  # Element.id and Extension.url are XML attributes
    order: int  # position among siblings, for XML element order

    @property
    def is_resource(self) -> bool:
        """The property holds a whole resource (``contained``, ``Bundle.entry.resource``)."""
        return self.type_code == RESOURCE_TYPE


def _type_code(type_entry: dict[str, Any]) -> str:
    """The FHIR type of an element; System.* types map to their FHIR primitive."""
    code = type_entry["code"]
    if code.startswith(FHIRPATH_SYSTEM):
        for extension in type_entry.get("extension", []):
            if extension.get("url") == FHIR_TYPE_EXTENSION:
                return extension.get("valueUrl") or extension.get("valueUri") or "string"
        return "string"
    return code


@cache
def is_primitive_type(type_code: str) -> bool:
    sd = structure_definition(type_code)
    return sd is not None and sd["kind"] == "primitive-type"


@cache
def _elements_by_path(type_name: str) -> dict[str, dict[str, Any]]:
    sd = structure_definition(type_name)
    if sd is None:
        return {}
    return {element["path"]: element for element in sd["snapshot"]["element"]}


def _split_node(node: str) -> tuple[str, str]:
    type_name = node.split(".", 1)[0]
    return type_name, node


@cache
def properties(node: str) -> dict[str, Property]:
    """Every JSON property allowed at ``node``, by JSON name (empty if unknown)."""
    type_name, path = _split_node(node)
    elements = _elements_by_path(type_name)
    if path not in elements:
        return {}
    prefix = path + "."
    result: dict[str, Property] = {}
    order = 0
    for element_path, element in elements.items():
        if not element_path.startswith(prefix) or "." in element_path[len(prefix) :]:
            continue
        order += 1
        name = element_path[len(prefix) :]
        for prop in _properties_of_element(element, name, order):
            result[prop.name] = prop
    return result


def _properties_of_element(element: dict[str, Any], name: str, order: int) -> list[Property]:
    binding = element.get("binding") or {}
    common = dict(
        path=element["path"],
        min=element.get("min", 0),
        is_array=element.get("max", "1") != "1" or element.get("base", {}).get("max", "1") != "1",
        is_summary=bool(element.get("isSummary")),
        binding_strength=binding.get("strength"),
        value_set=binding["valueSet"].split("|", 1)[0] if binding.get("valueSet") else None,
        xml_attribute="xmlAttr" in element.get("representation", []),
        order=order,
    )
    if "contentReference" in element:
        target = element["contentReference"].lstrip("#")
        return [
            Property(name=name, type_code="BackboneElement", node=target, is_primitive=False, is_choice=False, **common)
        ]
    types = [_type_code(t) for t in element.get("type", [])]
    is_choice = name.endswith("[x]")
    result = []
    for type_code in types:
        json_name = name[:-3] + type_code[0].upper() + type_code[1:] if is_choice else name
        primitive = is_primitive_type(type_code)
        if primitive:
            node = None
        elif type_code in ("BackboneElement", "Element") and "." in element["path"]:
            node = element["path"]
        else:
            node = type_code
        result.append(
            Property(
                name=json_name,
                type_code=type_code,
                node=node,
                is_primitive=primitive,
                is_choice=is_choice,
                **common,
            )
        )
    return result


def resource_properties(resource_type: str) -> dict[str, Property]:
    """The properties of a resource type's root."""
    return properties(resource_type)


@cache
def known_types() -> frozenset[str]:
    """Every type (resource, datatype, primitive) that has a base definition."""
    return frozenset(sd["type"] for url, sd in structure_definitions().items() if url == CORE_PREFIX + sd["type"])
