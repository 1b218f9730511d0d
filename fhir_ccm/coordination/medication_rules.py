"""M2-M6: the medication rules, one small predicate each, tried in table order.

Every pair of positions (see ``medications``) is tried against ``RULES``; the
first rule that finds something reports one conflict implicating every source
of both positions, so a pair of disagreeing sources gets at most one
DetectedIssue and M5b wins over M5. M1 (agreement) is not a rule: agreeing
sources share a position. M7 (no RxNorm coding) sources are never compared.

When more than two sources disagree on one drug, each pair of disagreeing
positions is one issue: three providers where two agree against one give one
issue implicating all three; three different daily doses give three issues.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations, product

from fhir_ccm.coordination import knowledge
from fhir_ccm.coordination.conflicts import Conflict, Finding, Rule
from fhir_ccm.coordination.medications import Position


class Pair:
    """Two positions, with what several rules ask of both worked out once."""

    __slots__ = ("a", "b", "both_active", "disjoint", "_ingredient_pairs")

    def __init__(self, a: Position, b: Position) -> None:
        self.a, self.b = a, b
        self.both_active = a.active and b.active
        self.disjoint = not set(a.first.ingredients) & set(b.first.ingredients)
        self._ingredient_pairs: list[tuple[tuple[str, str], tuple[str, str]]] | None = None

    @property
    def ingredient_pairs(self) -> list[tuple[tuple[str, str], tuple[str, str]]]:
        """Every (id, name) of one position's ingredients with every one of the other's, sorted."""
        if self._ingredient_pairs is None:
            first = zip(self.a.first.ingredients, self.a.first.ingredient_names, strict=True)
            second = zip(self.b.first.ingredients, self.b.first.ingredient_names, strict=True)
            self._ingredient_pairs = sorted(product(first, second))
        return self._ingredient_pairs


def listed_pair(pair: Pair) -> Finding | None:
    """M5b: a pair the drug table lists as not to be combined (e.g. ACE inhibitor + ARB)."""
    if not (pair.both_active and pair.disjoint):
        return None
    for (x, x_name), (y, y_name) in pair.ingredient_pairs:
        reason = knowledge.listed_pair(x, y)
        if reason:
            return Finding(f"{x_name} and {y_name} should not be combined ({reason})")
    return None


def same_class(pair: Pair) -> Finding | None:
    """M5: different ingredients of one therapeutic class (ATC 4th level)."""
    if not (pair.both_active and pair.disjoint):
        return None
    for (x, x_name), (y, y_name) in pair.ingredient_pairs:
        shared = knowledge.same_class(x, y)
        if shared:
            return Finding(f"{x_name} and {y_name} are both {shared}")
    return None


def same_generic(pair: Pair) -> Finding | None:
    """M4: the same ingredient(s) by another route or in another form (or in two products)."""
    a, b = pair.a, pair.b
    if not pair.both_active or pair.disjoint:
        return None
    if a.first.ingredients != b.first.ingredients:
        shared = sorted(set(a.first.ingredient_names) & set(b.first.ingredient_names))
        return Finding(f"{' / '.join(shared) or 'an ingredient'} is taken in two different products")
    if a.entry != b.entry:
        return Finding(f"the same ingredient(s) by two routes ({a.first.route} and {b.first.route})")
    if a.first.form and b.first.form and a.first.form != b.first.form:
        forms = " and ".join(" ".join(form) for form in sorted({a.first.form, b.first.form}))
        return Finding(f"the same ingredient(s) in two forms ({forms})")
    return None


def daily_dose_differs(pair: Pair) -> Finding | None:
    """M2: both active, total daily dose differs."""
    first, second = pair.a.first.daily, pair.b.first.daily
    if pair.a.entry != pair.b.entry or not pair.both_active or not first or not second:
        return None
    comparable = {(ing, unit) for ing, _, _, unit in first} == {(ing, unit) for ing, _, _, unit in second}
    return Finding("the total daily dose differs") if comparable and first != second else None


def interval_differs(pair: Pair) -> Finding | None:
    """M3: both active, same total daily dose, another dosing interval."""
    a, b = pair.a, pair.b
    first, second = a.first.regimen.per_day, b.first.regimen.per_day
    if a.entry != b.entry or not pair.both_active or not a.first.daily or a.first.daily != b.first.daily:
        return None
    return (
        Finding("the same daily dose is taken at a different interval")
        if first and second and first != second
        else None
    )


def status_differs(pair: Pair) -> Finding | None:
    """M6: one source says it is taken, the other that it was stopped, completed or not taken."""
    if pair.a.entry != pair.b.entry or {pair.a.first.activity, pair.b.first.activity} != {"active", "inactive"}:
        return None
    return Finding("one source lists it as active, another as no longer taken")


RULES: tuple[tuple[Rule, Callable[[Pair], Finding | None]], ...] = (
    (Rule("M5b", "duplicate-therapy", "DUPTHPY", "high"), listed_pair),
    (Rule("M5", "duplicate-therapy", "DUPTHPCLS", "moderate"), same_class),
    (Rule("M4", "duplicate-therapy", "DUPTHPGEN", "moderate"), same_generic),
    (Rule("M2", "dose-conflict", "DOSE", "moderate"), daily_dose_differs),
    (Rule("M3", "dose-conflict", "DOSEIVL", "low"), interval_differs),
    (Rule("M6", "status-conflict", None, "moderate"), status_differs),
)


def subject(a: Position, b: Position) -> str:
    names = sorted({" / ".join(p.first.ingredient_names) for p in (a, b)})
    return " and ".join(names)


def medication_conflicts(positions: list[Position]) -> list[Conflict]:
    found = []
    verified = [p for p in positions if p.first.verified]
    for a, b in combinations(verified, 2):
        pair = Pair(a, b)
        for rule, detect in RULES:
            finding = detect(pair)
            if finding:
                statements = [(use.source, use.says()) for use in (*a.uses, *b.uses)]
                found.append(Conflict.of(rule, finding, subject(a, b), statements))
                break
    return found
