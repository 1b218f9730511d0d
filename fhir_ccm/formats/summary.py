"""``_summary`` and ``_elements`` (http://hl7.org/fhir/R4/search.html#summary, #elements).

A subsetted resource carries the SUBSETTED tag so no client mistakes it for the
whole resource.
"""

from __future__ import annotations

from typing import Any

from fhir_ccm.definitions.elements import properties
from fhir_ccm.errors import Invalid

SUMMARY_MODES = ("true", "text", "data", "false")
SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
    "display": "subsetted",
}
ALWAYS_KEPT = ("resourceType", "id", "meta")


def parse_elements(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    names = tuple(name.strip().split(".")[-1] for name in value.split(",") if name.strip())
    if not names:
        raise Invalid("_elements names no element")
    return names


def check_elements_exist(resource_type: str, elements: tuple[str, ...]) -> None:
    """400 for an ``_elements`` name the type does not define, before anything runs."""
    allowed = properties(resource_type)
    roots = {prop.path.rsplit(".", 1)[-1].removesuffix("[x]") for prop in allowed.values()}
    for name in elements:
        if name not in allowed and name not in roots and name not in ALWAYS_KEPT:
            raise Invalid(f"_elements: {resource_type} has no element '{name}'")


def check_summary(value: str | None, allowed: tuple[str, ...] = SUMMARY_MODES) -> str | None:
    if value is not None and value not in allowed:
        raise Invalid(f"_summary must be one of {', '.join(allowed)}, not '{value}'")
    return value


def subset(resource: dict[str, Any], summary: str | None, elements: tuple[str, ...] | None) -> dict[str, Any]:
    """The resource reduced as ``_summary`` / ``_elements`` ask (unchanged for none or 'false')."""
    if elements is not None:
        return _tagged(_only_elements(resource, elements))
    if summary in (None, "false"):
        return resource
    if summary == "data":
        return _tagged({k: v for k, v in resource.items() if k != "text"})
    if summary == "text":
        allowed = properties(resource["resourceType"])
        mandatory = {name for name, prop in allowed.items() if prop.min > 0}
        kept = {k: v for k, v in resource.items() if k in ALWAYS_KEPT or k == "text" or k in mandatory}
        return _tagged(kept)
    return _tagged(_summary_of(resource, resource["resourceType"]))


def _only_elements(resource: dict[str, Any], elements: tuple[str, ...]) -> dict[str, Any]:
    allowed = properties(resource["resourceType"])
    choice_roots = {prop.path.rsplit(".", 1)[-1].removesuffix("[x]"): prop.path for prop in allowed.values()}
    wanted_paths = set()
    for name in elements:
        if name in allowed:
            wanted_paths.add(allowed[name].path)
        elif name in choice_roots:
            wanted_paths.add(choice_roots[name])
    result = {}
    for key, value in resource.items():
        prop = allowed.get(key.lstrip("_"))
        if key in ALWAYS_KEPT or (prop is not None and (prop.path in wanted_paths or prop.min > 0)):
            result[key] = value
    return result


def _summary_of(value: dict[str, Any], node: str) -> dict[str, Any]:
    allowed = properties(node)
    result: dict[str, Any] = {}
    for key, item in value.items():
        if key in ALWAYS_KEPT:
            result[key] = item
            continue
        prop = allowed.get(key.lstrip("_"))
        if prop is None or not (prop.is_summary or prop.min > 0):
            continue
        if prop.node and "." in prop.node and not prop.is_resource:
            item = [_summary_of(i, prop.node) for i in item] if isinstance(item, list) else _summary_of(item, prop.node)
        result[key] = item
    return result


def _tagged(resource: dict[str, Any]) -> dict[str, Any]:
    meta = dict(resource.get("meta") or {})
    tags = list(meta.get("tag") or [])
    if not any(t.get("code") == "SUBSETTED" and t.get("system") == SUBSETTED["system"] for t in tags):
        tags.append(dict(SUBSETTED))
    meta["tag"] = tags
    return {**resource, "meta": meta} if "meta" in resource else _with_meta(resource, meta)


def _with_meta(resource: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in resource.items():
        result[key] = value
        if key == "id":
            result["meta"] = meta
    result.setdefault("meta", meta)
    return result
