"""The checks on write refuse everything the ``fhir.resources`` R4B models refuse.

Writes are checked structurally by the base R4 walk of the definition-driven
validator (``validation.check_issues``). The R4B pydantic models are an
independent implementation of the same rules, so they serve here as the
oracle: over the validation corpus and over systematic damage done to every
example resource (wrong JSON types, arrays where one value goes and the
reverse, empty and malformed primitives, unknown elements), whatever R4B
refuses must be refused on write, and whatever R4B accepts in the examples
must be accepted.

R4B models are used only for the types where R4 and R4B define the same
top-level elements; for the others R4B is no oracle.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from fhir_ccm.definitions import resource_types
from fhir_ccm.definitions.elements import properties
from fhir_ccm.validation import check_issues

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "validation_corpus"
EXAMPLES = ROOT / "examples"
# R4 types whose R4B model has other elements (R4B redefined them).
REDEFINED_IN_R4B = frozenset({"Evidence", "EvidenceVariable"})
EVERY_NTH_LEAF = 5  # damage every fifth primitive of each example: thousands of cases in seconds


def _model_elements(model: Any) -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        alias = field.alias or name
        if alias.startswith("_") or name.endswith("__ext") or alias in ("fhir_comments", "resource_type"):
            continue
        names.add(alias)
    return names


@cache
def r4b_model(resource_type: str) -> Any | None:
    """The R4B model of a type, when it defines R4's top-level elements; else None."""
    if resource_type in REDEFINED_IN_R4B or resource_type not in resource_types():
        return None
    try:
        model = get_fhir_model_class(resource_type)
    except (ValueError, KeyError, ImportError):
        return None
    return model if set(properties(resource_type)) <= _model_elements(model) else None


def r4b_refuses(resource: Any) -> bool | None:
    """Whether the R4B model refuses the resource; None when there is no usable model."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        return None
    model = r4b_model(resource["resourceType"])
    if model is None:
        return None
    try:
        model.model_validate(resource)
    except (ValidationError, ValueError, TypeError):
        return True
    return False


def errors_on_write(resource: dict[str, Any]) -> list[str]:
    return [f"{i.code} {i.expression} {i.diagnostics}" for i in check_issues(resource) if i.severity == "error"]


# -- cases ---------------------------------------------------------------------


def _examples() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(EXAMPLES.rglob("*.json")):
        resource = json.loads(path.read_text())
        if resource.get("resourceType") == "Bundle":
            for index, entry in enumerate(resource.get("entry") or []):
                if isinstance(entry.get("resource"), dict):
                    yield f"{path.relative_to(ROOT)}#{index}", entry["resource"]
        else:
            yield str(path.relative_to(ROOT)), resource


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """Every primitive value below the resource's top level, with its path of keys and indexes."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in ("resourceType", "div", "contained") and not key.startswith("_"):
                yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    elif path:
        yield path, value


def _set(resource: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    damaged = copy.deepcopy(resource)
    parent: Any = damaged
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return damaged


def _damages(value: Any) -> list[tuple[str, Any]]:
    """Wrong values for a primitive: another JSON type, an array or object, an empty string."""
    found: list[tuple[str, Any]] = [("object", {"value": value}), ("array", [value])]
    if isinstance(value, bool):
        found += [("string", "true"), ("number", 1)]
    elif isinstance(value, (int, float)):
        found += [("string", str(value)), ("boolean", True)]
    else:
        found += [("number", 7), ("boolean", False), ("empty", ""), ("malformed", "\u0007 not valid \u0007")]
    return found


def damaged_examples() -> Iterator[Any]:
    for name, resource in _examples():
        if r4b_model(resource["resourceType"]) is None:
            continue
        for number, (path, value) in enumerate(_leaves(resource)):
            if number % EVERY_NTH_LEAF:
                continue
            where = ".".join(map(str, path))
            for kind, wrong in _damages(value):
                yield pytest.param(_set(resource, path, wrong), id=f"{name}:{where}:{kind}")
        yield pytest.param({**resource, "unknownElement": 1}, id=f"{name}:unknownElement")
        first = next((k for k, v in resource.items() if isinstance(v, list) and v), None)
        if first is not None:
            yield pytest.param({**resource, first: resource[first][0]}, id=f"{name}:{first}:not-an-array")


def corpus_resources() -> Iterator[Any]:
    for path in sorted(CORPUS.glob("*/*.json")):
        if path.name != "expected.json":
            yield pytest.param(json.loads(path.read_text()), id=str(path.relative_to(CORPUS)))


# -- tests ---------------------------------------------------------------------


@pytest.mark.parametrize("resource", [*damaged_examples(), *corpus_resources()])
def test_what_r4b_refuses_is_refused_on_write(resource: dict[str, Any]) -> None:
    if r4b_refuses(resource) is not True:
        return
    assert errors_on_write(resource), "R4B refuses this resource but the checks on write accept it"


@pytest.mark.parametrize(("name", "resource"), list(_examples()), ids=[name for name, _ in _examples()])
def test_examples_r4b_accepts_are_accepted_on_write(name: str, resource: dict[str, Any]) -> None:
    assert r4b_refuses(resource) is not True, f"{name}: R4B refuses an example"
    assert errors_on_write(resource) == []


def test_the_oracle_covers_many_damaged_resources() -> None:
    refused = sum(r4b_refuses(case.values[0]) is True for case in damaged_examples())
    assert refused >= 2000, refused


def test_types_r4b_checks_have_the_r4_elements() -> None:
    """The oracle is used only where R4B defines R4's top-level elements; the CCM types all qualify."""
    for resource_type in ("CarePlan", "Goal", "MedicationStatement", "CareTeam", "Patient", "Bundle", "Condition"):
        assert r4b_model(resource_type) is not None, resource_type
    for resource_type in REDEFINED_IN_R4B:
        assert r4b_model(resource_type) is None
