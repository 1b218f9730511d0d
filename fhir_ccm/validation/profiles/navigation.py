"""How FHIRPath walks FHIR JSON: members by element name, child items and type tests.

The element tables come from the R4 StructureDefinitions (``properties``), so
``value`` on an Observation finds ``valueQuantity`` or ``valueString`` and each
child item knows its FHIR type; values reached without a definition (a
``resolve()`` stub, an unknown key) are navigated by JSON key.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from fhir_ccm.definitions import CORE_PREFIX, structure_definition
from fhir_ccm.definitions.elements import known_types, properties
from fhir_ccm.validation.profiles.values import QUANTITY_TYPES, SYSTEM_TYPE_OF, Item

Member = tuple[str, str, str | None]  # JSON key, FHIR type, node of its children

SYSTEM_NAMES = frozenset({"String", "Integer", "Decimal", "Boolean", "Date", "DateTime", "Time", "Quantity"})


@cache
def members(node: str) -> dict[str, tuple[Member, ...]]:
    """The children of ``node`` by FHIRPath name (``value``) and, for choices, JSON name too."""
    table: dict[str, list[Member]] = {}
    for json_name, prop in properties(node).items():
        element_name = prop.path.rsplit(".", 1)[-1].removesuffix("[x]")
        entry = (json_name, prop.type_code, None if prop.is_primitive else prop.node)
        table.setdefault(element_name, []).append(entry)
        if prop.is_choice:
            table.setdefault(json_name, []).append(entry)
    return {name: tuple(entries) for name, entries in table.items()}


@cache
def _by_json_name(node: str) -> dict[str, Member]:
    return {
        json_name: (json_name, prop.type_code, None if prop.is_primitive else prop.node)
        for json_name, prop in properties(node).items()
    }


def make_item(value: Any, type_name: str | None, node: str | None) -> Item:
    if type_name == "Resource" and isinstance(value, dict):
        resource_type = value.get("resourceType")
        return (value, resource_type, resource_type)
    return (value, type_name, node)


def resource_item(resource: dict[str, Any]) -> Item:
    resource_type = resource.get("resourceType")
    return (resource, resource_type, resource_type)


def navigate(item: Item, name: str, out: list[Item]) -> None:
    """Append the values of child ``name`` of ``item`` to ``out``."""
    value, _, node = item
    if type(value) is not dict:
        return
    if node is not None:
        for key, type_name, child_node in members(node).get(name, ()):
            child = value.get(key)
            if child is None:
                continue
            if type(child) is list:
                out.extend(make_item(entry, type_name, child_node) for entry in child if entry is not None)
            else:
                out.append(make_item(child, type_name, child_node))
        return
    keys = (
        [name] if name in value else [key for key in value if key.startswith(name) and key[len(name) :][:1].isupper()]
    )
    for key in keys:
        child = value[key]
        for entry in child if type(child) is list else [child]:
            if isinstance(entry, dict) and "resourceType" in entry:
                out.append(make_item(entry, "Resource", None))
            elif entry is not None:
                out.append((entry, None, None))


def child_items(item: Item) -> Iterator[Item]:
    """Every child value of ``item`` (FHIRPath ``children()``)."""
    value, _, node = item
    if type(value) is not dict:
        return
    table = _by_json_name(node) if node is not None else {}
    for key, child in value.items():
        if key == "resourceType" or key.startswith("_"):
            continue
        member = table.get(key)
        type_name, child_node = (member[1], member[2]) if member else (None, None)
        for entry in child if type(child) is list else [child]:
            if entry is None:
                continue
            if member is None and isinstance(entry, dict) and "resourceType" in entry:
                type_name = "Resource"
            yield make_item(entry, type_name, child_node)


def descendant_items(items: list[Item]) -> list[Item]:
    out: list[Item] = []
    stack = list(reversed(items))
    while stack:
        for child in child_items(stack.pop()):
            out.append(child)
            if type(child[0]) is dict:
                stack.append(child)
    return out


# --------------------------------------------------------------------------- types


def type_specifier(text: str) -> str | None:
    """``FHIR.Quantity`` -> ``Quantity``; ``System.String`` or ``String`` -> ``System.String``; None if unknown."""
    text = text.replace("`", "")
    namespace, _, name = text.rpartition(".")
    if namespace == "System":
        return "System." + name if name in SYSTEM_NAMES else None
    if namespace not in ("", "FHIR"):
        return None
    if name in known_types() or name in ("Resource", "DomainResource", "BackboneElement", "Element"):
        return name
    if name in SYSTEM_NAMES:
        return "System." + name
    return None


@cache
def ancestors(type_name: str) -> frozenset[str]:
    """``type_name`` and every type it specialises (``Age`` -> Quantity, Element; ``code`` -> string)."""
    found = {type_name}
    current = type_name
    while True:
        sd = structure_definition(current)
        if sd is None:
            break
        base = sd.get("baseDefinition", "")
        if not base.startswith(CORE_PREFIX):
            break
        current = base[len(CORE_PREFIX) :]
        found.add(current)
    return frozenset(found)


def is_type(item: Item, specifier: str) -> bool:
    type_name = item[1]
    if type_name is None:
        return False
    if specifier.startswith("System."):
        if specifier == "System.Quantity":
            return type_name in QUANTITY_TYPES
        return SYSTEM_TYPE_OF.get(type_name) == specifier
    return specifier in ancestors(type_name)
