"""The coordination engine is pure: it imports only the standard library and its own modules."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import fhir_ccm.coordination

PACKAGE = Path(fhir_ccm.coordination.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def allowed(name: str) -> bool:
    return name.split(".")[0] in sys.stdlib_module_names or name.startswith("fhir_ccm.coordination")


def test_the_engine_has_modules_to_check():
    assert len(MODULES) > 10


def test_the_engine_imports_only_the_standard_library_and_itself():
    foreign = {f"{path.name}: {name}" for path in MODULES for name in imported(path) if not allowed(name)}
    assert foreign == set()


def test_the_engine_never_imports_flask_the_store_or_the_api():
    everything = {name for path in MODULES for name in imported(path)}
    for forbidden in ("flask", "fhir_ccm.store", "fhir_ccm.api", "fhir_ccm.interactions", "sqlite3", "sqlite_utils"):
        assert not any(name == forbidden or name.startswith(forbidden + ".") for name in everything), forbidden
