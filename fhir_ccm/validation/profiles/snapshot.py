"""Snapshot generation: a profile's differential applied to its base's snapshot (profiling.html#snapshot).

Each differential element is found in the base snapshot by its id and its
properties replace the base's (constraints are added to). What the base does
not spell out is created on the way:

- children of a datatype (``CarePlan.category.coding``) are unfolded from the
  datatype's own definition (or from its type profile when one is given);
- a slice (``CarePlan.category:assess``) is a copy of the sliced element and its
  children, inserted after the element's existing slices; extensions get the
  standard slicing by ``url`` when none is declared;
- a renamed choice (``Observation.valueQuantity``) is the ``value[x]`` element,
  with its types narrowed to the one named.

Differential elements without ids get them from their path and the slice they
follow. Reslicing and choices of several renamed types are not supported and
raise ``SnapshotError``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from fhir_ccm.validation.profiles.model import split_id
from fhir_ccm.validation.profiles.primitives import primitive_spec

Lookup = Callable[[str], dict[str, Any] | None]

EXTENSION_SLICING = {"discriminator": [{"type": "value", "path": "url"}], "rules": "open"}
_FIXED_PREFIXES = ("fixed", "pattern")


class SnapshotError(Exception):
    """The snapshot cannot be generated."""


def generate_snapshot(sd: dict[str, Any], lookup: Lookup) -> dict[str, Any]:
    """A copy of ``sd`` with a snapshot; ``lookup`` finds base definitions (with snapshots) by url."""
    base_url = str(sd.get("baseDefinition", "")).split("|", 1)[0]
    base = lookup(base_url)
    if base is None or "snapshot" not in base:
        raise SnapshotError(f"the base definition {base_url or '(none)'} is not known")
    differential = (sd.get("differential") or {}).get("element")
    if not differential:
        raise SnapshotError("the StructureDefinition has neither a snapshot nor a differential")
    generator = _Generator(with_ids(copy.deepcopy(base["snapshot"]["element"])), lookup)
    for element in with_ids(differential):
        generator.apply(element)
    result = dict(sd)
    result["snapshot"] = {"element": generator.elements}
    return result


def with_ids(elements: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Elements with ids; a missing id comes from the path and the slice an element follows."""
    out = []
    slices: dict[str, str] = {}  # path -> id of the latest slice at that path
    for element in elements:
        element_id = element.get("id")
        path = element["path"]
        if not element_id:
            element_id = path
            for sliced_path in sorted(slices, key=len, reverse=True):
                if path.startswith(sliced_path + "."):
                    element_id = slices[sliced_path] + path[len(sliced_path) :]
                    break
            if element.get("sliceName"):
                element_id += ":" + element["sliceName"]
            element = {**element, "id": element_id}
        if element.get("sliceName"):
            slices[path] = element_id
        out.append(element)
    return out


