"""The conformance resources a validation can use beyond the vendored R4 core.

A ``Registry`` holds StructureDefinitions (profiles and extensions), ValueSets
and CodeSystems, fed from files (``load_paths``: the repository's
``profiles/`` folder, JSON files or Bundles of them) or from the resources
stored on the server (``load_store``). A StructureDefinition given only as a
differential gets its snapshot generated when it is added (or, if its base is
not known yet, when it is first asked for). ``profile(url)`` compiles a
definition once and caches it; adding a resource clears that cache, so a new
version of a profile takes effect at once. Core definitions are compiled once
per process and shared by all registries.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from fhir_ccm.definitions import code_systems, structure_definitions, value_sets
from fhir_ccm.validation import valuesets
from fhir_ccm.validation.profiles.model import CompiledProfile, annotate, compile_structure, compiled_core
from fhir_ccm.validation.profiles.snapshot import SnapshotError, generate_snapshot
from fhir_ccm.validation.profiles.terminology import Expansion, expand_value_set

CONFORMANCE_TYPES = ("StructureDefinition", "ValueSet", "CodeSystem")


def _canonical(url: str) -> str:
    return url.split("|", 1)[0]


class Registry:
    """StructureDefinitions, ValueSets and CodeSystems by canonical url (see the module docstring)."""

    def __init__(self, resources: Iterable[dict[str, Any]] = ()) -> None:
        self._lock = threading.RLock()
        self._definitions: dict[str, dict[str, Any]] = {}
        self._value_sets: dict[str, dict[str, Any]] = {}
        self._code_systems: dict[str, dict[str, Any]] = {}
        self._compiled: dict[str, CompiledProfile | None] = {}
        self._expansions: dict[str, Expansion | None] = {}
        self.problems: dict[str, str] = {}  # url -> why its snapshot could not be generated
        self._pending: set[str] = set()  # snapshots being generated (the lock is re-entrant)
        for resource in resources:
            self.add(resource)

    # ----------------------------------------------------------------------- feeding

    def add(self, resource: dict[str, Any]) -> None:
        """Add a StructureDefinition, ValueSet or CodeSystem (a Bundle adds its entries); others are ignored."""
        resource_type = resource.get("resourceType")
        if resource_type == "Bundle":
            for entry in resource.get("entry") or ():
                if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
                    self.add(entry["resource"])
            return
        url = resource.get("url")
        if resource_type not in CONFORMANCE_TYPES or not isinstance(url, str):
            return
        with self._lock:
            self._compiled.clear()
            self._expansions.clear()
            if resource_type == "ValueSet":
                self._value_sets[url] = resource
            elif resource_type == "CodeSystem":
                self._code_systems[url] = resource
            else:
                self.problems.pop(url, None)
                self._definitions[url] = resource
                if "snapshot" not in resource:
                    self._generate(url)

    def load_paths(self, paths: Iterable[str | Path]) -> int:
        """Add the conformance resources in JSON files and folders (recursively); returns how many were read."""
        count = 0
        for path in paths:
            path = Path(path)
            files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
            for file in files:
                with open(file, encoding="utf-8") as handle:
                    resource = json.load(handle, parse_float=Decimal)
                if isinstance(resource, dict):
                    self.add(resource)
                    count += 1
        return count

    def load_store(self, store: Any) -> int:
        """Add the current StructureDefinitions, ValueSets and CodeSystems of a ``Store``."""
        count = 0
        for resource_type in CONFORMANCE_TYPES:
            for version in store.iter_current(resource_type):
                if version.json:
                    self.add(json.loads(version.json, parse_float=Decimal))
                    count += 1
        return count

    # ----------------------------------------------------------------------- lookups

    def structure_definition(self, url: str) -> dict[str, Any] | None:
        """A StructureDefinition (with its snapshot when one could be made) from the registry or the core."""
        url = _canonical(url)
        with self._lock:
            found = self._definitions.get(url)
            if found is not None and "snapshot" not in found and url not in self.problems:
                self._generate(url)
                found = self._definitions.get(url)
        return found if found is not None else structure_definitions().get(url)

    def _generate(self, url: str) -> None:
        sd = self._definitions[url]
        if sd.get("baseDefinition") and _canonical(sd["baseDefinition"]) in self._pending:
            self.problems[url] = "its base definition derives from itself"
            return
        self._pending.add(url)
        try:
            self._definitions[url] = generate_snapshot(sd, self.structure_definition)
            self.problems.pop(url, None)
        except SnapshotError as error:
            self.problems[url] = f"no snapshot could be generated: {error}"
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:  # a malformed differential
            self.problems[url] = f"no snapshot could be generated: malformed definition ({error!r})"
        finally:
            self._pending.discard(url)

    def profile(self, url: str) -> CompiledProfile | None:
        """The compiled definition at ``url`` (registry or core), or None when unknown or unusable."""
        url = _canonical(url)
        with self._lock:
            if url not in self._definitions:
                return compiled_core(url)
            if url in self._compiled:
                return self._compiled[url]
            sd = self.structure_definition(url)
            compiled = None
            if sd is not None and "snapshot" in sd:
                try:
                    compiled = compile_structure(sd)
                    if compiled.derivation == "constraint":
                        annotate(compiled)
                except (KeyError, ValueError, TypeError) as error:
                    self.problems[url] = f"the snapshot cannot be compiled: {error}"
                    compiled = None
            self._compiled[url] = compiled
            return compiled

    def problem(self, url: str) -> str | None:
        """Why a known definition cannot be used, if it cannot."""
        return self.problems.get(_canonical(url))

    def value_set(self, url: str) -> dict[str, Any] | None:
        url = _canonical(url)
        return self._value_sets.get(url) or value_sets().get(url)

    def code_system(self, url: str) -> dict[str, Any] | None:
        url = _canonical(url)
        return self._code_systems.get(url) or code_systems().get(url)

    def expand(self, url: str) -> Expansion | None:
        """The codes of a ValueSet, or None when it is unknown or cannot be enumerated."""
        url = _canonical(url)
        if url not in self._value_sets and not self._code_systems:
            return valuesets.expand(url)
        with self._lock:
            if url not in self._expansions:
                self._expansions[url] = None  # guards against ValueSets importing themselves
                value_set = self.value_set(url)
                self._expansions[url] = (
                    None if value_set is None else expand_value_set(value_set, self.code_system, self.expand)
                )
            return self._expansions[url]


_DEFAULT: Registry | None = None


def default_registry() -> Registry:
    """A registry with the core definitions only, shared by callers that pass none."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Registry()
    return _DEFAULT
