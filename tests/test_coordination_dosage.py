"""Total daily dose: dose per administration times administrations per day, from a Dosage."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from test_coordination_builders import dosage, medication

from fhir_ccm.coordination.dosage import TIMING_CODES, UNIT, Amount, regimen_of
from fhir_ccm.coordination.medications import view_medication
from fhir_ccm.coordination.sources import collect


@pytest.mark.parametrize(
    ("code", "per_day"),
    [
        ("BID", 2),
        ("TID", 3),
        ("QID", 4),
        ("QD", 1),
        ("QOD", Fraction(1, 2)),
        ("Q4H", 6),
        ("Q6H", 4),
        ("Q8H", 3),
        ("Q12H", 2),
        ("AM", 1),
        ("PM", 1),
        ("HS", 1),
    ],
)
def test_timing_codes_give_administrations_per_day(code, per_day):
    regimen = regimen_of([dosage((10, "mg"), per=None, code=code)])
    assert regimen.per_day == per_day
    assert regimen.daily == Amount(10 * Fraction(per_day), 10 * Fraction(per_day), "mg")


def test_every_listed_timing_code_is_in_the_table():
    assert set(TIMING_CODES) == {"BID", "TID", "QID", "QD", "QOD", "Q4H", "Q6H", "Q8H", "Q12H", "AM", "PM", "HS"}


@pytest.mark.parametrize(
    ("per", "per_day"),
    [
        ((1, 1, "d"), 1),
        ((3, 1, "d"), 3),
        ((1, 12, "h"), 2),
        ((1, 1, "wk"), Fraction(1, 7)),
        ((2, 1, "wk"), Fraction(2, 7)),
        ((1, 2, "d"), Fraction(1, 2)),
        ((1, 30, "min"), 48),
    ],
)
def test_frequency_per_period_gives_administrations_per_day(per, per_day):
    assert regimen_of([dosage((1, "mg"), per=per)]).per_day == per_day


def test_repeat_wins_over_the_timing_code():
    assert regimen_of([dosage((1, "mg"), per=(3, 1, "d"), code="BID")]).per_day == 3


def test_events_of_the_day_count_when_no_period_is_given():
    instruction = dosage((5, "mg"), per=None)
    instruction["timing"] = {"repeat": {"when": ["MORN", "EVE"]}}
    assert regimen_of([instruction]).daily == Amount(Fraction(10), Fraction(10), "mg")


@pytest.mark.parametrize(
    ("dose", "expected"),
    [
        ((Decimal("0.5"), "g"), Amount(Fraction(500), Fraction(500), "mg")),
        ((250, "ug"), Amount(Fraction(1, 4), Fraction(1, 4), "mg")),
        ((Decimal("2.50"), "mg"), Amount(Fraction(5, 2), Fraction(5, 2), "mg")),
        ((2.5, "mg"), Amount(Fraction(5, 2), Fraction(5, 2), "mg")),
        ((2, "{tbl}"), Amount(Fraction(2), Fraction(2), UNIT)),
        ((1, "{capsule}"), Amount(Fraction(1), Fraction(1), UNIT)),
        ((2000, "[IU]"), Amount(Fraction(2000), Fraction(2000), "[IU]")),
    ],
)
def test_doses_are_normalized_to_milligrams_or_dose_units(dose, expected):
    assert regimen_of([dosage(dose)]).daily == expected


def test_concurrent_dosages_add_up_and_later_phases_do_not_count():
    morning = {**dosage((1, "{tbl}")), "sequence": 1}
    evening = {**dosage((2, "{tbl}")), "sequence": 1}
    taper = {**dosage((4, "{tbl}")), "sequence": 2}
    assert regimen_of([morning, evening, taper]).daily == Amount(Fraction(3), Fraction(3), UNIT)


def test_as_needed_dosing_has_no_fixed_daily_dose():
    instruction = {**dosage((1, "{tbl}"), per=(1, 6, "h")), "asNeededBoolean": True}
    regimen = regimen_of([instruction])
    assert regimen.daily is None and regimen.as_needed


def test_no_dosage_no_daily_dose():
    assert regimen_of([]).daily is None and regimen_of(None).per_day is None


def test_tablets_become_milligrams_by_the_product_strength():
    statement = medication(
        "m", "861007", "metformin hydrochloride 500 MG Oral Tablet", dose=(2, "{tbl}"), per=(2, 1, "d")
    )
    use = view_medication(statement, collect([statement], "p1"))
    assert use.daily == (("6809", Fraction(2000), Fraction(2000), "mg"),)


def test_a_combination_tablet_gives_a_daily_dose_per_ingredient():
    name = "sacubitril 49 MG / valsartan 51 MG Oral Tablet"
    statement = medication("m", "1656349", name, dose=(1, "{tbl}"), per=(2, 1, "d"))
    use = view_medication(statement, collect([statement], "p1"))
    assert use.daily == (("1656328", Fraction(98), Fraction(98), "mg"), ("69749", Fraction(102), Fraction(102), "mg"))
    assert "sacubitril 98 mg + valsartan 102 mg per day" in use.says()


def test_a_half_tablet_keeps_its_decimal():
    statement = medication("m", "197361", "amlodipine 5 MG Oral Tablet", dose=(Decimal("2.50"), "mg"))
    use = view_medication(statement, collect([statement], "p1"))
    assert use.daily == (("17767", Fraction(5, 2), Fraction(5, 2), "mg"),)
    assert "2.5 mg per day" in use.says()
