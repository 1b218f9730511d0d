"""G1 and G2: the reconciled goals of the plan, and goals that disagree.

Goals whose targets are equal measure for measure (after conversion, at
reporting precision) and that are equally active are one position (G1): the
plan cites the most recent of them. Two active positions that share a measure
but not its target are a goal-conflict (G2): low when every shared measure's
targets overlap, moderate when one is disjoint. Flag, never pick: both stay in
the plan. Goals without a comparable target are kept as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations
from typing import Any

from fhir_ccm.coordination.conflicts import Conflict, Finding, Rule
from fhir_ccm.coordination.references import SourceRef, source_ref
from fhir_ccm.coordination.targets import MeasuredTarget, Target, measured_targets


@dataclass(frozen=True)
class GoalView:
    source: SourceRef
    active: bool
    description: str
    targets: tuple[tuple[str, Target], ...]  # by measure key, sorted
    said: str
    names: tuple[tuple[str, str], ...] = ()  # measure key -> name


@dataclass(frozen=True)
class Position:
    """Goals that agree: same targets, same activity."""

    goals: tuple[GoalView, ...]

    @property
    def lead(self) -> GoalView:
        return most_recent(self.goals)

    def target(self, key: str) -> Target | None:
        return dict(self.goals[0].targets).get(key)

    @property
    def active(self) -> bool:
        return self.goals[0].active


def most_recent(goals: tuple[GoalView, ...]) -> GoalView:
    """The latest-dated goal; among equal dates the smallest key (goals come sorted by key)."""
    return sorted(goals, key=lambda g: g.source.date or "", reverse=True)[0]


def view_goal(goal: dict[str, Any]) -> GoalView:
    found: list[MeasuredTarget] = []
    for target in goal.get("target") or []:
        if isinstance(target, dict):
            found.extend(measured_targets(target))
    targets: dict[str, Target] = {}
    for item in found:
        key = item.measure.key
        targets[key] = targets[key].intersect(item.target) if key in targets else item.target
    description = (goal.get("description") or {}).get("text") or f"Goal/{goal['id']}"
    said = "; ".join(_said(item) for item in found) or "no comparable target"
    names = tuple(sorted({item.measure.key: item.measure.name for item in found}.items()))
    active = goal.get("lifecycleStatus") == "active"
    return GoalView(source_ref(goal), active, description, tuple(sorted(targets.items())), said, names)


def _said(item: MeasuredTarget) -> str:
    canonical = item.target.describe()
    same = _numbers(canonical) == _numbers(item.written)
    return f"{item.measure.name} {item.written}" + ("" if same else f" (= {canonical})")


def _numbers(text: str) -> list[Fraction]:
    return [Fraction(number) for number in re.findall(r"\d+(?:\.\d+)?", text)]


def positions(goals: tuple[GoalView, ...]) -> list[Position]:
    grouped: dict[Any, list[GoalView]] = {}
    for goal in sorted(goals, key=lambda g: g.source):
        key = (goal.active, goal.targets) if goal.targets else ("alone", goal.source.key)
        grouped.setdefault(key, []).append(goal)
    return [Position(tuple(members)) for members in grouped.values()]


def _targets_differ(a: Position, b: Position) -> Finding | None:
    if not (a.active and b.active and a.goals[0].targets and b.goals[0].targets):
        return None
    shared = sorted(set(dict(a.goals[0].targets)) & set(dict(b.goals[0].targets)))
    differing = [key for key in shared if a.target(key) != b.target(key)]
    if not differing:
        return None
    disjoint = any(_pair(a, b, key)[0].disjoint(_pair(a, b, key)[1]) for key in shared)
    names = dict(a.goals[0].names)
    measures = " and ".join(names.get(key, key) for key in differing)
    grade = "the targets do not overlap" if disjoint else "the targets overlap"
    return Finding(f"active goals set different targets for {measures} ({grade})", "moderate" if disjoint else "low")


def _pair(a: Position, b: Position, key: str) -> tuple[Target, Target]:
    first, second = a.target(key), b.target(key)
    assert first is not None and second is not None
    return first, second


GOAL_RULES: tuple[tuple[Rule, Callable[[Position, Position], Finding | None]], ...] = (
    (Rule("G2", "goal-conflict", None, "low"), _targets_differ),
)


@dataclass(frozen=True)
class GoalResult:
    cited: tuple[GoalView, ...]  # one per position, sorted by key: CarePlan.goal
    conflicts: tuple[Conflict, ...]
    sources: tuple[SourceRef, ...]


def reconcile_goals(goals: tuple[dict[str, Any], ...]) -> GoalResult:
    views = tuple(view_goal(goal) for goal in goals)
    found = positions(views)
    conflicts = []
    for a, b in combinations(found, 2):
        for rule, detect in GOAL_RULES:
            finding = detect(a, b)
            if finding:
                statements = [(g.source, f"{g.description}: {g.said}") for g in (*a.goals, *b.goals)]
                conflicts.append(Conflict.of(rule, finding, "Goal targets", statements))
                break
    cited = tuple(sorted((p.lead for p in found), key=lambda g: g.source))
    return GoalResult(cited, tuple(conflicts), tuple(sorted(v.source for v in views)))
