"""The one-walk shape check agrees with checking the shapes path by path."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path
from typing import Any

import pytest

from fhir_ccm.coordination import shapes
from fhir_ccm.coordination.errors import InvalidSource

EXAMPLES = sorted(Path(__file__).parent.parent.glob("examples/*/*.json"))
SOURCES = [
    resource
    for resource in (json.loads(path.read_text()) for path in EXAMPLES)
    if resource.get("resourceType") in shapes.SHAPES
]
WRONG_VALUES: list[Any] = ["text", 3, [], {}, [{}], None, True]


def every_path_holds(resource: dict[str, Any]) -> bool:
    paths = (*shapes._COMMON, *shapes.SHAPES.get(resource["resourceType"], ()))
    return all(shapes._holds(resource, shapes._steps(path), shapes._KINDS[kind]) for path, kind in paths)


def places(value: Any, found: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in ``value``, to put a wrong value at."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in ("resourceType", "id"):
                found.append((value, key))
                places(item, found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.append((value, index))
            places(item, found)
    return found


def test_there_are_sources_of_every_kind() -> None:
    assert {resource["resourceType"] for resource in SOURCES} >= {"CarePlan", "Goal", "MedicationStatement", "CareTeam"}


@pytest.mark.parametrize("seed", range(20))
def test_the_tree_walk_and_the_path_walk_agree_on_damaged_sources(seed: int) -> None:
    chance = random.Random(seed)
    agreed_on_damage = 0
    for original in SOURCES:
        resource = copy.deepcopy(original)
        spots = places(resource, [])
        for container, key in chance.sample(spots, min(2, len(spots))):
            container[key] = chance.choice(WRONG_VALUES)
        holds = every_path_holds(resource)
        assert shapes._tree_holds(resource, shapes._tree(resource["resourceType"])) == holds
        agreed_on_damage += not holds
    assert agreed_on_damage  # some damage broke a shape, and both walks saw it


def test_a_broken_shape_is_named() -> None:
    source = copy.deepcopy(next(r for r in SOURCES if r["resourceType"] == "MedicationStatement"))
    source["dosage"] = [{"route": "by mouth"}]
    with pytest.raises(InvalidSource, match=r"dosage\[0\]\.route must be an object"):
        shapes.check_shape(source)
