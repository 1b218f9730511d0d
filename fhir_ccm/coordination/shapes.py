"""The JSON shapes the engine reads, checked before it reads them.

The server validates what it stores, but ``$reconcile`` may also be handed
sources that were never stored. Rather than fail deep inside a rule, every
element the engine reads is checked here against the JSON kind FHIR gives it
(an object, an array, a string), and a source that breaks one raises
``InvalidSource`` naming the element. Paths step into arrays with ``[]``:
``dosage[].route`` is the route of every dosage; an absent element is fine.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import Any

from fhir_ccm.coordination.errors import InvalidSource

OBJECT, STRING, SCALAR = "an object", "a string", "a number, string or boolean"

_CODING = ("coding[]", OBJECT), ("coding[].system", STRING), ("coding[].code", STRING), ("coding[].display", STRING)
_QUANTITY = (("value", SCALAR), ("unit", STRING), ("code", STRING), ("comparator", STRING))


def _concept(path: str) -> tuple[tuple[str, str], ...]:
    return ((path, OBJECT), *((f"{path}.{step}", kind) for step, kind in _CODING), (f"{path}.text", STRING))


def _quantity(path: str) -> tuple[tuple[str, str], ...]:
    return ((path, OBJECT), *((f"{path}.{step}", kind) for step, kind in _QUANTITY))


def _reference(path: str) -> tuple[tuple[str, str], ...]:
    return ((path, OBJECT), (f"{path}.reference", STRING), (f"{path}.display", STRING))


def _dosage(path: str) -> tuple[tuple[str, str], ...]:
    return (
        (path, OBJECT),
        (f"{path}.sequence", SCALAR),
        (f"{path}.timing", OBJECT),
        (f"{path}.timing.repeat", OBJECT),
        (f"{path}.timing.repeat.when[]", STRING),
        (f"{path}.timing.repeat.timeOfDay[]", STRING),
        (f"{path}.timing.repeat.frequency", SCALAR),
        (f"{path}.timing.repeat.period", SCALAR),
        (f"{path}.timing.repeat.periodUnit", STRING),
        *_concept(f"{path}.timing.code"),
        *_concept(f"{path}.route"),
        (f"{path}.doseAndRate[]", OBJECT),
        *_quantity(f"{path}.doseAndRate[].doseQuantity"),
        (f"{path}.doseAndRate[].doseRange", OBJECT),
        *_quantity(f"{path}.doseAndRate[].doseRange.low"),
        *_quantity(f"{path}.doseAndRate[].doseRange.high"),
    )


_COMMON = (
    ("meta", OBJECT),
    ("meta.versionId", STRING),
    ("meta.lastUpdated", STRING),
    *_reference("subject"),
    ("identifier[]", OBJECT),
    ("identifier[].system", STRING),
    ("identifier[].value", STRING),
    ("status", STRING),
)
_NAME = (
    ("name[]", OBJECT),
    ("name[].use", STRING),
    ("name[].text", STRING),
    ("name[].family", STRING),
    ("name[].given[]", STRING),
    ("name[].prefix[]", STRING),
    ("name[].suffix[]", STRING),
)
_MEDICATION = (
    *_concept("medicationCodeableConcept"),
    *_reference("medicationReference"),
    ("contained[]", OBJECT),
    *_concept("contained[].code"),
)

# What each source type's elements must be.
SHAPES: dict[str, tuple[tuple[str, str], ...]] = {
    "CarePlan": (
        ("title", STRING),
        ("created", STRING),
        ("period", OBJECT),
        ("period.start", STRING),
        *_reference("author"),
        *_reference("contributor[]"),
        *_reference("addresses[]"),
        *_reference("goal[]"),
        ("activity[]", OBJECT),
        *_reference("activity[].reference"),
    ),
    "Goal": (
        ("lifecycleStatus", STRING),
        ("statusDate", STRING),
        ("startDate", STRING),
        *_concept("description"),
        *_reference("expressedBy"),
        ("target[]", OBJECT),
        *_concept("target[].measure"),
        *_quantity("target[].detailQuantity"),
        ("target[].detailRange", OBJECT),
        *_quantity("target[].detailRange.low"),
        *_quantity("target[].detailRange.high"),
        ("target[].detailRatio", OBJECT),
        *_quantity("target[].detailRatio.numerator"),
        *_quantity("target[].detailRatio.denominator"),
        *_concept("target[].detailCodeableConcept"),
        ("target[].detailString", STRING),
        ("target[].detailInteger", SCALAR),
    ),
    "MedicationStatement": (
        *_MEDICATION,
        ("dateAsserted", STRING),
        ("effectiveDateTime", STRING),
        ("effectivePeriod", OBJECT),
        ("effectivePeriod.start", STRING),
        *_reference("informationSource"),
        *_dosage("dosage[]"),
    ),
    "MedicationRequest": (
        *_MEDICATION,
        ("intent", STRING),
        ("authoredOn", STRING),
        *_reference("requester"),
        *_reference("recorder"),
        *_dosage("dosageInstruction[]"),
    ),
    "CareTeam": (
        ("period", OBJECT),
        ("period.start", STRING),
        ("participant[]", OBJECT),
        *_reference("participant[].member"),
        *_reference("participant[].onBehalfOf"),
        *_concept("participant[].role[]"),
        *_reference("managingOrganization[]"),
        *_reference("reasonReference[]"),
    ),
    "Condition": (
        *_concept("code"),
        *_concept("verificationStatus"),
        ("recordedDate", STRING),
        ("onsetDateTime", STRING),
        *_reference("asserter"),
        *_reference("recorder"),
    ),
    "Practitioner": _NAME,
    "Patient": _NAME,
    "Medication": _concept("code"),
}

_KINDS: dict[str, tuple[type, ...]] = {OBJECT: (dict,), STRING: (str,), SCALAR: (str, int, float, bool, Decimal)}


def check_shape(resource: dict[str, Any]) -> None:
    """Raise ``InvalidSource`` at the first element of ``resource`` the engine could not read.

    One walk over the shapes of the type, merged into a tree, tells whether every
    shape holds; only when one does not are the paths walked one by one, to name
    where it fails (building those names for every element costs more than the
    rest of a reconciliation).
    """
    if _tree_holds(resource, _tree(resource["resourceType"])):
        return
    for path, kind in (*_COMMON, *SHAPES.get(resource["resourceType"], ())):
        steps = _steps(path)
        if _holds(resource, steps, _KINDS[kind]):
            continue
        problem = _first_problem(resource, path.split("."), kind)
        if problem:
            raise InvalidSource(f"{resource['resourceType']}/{resource['id']}: {problem}")


class _Node:
    """Where paths meet: the kinds the values here must have, and the steps below."""

    __slots__ = ("kinds", "children")

    def __init__(self) -> None:
        self.kinds: list[tuple[type, ...]] = []
        self.children: dict[tuple[str, bool], _Node] = {}


@functools.cache
def _tree(resource_type: str) -> dict[tuple[str, bool], _Node]:
    """The shapes of ``resource_type`` merged by their common steps: ``(name, is array) -> node``."""
    root: dict[tuple[str, bool], _Node] = {}
    for path, kind in (*_COMMON, *SHAPES.get(resource_type, ())):
        level = root
        steps = _steps(path)
        for index, step in enumerate(steps):
            node = level.setdefault(step, _Node())
            if index == len(steps) - 1:
                node.kinds.append(_KINDS[kind])
            level = node.children
    return root


def _tree_holds(value: dict[str, Any], tree: dict[tuple[str, bool], _Node]) -> bool:
    """Whether every path of ``tree`` holds in ``value``: the walk of ``_holds``, each step taken once."""
    for (name, many), node in tree.items():
        item = value.get(name)
        if item is None:
            continue
        if many and not isinstance(item, list):
            return False
        for element in item if many else (item,):
            for kinds in node.kinds:
                if not isinstance(element, kinds):
                    return False
            if node.children and (not isinstance(element, dict) or not _tree_holds(element, node.children)):
                return False
    return True


@functools.cache
def _steps(path: str) -> tuple[tuple[str, bool], ...]:
    return tuple((step.removesuffix("[]"), step.endswith("[]")) for step in path.split("."))


def _holds(value: dict[str, Any], steps: tuple[tuple[str, bool], ...], kinds: tuple[type, ...]) -> bool:
    name, many = steps[0]
    item = value.get(name)
    if item is None:
        return True
    if many and not isinstance(item, list):
        return False
    rest = steps[1:]
    for element in item if many else (item,):
        if not rest:
            if not isinstance(element, kinds):
                return False
        elif not isinstance(element, dict) or not _holds(element, rest, kinds):
            return False
    return True


def _first_problem(value: dict[str, Any], steps: list[str], kind: str, where: str = "") -> str | None:
    step, rest = steps[0], steps[1:]
    many = step.endswith("[]")
    name = step.removesuffix("[]")
    here = f"{where}.{name}" if where else name
    item = value.get(name)
    if item is None:
        return None
    if many and not isinstance(item, list):
        return f"{here} must be an array"
    items = list(enumerate(item)) if many else [(None, item)]
    for index, element in items:
        at = f"{here}[{index}]" if index is not None else here
        if not rest:
            if not isinstance(element, _KINDS[kind]):
                return f"{at} must be {kind}"
            continue
        if not isinstance(element, dict):
            return f"{at} must be an object"
        problem = _first_problem(element, rest, kind, at)
        if problem:
            return problem
    return None
