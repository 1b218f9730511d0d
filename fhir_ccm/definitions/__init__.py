"""The official FHIR R4 4.0.1 definitions vendored into the package.

``generate.py`` writes them; this module loads them once, on first use.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).parent / "data"
FHIR_VERSION = "4.0.1"
CORE_PREFIX = "http://hl7.org/fhir/StructureDefinition/"


def _read_ndjson(name: str) -> list[dict[str, Any]]:
    with open(DATA_DIR / name, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@cache
def structure_definitions() -> dict[str, dict[str, Any]]:
    """StructureDefinitions by canonical url."""
    return {sd["url"]: sd for sd in _read_ndjson("structure-definitions.ndjson")}


@cache
def search_parameters() -> list[dict[str, Any]]:
    return _read_ndjson("search-parameters.ndjson")


@cache
def compartment_definitions() -> list[dict[str, Any]]:
    return _read_ndjson("compartment-definitions.ndjson")


@cache
def value_sets() -> dict[str, dict[str, Any]]:
    return {vs["url"]: vs for vs in _read_ndjson("value-sets.ndjson")}


@cache
def code_systems() -> dict[str, dict[str, Any]]:
    return {cs["url"]: cs for cs in _read_ndjson("code-systems.ndjson")}


def structure_definition(type_name: str) -> dict[str, Any] | None:
    """The base definition of a resource or datatype, by type name."""
    return structure_definitions().get(CORE_PREFIX + type_name)


@cache
def resource_types() -> frozenset[str]:
    """Every concrete R4 resource type (the R4 list, not R4B's)."""
    return frozenset(
        sd["type"]
        for sd in structure_definitions().values()
        if sd["kind"] == "resource" and sd.get("derivation") == "specialization" and not sd["abstract"]
    )