class _Generator:
    def __init__(self, elements: list[dict[str, Any]], lookup: Lookup) -> None:
        self.elements = elements
        self.lookup = lookup

    def index(self, element_id: str) -> int | None:
        for position, element in enumerate(self.elements):
            if element["id"] == element_id:
                return position
        return None

    def apply(self, differential: dict[str, Any]) -> None:
        element_id, narrowed = self._normalise(differential["id"])
        position = self.find(element_id, narrowed)
        target = self.elements[position]
        _merge(target, differential)
        if element_id in narrowed and "type" not in differential:
            target["type"] = [t for t in target.get("type", []) if t.get("code") == narrowed[element_id]] or [
                {"code": narrowed[element_id]}
            ]

    def _normalise(self, element_id: str) -> tuple[str, dict[str, str]]:
        """Rewrite renamed choices (``valueQuantity`` -> ``value[x]``); map each to the type it names."""
        parts = element_id.split(".")
        narrowed: dict[str, str] = {}
        current = parts[0]
        for part in parts[1:]:
            name, colon, slice_name = part.partition(":")
            candidate = f"{current}.{part}"
            if self.index(candidate) is None and not name.endswith("[x]"):
                for cut in range(len(name) - 1, 0, -1):
                    if name[cut].isupper() and self._has_choice(current, name[:cut]):
                        code = name[cut:]
                        lowered = code[0].lower() + code[1:]
                        part = f"{name[:cut]}[x]" + (colon + slice_name if colon else "")
                        narrowed[f"{current}.{part}"] = lowered if primitive_spec(lowered) else code
                        break
            current = f"{current}.{part}"
        return current, narrowed

    def _has_choice(self, parent_id: str, name: str) -> bool:
        parent = self.index(parent_id)
        if parent is None:
            return False
        if self.index(f"{parent_id}.{name}[x]") is not None:
            return True
        return any(e.get("path", "").endswith("." + name + "[x]") for e in self._type_elements(self.elements[parent]))

    def find(self, element_id: str, narrowed: dict[str, str]) -> int:
        position = self.index(element_id)
        if position is not None:
            return position
        parent_id, own = split_id(element_id)
        if not parent_id:
            raise SnapshotError(f"{element_id} is not in the base definition")
        name, _, slice_name = own.partition(":")
        if slice_name:
            if "/" in slice_name:
                raise SnapshotError(f"reslicing ({element_id}) is not supported")
            sliced = self.find(f"{parent_id}.{name}", narrowed)
            return self._add_slice(sliced, element_id, slice_name)
        parent = self.find(parent_id, narrowed)
        self._unfold(parent, narrowed.get(parent_id))
        position = self.index(element_id)
        if position is None:
            raise SnapshotError(f"{element_id} is not an element of the base definition")
        return position

    def _subtree_end(self, position: int) -> int:
        """The position after an element, its children and its slices."""
        element_id = self.elements[position]["id"]
        end = position + 1
        while end < len(self.elements) and self.elements[end]["id"].startswith((element_id + ".", element_id + ":")):
            end += 1
        return end

    def _type_elements(self, parent: dict[str, Any], hint: str | None = None) -> list[dict[str, Any]]:
        """The snapshot elements (minus the root) of the type a parent element has."""
        types = parent.get("type", [])
        codes = [t.get("code") for t in types]
        code = hint if hint else (codes[0] if len(codes) == 1 else None)
        if code is None:
            return []
        profiles = [p for t in types if t.get("code") == code for p in t.get("profile", [])]
        source = self.lookup(profiles[0]) if profiles else None
        if source is None or "snapshot" not in source:
            source = self.lookup("http://hl7.org/fhir/StructureDefinition/" + code)
        if source is None or "snapshot" not in source:
            return []
        return with_ids(source["snapshot"]["element"])[1:]

    def _unfold(self, position: int, hint: str | None) -> None:
        parent = self.elements[position]
        if position + 1 < len(self.elements) and self.elements[position + 1]["id"].startswith(parent["id"] + "."):
            return
        if parent.get("contentReference"):
            raise SnapshotError(f"constraining below {parent['id']} (a content reference) is not supported")
        elements = self._type_elements(parent, hint)
        if not elements:
            raise SnapshotError(f"the children of {parent['id']} cannot be found")
        root_path = elements[0]["path"].split(".", 1)[0]
        root_id = elements[0]["id"].split(".", 1)[0]
        unfolded = []
        for element in elements:
            element = copy.deepcopy(element)
            element["path"] = parent["path"] + element["path"][len(root_path) :]
            element["id"] = parent["id"] + element["id"][len(root_id) :]
            unfolded.append(element)
        self.elements[position + 1 : position + 1] = unfolded

    def _add_slice(self, sliced_position: int, element_id: str, slice_name: str) -> int:
        sliced = self.elements[sliced_position]
        if "slicing" not in sliced and sliced["path"].rsplit(".", 1)[-1] in ("extension", "modifierExtension"):
            sliced["slicing"] = copy.deepcopy(EXTENSION_SLICING)
        end = self._subtree_end(sliced_position)
        prefix = sliced["id"] + "."
        copies = []
        for element in self.elements[sliced_position:end]:
            if element is not sliced and not element["id"].startswith(prefix):
                continue
            element = copy.deepcopy(element)
            element.pop("slicing", None)
            element["id"] = element_id + element["id"][len(sliced["id"]) :]
            copies.append(element)
        copies[0]["sliceName"] = slice_name
        self.elements[end:end] = copies
        return end


def _merge(target: dict[str, Any], differential: dict[str, Any]) -> None:
    for key, value in differential.items():
        if key in ("id", "path"):
            continue
        if key == "constraint":
            known = {c.get("key") for c in target.get("constraint", [])}
            target.setdefault("constraint", []).extend(copy.deepcopy(c) for c in value if c.get("key") not in known)
            continue
        if key.startswith(_FIXED_PREFIXES):
            for existing in [k for k in target if k.startswith(_FIXED_PREFIXES)]:
                del target[existing]
        target[key] = copy.deepcopy(value)
