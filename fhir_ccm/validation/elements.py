"""The element walk: the first of the two checks on write, quick and with precise messages.

- every property is an element of the R4 definition (``fhir_comments`` is not);
- mandatory elements (``min >= 1``) are present;
- ``code`` elements bound ``required`` hold a code of the ValueSet;
- no empty strings, arrays or objects, no ``null`` outside primitive companions;
- no control characters other than tab, CR and LF in any string;
- the narrative ``div`` is well-formed XHTML (so XML can always be served);
- nesting stays within ``MAX_DEPTH``.

Every problem is reported with a FHIRPath-style ``expression``
(``CarePlan.activity[0].detail.status``); the walk never stops at the first.
"""

from __future__ import annotations

import re
from typing import Any

from fhir_ccm.definitions import resource_types
from fhir_ccm.definitions.elements import Property, properties
from fhir_ccm.errors import Issue
from fhir_ccm.formats.xml_format import narrative_problem
from fhir_ccm.validation.valuesets import expand_codes

MAX_DEPTH = 64
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def check_elements(resource: dict[str, Any]) -> list[Issue]:
    """All problems found in ``resource`` (an empty list when there are none)."""
    walker = _Walker()
    walker.resource(resource, resource.get("resourceType", "Resource"), 0)
    return walker.issues


class _Walker:
    def __init__(self) -> None:
        self.issues: list[Issue] = []

    def error(self, code: str, message: str, expression: str) -> None:
        self.issues.append(Issue("error", code, message, (expression,)))

    def resource(self, resource: Any, path: str, depth: int) -> None:
        if not isinstance(resource, dict):
            self.error("structure", "A resource must be a JSON object", path)
            return
        resource_type = resource.get("resourceType")
        if resource_type not in resource_types():
            self.error("structure", f"Unknown resource type {resource_type!r}", path)
            return
        self.object(resource, resource_type, path if "." in path or "[" in path else resource_type, depth, True)

    def object(self, value: dict[str, Any], node: str, path: str, depth: int, is_resource: bool = False) -> None:
        if depth > MAX_DEPTH:
            self.error("structure", f"Elements are nested deeper than {MAX_DEPTH} levels", path)
            return
        allowed = properties(node)
        if not value or (is_resource and len(value) == 1):
            if not is_resource:
                self.error("structure", "An element must have a value or children; empty objects are not allowed", path)
        for key, item in value.items():
            if is_resource and key == "resourceType":
                continue
            if key.startswith("_"):
                self.primitive_companion(allowed.get(key[1:]), key, item, path, depth)
                continue
            prop = allowed.get(key)
            if prop is None:
                self.error("structure", f"Unknown element '{key}'", f"{path}.{key}")
                continue
            self.property(prop, item, f"{path}.{key}", depth)
        self.mandatory(allowed, value, path)

    def mandatory(self, allowed: dict[str, Property], value: dict[str, Any], path: str) -> None:
        seen_paths = set()
        for prop in allowed.values():
            if prop.min < 1 or prop.path in seen_paths:
                continue
            seen_paths.add(prop.path)
            variants = [p.name for p in allowed.values() if p.path == prop.path]
            if not any(name in value or f"_{name}" in value for name in variants):
                element = prop.path.rsplit(".", 1)[-1]
                self.error("required", f"Missing mandatory element '{element}'", f"{path}.{element}")

    def property(self, prop: Property, item: Any, path: str, depth: int) -> None:
        if prop.is_array:
            if not isinstance(item, list):
                self.error("structure", f"'{prop.name}' must be an array", path)
                return
            if not item:
                self.error("structure", "Arrays must not be empty", path)
            for index, element in enumerate(item):
                self.value(prop, element, f"{path}[{index}]", depth + 1)
        elif isinstance(item, list):
            self.error("structure", f"'{prop.name}' must not be an array", path)
        else:
            self.value(prop, item, path, depth + 1)

    def value(self, prop: Property, item: Any, path: str, depth: int) -> None:
        if item is None:
            self.error("structure", "null is not allowed here", path)
        elif prop.is_resource:
            self.resource(item, path, depth)
        elif prop.is_primitive:
            self.primitive(prop, item, path)
        elif not isinstance(item, dict):
            self.error("structure", f"'{prop.name}' must be a JSON object", path)
        else:
            self.object(item, prop.node or prop.type_code, path, depth)

    def primitive(self, prop: Property, item: Any, path: str) -> None:
        if isinstance(item, (dict, list)):
            self.error("structure", f"'{prop.name}' must be a primitive value", path)
            return
        if not isinstance(item, str):
            return
        if item == "" or (item.strip() == "" and prop.type_code != "string"):
            self.error("value", "Empty strings are not allowed", path)
        if _CONTROL.search(item):
            self.error("value", "The string contains control characters", path)
        if prop.type_code == "xhtml":
            problem = narrative_problem(item)
            if problem:
                self.error("value", problem.replace("div ", "The narrative ", 1), path)
        if prop.type_code == "code" and prop.binding_strength == "required" and prop.value_set:
            codes = expand_codes(prop.value_set)
            if codes is not None and item not in codes:
                self.error(
                    "code-invalid",
                    f"The value '{item}' is not in the required value set {prop.value_set}",
                    path,
                )

    def primitive_companion(self, prop: Property | None, key: str, item: Any, path: str, depth: int) -> None:
        """``_name`` holds the id and extensions of primitive ``name``."""
        target = f"{path}.{key}"
        if prop is None or not prop.is_primitive:
            self.error("structure", f"Unknown element '{key}'", target)
            return
        values = item if isinstance(item, list) else [item]
        if prop.is_array != isinstance(item, list):
            self.error("structure", f"'{key}' must {'' if prop.is_array else 'not '}be an array", target)
            return
        for index, element in enumerate(values):
            element_path = f"{target}[{index}]" if prop.is_array else target
            if element is None and prop.is_array:
                continue
            if not isinstance(element, dict):
                self.error("structure", f"'{key}' must hold objects", element_path)
                continue
            self.object(element, "Element", element_path, depth + 1)
