"""Realistic Chronic Care Management data, generated deterministically, and SQLite stores loaded with it.

``generate(spec)`` yields FHIR R4 resources as JSON dicts, shaped like the
example set in ``examples/``: shared practices (Organization) and their
clinicians (Practitioner), then for each patient a Patient, 2-3 chronic
Conditions on the shared problem list, one CCM CareTeam, and per managing
provider (primary care plus 0-2 specialists) a CarePlan, a Goal and
MedicationStatements (RxNorm), topped up with Observations (labs, blood
pressure, PHQ-9). CarePlans are ``active``, ``completed`` or ``on-hold`` with
periods spread over 2023-2026.

Every patient's data comes from its own seeded random generator, so patient
``n`` is the same in every store that holds it; a store of ``total`` resources
over ``patients`` patients gives each patient ``(total - shared) / patients``
resources (9 or 10 for both standard stores), so the 10k store is 1,000 of the
100k store's 10,000 patients with the same data per patient: only the size of
the tables differs.

``ensure_store(spec)`` loads a store through the server's own write path
(``fhir_ccm.interactions.update.update``: validation, index rows, versioning)
in batches of ``BATCH`` resources per transaction, and caches the file under
``bench-results/stores/`` keyed by a hash of the generator version, the spec
and the server's index code, so later runs reuse it.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import json
import os
import random
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.servers import ROOT

GENERATOR_VERSION = 1  # bump whenever the generated data changes: cached stores are rebuilt
SEED = 20_250_101
BATCH = 500  # resources per write transaction while loading
STORES_DIR = ROOT / "bench-results" / "stores"
# Sources whose changes alter what a loaded store contains (index rows, tables): part of the cache key.
INDEX_SOURCES = (
    "fhir_ccm/search/extract.py",
    "fhir_ccm/search/rows.py",
    "fhir_ccm/store/sqlite_index.py",
)

RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
NPI = "http://hl7.org/fhir/sid/us-npi"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
AS_OF = date(2026, 7, 1)  # the data's "today": plans that ended before it are completed
PLAN_STARTS = (date(2023, 1, 1), date(2026, 6, 30))  # CarePlan periods start in this range

# -- catalogues ---------------------------------------------------------------------------

SPECIALTIES = ("primary-care", "cardiology", "endocrinology", "nephrology", "behavioral-health")
PRACTICES_PER_SPECIALTY = 4
PHYSICIANS_PER_PRACTICE = 3  # plus one RN care manager

PRACTICE_NAMES = {
    "primary-care": (
        "Riverside Family Medicine",
        "Oak Park Primary Care",
        "Prairie View Internal Medicine",
        "Lincoln Square Family Practice",
    ),
    "cardiology": (
        "Lakeshore Heart and Vascular",
        "Capital Cardiology Group",
        "Heartland Cardiovascular Clinic",
        "North Shore Heart Associates",
    ),
    "endocrinology": (
        "Summit Endocrine and Diabetes Center",
        "Midwest Diabetes Institute",
        "Sangamon Endocrinology",
        "Bluestem Thyroid and Diabetes Care",
    ),
    "nephrology": (
        "Prairie Kidney Specialists",
        "Illinois Renal Associates",
        "Great Rivers Nephrology",
        "Central Kidney Care",
    ),
    "behavioral-health": (
        "Willow Creek Behavioral Health",
        "Harbor Light Counseling",
        "Maplewood Psychiatry",
        "Clearwater Mind and Wellness",
    ),
}
SPECIALTY_TEXT = {
    "primary-care": "Primary care practice",
    "cardiology": "Cardiology practice",
    "endocrinology": "Endocrinology practice",
    "nephrology": "Nephrology practice",
    "behavioral-health": "Behavioral health practice",
}
CITIES = (
    ("Springfield", "IL", "627"),
    ("Decatur", "IL", "625"),
    ("Champaign", "IL", "618"),
    ("Peoria", "IL", "616"),
    ("Bloomington", "IL", "617"),
    ("Quincy", "IL", "623"),
    ("Columbia", "MO", "652"),
    ("Hannibal", "MO", "634"),
)
STREETS = (
    "Maple Avenue",
    "Oak Street",
    "Lincoln Road",
    "Washington Boulevard",
    "Elm Drive",
    "Prairie Lane",
    "Cedar Court",
    "Jefferson Street",
    "Walnut Avenue",
    "Sunset Drive",
    "Park Place",
    "Main Street",
)
FEMALE_GIVEN = tuple(
    """
    Mary Patricia Linda Barbara Elizabeth Jennifer Maria Susan Margaret Dorothy Lisa Nancy Karen Betty
    Helen Sandra Donna Carol Ruth Sharon Michelle Laura Sarah Kimberly Deborah Jessica Shirley Cynthia
    Angela Melissa Brenda Amy Anna Rebecca Virginia Kathleen Pamela Martha Debra Amanda Rosa Carmen Ana
    Guadalupe Mei Aisha
    """.split()
)
MALE_GIVEN = tuple(
    """
    James John Robert Michael William David Richard Charles Joseph Thomas Christopher Daniel Paul Mark
    Donald George Kenneth Steven Edward Brian Ronald Anthony Kevin Jason Matthew Gary Timothy Jose Larry
    Jeffrey Frank Scott Eric Stephen Andrew Raymond Gregory Joshua Jerry Dennis Walter Patrick Peter
    Harold Luis Wei Ahmed
    """.split()
)
FAMILY = tuple(
    """
    Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez
    Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark
    Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams
    Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker
    Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper
    Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James
    Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez
    Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher Vasquez
    Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole
    Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens
    Harrison Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker
    Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon Munoz
    Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer Rice
    Schmidt Garza Daniels Ferguson Nichols Stephens Soto Weaver Ryan Gardner Payne Grant Dunn Kelley
    Spencer Hawkins Arnold Pierce Vazquez Hansen Peters Santos Hart Bradley Knight Elliott Cunningham
    Duncan Armstrong Hudson Carroll Lane Riley Andrews Alvarado Ray Delgado Berry Perkins Hoffman
    Johnston Matthews Pena Richards Contreras Willis Carpenter Lawrence Sandoval Okafor Desai Petrova
    Goldberg Whitfield Oneill
    """.split()
)


@dataclass(frozen=True)
class Medication:
    rxnorm: str
    display: str
    dose_mg: float
    frequency: int  # per day


@dataclass(frozen=True)
class Goal:
    loinc: str
    display: str
    text: str
    comparator: str
    value: float
    unit: str


@dataclass(frozen=True)
class Lab:
    loinc: str
    display: str
    unit: str
    low: float
    high: float
    decimals: int
    category: str  # laboratory, survey


@dataclass(frozen=True)
class ChronicCondition:
    key: str
    snomed: str
    snomed_display: str
    icd10: str
    icd10_display: str
    specialty: str
    medications: tuple[Medication, ...]
    goal: Goal
    lab: Lab


A1C_LAB = Lab("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 5.8, 10.5, 1, "laboratory")
EGFR_LAB = Lab("33914-3", "Glomerular filtration rate/1.73 sq M.predicted", "mL/min/{1.73_m2}", 25, 75, 0, "laboratory")
LDL_LAB = Lab("2089-1", "Cholesterol in LDL [Mass/volume] in Serum or Plasma", "mg/dL", 55, 190, 0, "laboratory")
POTASSIUM_LAB = Lab("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.4, 5.8, 1, "laboratory")
PHQ9_LAB = Lab("44261-6", "Patient Health Questionnaire 9 item (PHQ-9) total score", "{score}", 2, 22, 0, "survey")
BP_PANEL = ("85354-9", "Blood pressure panel with all children optional")
SYSTOLIC = ("8480-6", "Systolic blood pressure")
DIASTOLIC = ("8462-4", "Diastolic blood pressure")

CONDITIONS = (
    ChronicCondition(
        "t2dm",
        "44054006",
        "Diabetes mellitus type 2 (disorder)",
        "E11.9",
        "Type 2 diabetes mellitus without complications",
        "endocrinology",
        (Medication("861007", "metformin hydrochloride 500 MG Oral Tablet", 500, 2),),
        Goal("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "HbA1c below 7.0 %", "<", 7.0, "%"),
        A1C_LAB,
    ),
    ChronicCondition(
        "htn",
        "38341003",
        "Hypertensive disorder, systemic arterial (disorder)",
        "I10",
        "Essential (primary) hypertension",
        "cardiology",
        (
            Medication("314076", "lisinopril 10 MG Oral Tablet", 10, 1),
            Medication("197361", "amlodipine 5 MG Oral Tablet", 5, 1),
            Medication("979492", "losartan potassium 50 MG Oral Tablet", 50, 1),
            Medication("310798", "hydrochlorothiazide 25 MG Oral Tablet", 25, 1),
        ),
        Goal(SYSTOLIC[0], SYSTOLIC[1], "Systolic blood pressure below 130 mmHg", "<", 130, "mm[Hg]"),
        POTASSIUM_LAB,
    ),
    ChronicCondition(
        "hf",
        "84114007",
        "Heart failure (disorder)",
        "I50.22",
        "Chronic systolic (congestive) heart failure",
        "cardiology",
        (
            Medication("200032", "carvedilol 12.5 MG Oral Tablet", 12.5, 2),
            Medication("313988", "furosemide 40 MG Oral Tablet", 40, 1),
            Medication("1656349", "sacubitril 49 MG / valsartan 51 MG Oral Tablet", 100, 2),
            Medication("313096", "spironolactone 25 MG Oral Tablet", 25, 1),
        ),
        Goal(POTASSIUM_LAB.loinc, POTASSIUM_LAB.display, "Potassium below 5.0 mmol/L", "<", 5.0, "mmol/L"),
        POTASSIUM_LAB,
    ),
    ChronicCondition(
        "hld",
        "55822004",
        "Hyperlipidemia (disorder)",
        "E78.5",
        "Hyperlipidemia, unspecified",
        "cardiology",
        (
            Medication("617311", "atorvastatin 40 MG Oral Tablet", 40, 1),
            Medication("259255", "atorvastatin 80 MG Oral Tablet", 80, 1),
        ),
        Goal(LDL_LAB.loinc, LDL_LAB.display, "LDL cholesterol below 70 mg/dL", "<", 70, "mg/dL"),
        LDL_LAB,
    ),
    ChronicCondition(
        "ckd3",
        "433144002",
        "Chronic kidney disease stage 3 (disorder)",
        "N18.30",
        "Chronic kidney disease, stage 3 unspecified",
        "nephrology",
        (Medication("310429", "furosemide 20 MG Oral Tablet", 20, 1),),
        Goal(EGFR_LAB.loinc, EGFR_LAB.display, "eGFR at or above 45 mL/min/1.73m2", ">=", 45, "mL/min/{1.73_m2}"),
        EGFR_LAB,
    ),
    ChronicCondition(
        "mdd",
        "370143000",
        "Major depressive disorder (disorder)",
        "F33.1",
        "Major depressive disorder, recurrent, moderate",
        "behavioral-health",
        (
            Medication("312941", "sertraline 50 MG Oral Tablet", 50, 1),
            Medication("312938", "sertraline 100 MG Oral Tablet", 100, 1),
            Medication("993541", "24 HR bupropion hydrochloride 150 MG Extended Release Oral Tablet", 150, 1),
        ),
        Goal(PHQ9_LAB.loinc, PHQ9_LAB.display, "PHQ-9 below 5 (remission)", "<", 5, "{score}"),
        PHQ9_LAB,
    ),
)
CONDITION_WEIGHTS = (30, 34, 10, 20, 12, 10)  # prevalence among CCM enrollees, roughly


# -- the data set -------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreSpec:
    """A store of ``total`` resources over ``patients`` patients."""

    name: str
    total: int
    patients: int

    @property
    def per_patient(self) -> float:
        return (self.total - shared_count()) / self.patients


STORES = (StoreSpec("10k", 10_000, 1_000), StoreSpec("100k", 100_000, 10_000))


@dataclass(frozen=True)
class Practice:
    specialty: str
    index: int
    id: str
    name: str
    mrn_system: str
    mrn_prefix: str
    physicians: tuple[tuple[str, str], ...]  # (id, display)
    nurse: tuple[str, str]


@dataclass(frozen=True)
class PatientFacts:
    """What searches about a patient need to know: its id, its primary care MRN, its family name."""

    index: int
    id: str
    mrn_system: str
    mrn: str
    family: str


def _npi(rng: random.Random) -> str:
    """A 10-digit NPI starting with 1 whose check digit passes the Luhn test with the 80840 prefix."""
    base = "1" + "".join(str(rng.randrange(10)) for _ in range(8))
    digits = [int(d) for d in "80840" + base]
    total = 0
    for position, digit in enumerate(reversed(digits)):
        if position % 2 == 0:
            digit *= 2
            digit = digit - 9 if digit > 9 else digit
        total += digit
    return base + str((10 - total % 10) % 10)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _practices() -> list[Practice]:
    rng = random.Random(f"{SEED}-practices")
    practices = []
    for specialty in SPECIALTIES:
        for index, name in enumerate(PRACTICE_NAMES[specialty]):
            slug = _slug(name.split(" and ")[0])
            initials = "".join(word[0] for word in name.split() if word[0].isupper())[:3]
            physicians = []
            for number in range(PHYSICIANS_PER_PRACTICE):
                family = rng.choice(FAMILY)
                given = rng.choice(FEMALE_GIVEN + MALE_GIVEN)
                physicians.append((f"ccm-prac-{slug}-{number + 1}", f"Dr. {given} {family}, MD"))
            nurse = (f"ccm-prac-{slug}-rn", f"{rng.choice(FEMALE_GIVEN)} {rng.choice(FAMILY)}, RN")
            practices.append(
                Practice(
                    specialty=specialty,
                    index=index,
                    id=f"ccm-org-{slug}",
                    name=name,
                    mrn_system=f"https://{slug}.example.org/fhir/sid/mrn",
                    mrn_prefix=initials,
                    physicians=tuple(physicians),
                    nurse=nurse,
                )
            )
    return practices


PRACTICES = _practices()
BY_SPECIALTY = {s: [p for p in PRACTICES if p.specialty == s] for s in SPECIALTIES}


def shared_count() -> int:
    return len(PRACTICES) * (2 + PHYSICIANS_PER_PRACTICE)  # Organization, RN and physicians


def shared_resources() -> Iterator[dict[str, Any]]:
    """The practices and their clinicians, referenced by every patient's data."""
    rng = random.Random(f"{SEED}-shared")
    for practice in PRACTICES:
        city, state, zip3 = rng.choice(CITIES)
        yield {
            "resourceType": "Organization",
            "id": practice.id,
            "identifier": [{"use": "official", "system": NPI, "value": _npi(rng)}],
            "active": True,
            "type": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                            "code": "prov",
                            "display": "Healthcare Provider",
                        }
                    ],
                    "text": SPECIALTY_TEXT[practice.specialty],
                }
            ],
            "name": practice.name,
            "telecom": [{"system": "phone", "value": f"+1-217-555-{rng.randrange(10000):04d}", "use": "work"}],
            "address": [
                {
                    "use": "work",
                    "type": "physical",
                    "line": [f"{rng.randrange(100, 9999)} {rng.choice(STREETS)}, Suite {rng.randrange(100, 400)}"],
                    "city": city,
                    "state": state,
                    "postalCode": f"{zip3}{rng.randrange(100):02d}",
                    "country": "US",
                }
            ],
        }
        for (id, display), nurse in [(p, False) for p in practice.physicians] + [(practice.nurse, True)]:
            given, family = display.removeprefix("Dr. ").split(",")[0].rsplit(" ", 1)
            yield {
                "resourceType": "Practitioner",
                "id": id,
                "identifier": [{"use": "official", "system": NPI, "value": _npi(rng)}],
                "active": True,
                "name": [
                    {
                        "use": "official",
                        "family": family,
                        "given": [given],
                        **({"suffix": ["RN"]} if nurse else {"prefix": ["Dr."], "suffix": ["MD"]}),
                    }
                ],
                "telecom": [{"system": "phone", "value": f"+1-217-555-{rng.randrange(10000):04d}", "use": "work"}],
                "qualification": [
                    {
                        "code": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/v2-0360",
                                    "code": "RN",
                                    "display": "Registered Nurse",
                                }
                                if nurse
                                else {
                                    "system": "http://terminology.hl7.org/CodeSystem/v2-0360",
                                    "code": "MD",
                                    "display": "Doctor of Medicine",
                                }
                            ]
                        }
                    }
                ],
            }


def _budgets(spec: StoreSpec) -> list[int]:
    """Resources per patient: ``total - shared`` spread as evenly as integers allow."""
    rest = spec.total - shared_count()
    return [rest * (i + 1) // spec.patients - rest * i // spec.patients for i in range(spec.patients)]


def _patient_rng(index: int, seed: int) -> random.Random:
    return random.Random(f"{seed}-patient-{index}")


def _ref(resource_type: str, id: str, display: str | None = None) -> dict[str, str]:
    reference = {"reference": f"{resource_type}/{id}"}
    if display:
        reference["display"] = display
    return reference


def _codeable(system: str, code: str, display: str, text: str | None = None) -> dict[str, Any]:
    concept: dict[str, Any] = {"coding": [{"system": system, "code": code, "display": display}]}
    if text:
        concept["text"] = text
    return concept


def _day(start: date, end: date, rng: random.Random) -> date:
    return start + timedelta(days=rng.randrange((end - start).days + 1))


class _Patient:
    """One patient's whole record, built from its own random generator."""

    def __init__(self, index: int, budget: int, seed: int) -> None:
        rng = self.rng = _patient_rng(index, seed)
        self.index = index
        self.id = f"ccm-pt{index:05d}"
        self.female = rng.random() < 0.54
        self.given = [rng.choice(FEMALE_GIVEN if self.female else MALE_GIVEN)]
        if rng.random() < 0.5:
            self.given.append(rng.choice(FEMALE_GIVEN if self.female else MALE_GIVEN))
        self.family = rng.choice(FAMILY)
        self.display = f"{' '.join(self.given)} {self.family}"
        self.birth = _day(date(1932, 1, 1), date(1966, 12, 31), rng)
        self.pcp = rng.choice(BY_SPECIALTY["primary-care"])
        self.mrn = f"{self.pcp.mrn_prefix}-{rng.randrange(10**7):07d}"
        self.enrolled = _day(date(2022, 6, 1), date(2025, 12, 31), rng)
        conditions: list[ChronicCondition] = []
        while len(conditions) < 3:  # weighted, without repeats
            drawn = rng.choices(CONDITIONS, weights=CONDITION_WEIGHTS)[0]
            if drawn not in conditions:
                conditions.append(drawn)
        providers_wanted = rng.choices((1, 2, 3), weights=(30, 50, 20))[0]
        condition_count = 3 if rng.random() < 0.35 else 2
        specialists = list(dict.fromkeys(c.specialty for c in conditions[:condition_count]))
        # Patient, conditions, care team, and per provider a CarePlan, a Goal and a MedicationStatement.
        providers = min(providers_wanted, 1 + len(specialists))
        while 2 + condition_count + 3 * providers > budget and providers > 1:
            providers -= 1
        while 2 + condition_count + 3 * providers > budget and condition_count > 2:
            condition_count -= 1
        if 2 + condition_count + 3 * providers > budget:
            raise ValueError(f"a budget of {budget} resources per patient is too small (at least 7)")
        self.conditions = [c for c in conditions[:condition_count]]
        self.extra = budget - (2 + condition_count + 3 * providers)
        specialties = ["primary-care", *specialists[: providers - 1]]
        self.providers = [(s, rng.choice(BY_SPECIALTY[s])) for s in specialties]

    @property
    def facts(self) -> PatientFacts:
        return PatientFacts(self.index, self.id, self.pcp.mrn_system, self.mrn, self.family)

    def resources(self) -> Iterator[dict[str, Any]]:
        """In reference order: whatever a resource points to comes before it."""
        yield self.patient()
        condition_ids = []
        for condition in self.conditions:
            resource = self.condition(condition)
            condition_ids.append((resource["id"], condition))
            yield resource
        team = self.care_team(condition_ids)
        yield team
        extra = self.extra
        for number, (specialty, practice) in enumerate(self.providers):
            physician = practice.physicians[self.rng.randrange(len(practice.physicians))]
            treated = [(id, c) for id, c in condition_ids if c.specialty == specialty] or condition_ids
            goal = self.goal(specialty, physician, treated[0])
            yield goal
            yield self.care_plan(specialty, practice, physician, team["id"], treated, goal)
            medications = 1
            if extra > 0 and (number == len(self.providers) - 1 or self.rng.random() < 0.5):
                extra -= 1
                medications += 1
            used: set[str] = set()
            for _ in range(medications):
                yield self.medication_statement(specialty, physician, treated, used)
        for number in range(extra):
            yield self.observation(number)

    def patient(self) -> dict[str, Any]:
        rng = self.rng
        city, state, zip3 = rng.choice(CITIES)
        identifiers = [self._mrn(self.pcp, self.mrn)]
        return {
            "resourceType": "Patient",
            "id": self.id,
            "identifier": identifiers,
            "active": True,
            "name": [{"use": "official", "family": self.family, "given": self.given}],
            "telecom": [{"system": "phone", "value": f"+1-217-555-{rng.randrange(10000):04d}", "use": "home"}],
            "gender": "female" if self.female else "male",
            "birthDate": self.birth.isoformat(),
            "address": [
                {
                    "use": "home",
                    "line": [f"{rng.randrange(100, 9999)} {rng.choice(STREETS)}"],
                    "city": city,
                    "state": state,
                    "postalCode": f"{zip3}{rng.randrange(100):02d}",
                    "country": "US",
                }
            ],
            "communication": [
                {
                    "language": _codeable(
                        "urn:ietf:bcp:47", *(("es", "Spanish") if rng.random() < 0.12 else ("en", "English"))
                    ),
                    "preferred": True,
                }
            ],
            "generalPractitioner": [_ref("Practitioner", *self.pcp.physicians[self.index % PHYSICIANS_PER_PRACTICE])],
            "managingOrganization": _ref("Organization", self.pcp.id, self.pcp.name),
        }

    @staticmethod
    def _mrn(practice: Practice, value: str) -> dict[str, Any]:
        return {
            "use": "usual",
            "type": _codeable(V2_0203, "MR", "Medical record number"),
            "system": practice.mrn_system,
            "value": value,
            "assigner": _ref("Organization", practice.id, practice.name),
        }

    def condition(self, condition: ChronicCondition) -> dict[str, Any]:
        rng = self.rng
        onset = _day(max(self.birth + timedelta(days=365 * 35), date(1990, 1, 1)), date(2022, 12, 31), rng)
        return {
            "resourceType": "Condition",
            "id": f"{self.id}-cond-{condition.key}",
            "clinicalStatus": _codeable("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
            "verificationStatus": _codeable(
                "http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"
            ),
            "category": [
                _codeable(
                    "http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item", "Problem List Item"
                )
            ],
            "code": {
                "coding": [
                    {"system": SNOMED, "code": condition.snomed, "display": condition.snomed_display},
                    {"system": ICD10, "code": condition.icd10, "display": condition.icd10_display},
                ],
                "text": condition.icd10_display,
            },
            "subject": _ref("Patient", self.id, self.display),
            "onsetDateTime": onset.isoformat()[:7],
            "recordedDate": self.enrolled.isoformat(),
            "recorder": _ref("Practitioner", *self.pcp.physicians[0]),
        }

    def care_team(self, conditions: list[tuple[str, ChronicCondition]]) -> dict[str, Any]:
        participants = [
            self._participant("446050000", "Primary care physician", self.pcp.physicians[0], self.pcp),
            self._participant("224535009", "Registered nurse", self.pcp.nurse, self.pcp),
        ]
        for _specialty, practice in self.providers[1:]:
            participants.append(self._participant("309343006", "Physician", practice.physicians[0], practice))
        participants.append(
            {
                "role": [_codeable(SNOMED, "116154003", "Patient")],
                "member": _ref("Patient", self.id, self.display),
            }
        )
        return {
            "resourceType": "CareTeam",
            "id": f"{self.id}-careteam",
            "status": "active",
            "category": [_codeable(LOINC, "LA28865-6", "Longitudinal care-coordination focused care team")],
            "name": f"{self.display} CCM team",
            "subject": _ref("Patient", self.id, self.display),
            "period": {"start": self.enrolled.isoformat()},
            "participant": participants,
            "reasonReference": [_ref("Condition", id, c.icd10_display) for id, c in conditions],
            "managingOrganization": [_ref("Organization", self.pcp.id, self.pcp.name)],
            "telecom": [{"system": "phone", "value": f"+1-217-555-{self.rng.randrange(10000):04d}", "use": "work"}],
        }

    @staticmethod
    def _participant(code: str, display: str, member: tuple[str, str], practice: Practice) -> dict[str, Any]:
        return {
            "role": [_codeable(SNOMED, code, display)],
            "member": _ref("Practitioner", *member),
            "onBehalfOf": _ref("Organization", practice.id, practice.name),
        }

    def goal(self, specialty: str, physician: tuple[str, str], treated: tuple[str, ChronicCondition]) -> dict[str, Any]:
        condition_id, condition = treated
        goal = condition.goal
        start = _day(self.enrolled, date(2026, 3, 31), self.rng)
        status = self.rng.choices(("active", "completed", "on-hold"), weights=(75, 15, 10))[0]
        achievement = (
            "achieved" if status == "completed" else self.rng.choice(("in-progress", "improving", "worsening"))
        )
        return {
            "resourceType": "Goal",
            "id": f"{self.id}-goal-{specialty}-{condition.key}",
            "lifecycleStatus": status,
            "achievementStatus": _codeable(
                "http://terminology.hl7.org/CodeSystem/goal-achievement", achievement, achievement.title()
            ),
            "priority": _codeable(
                "http://terminology.hl7.org/CodeSystem/goal-priority", "high-priority", "High Priority"
            ),
            "description": {"text": goal.text},
            "subject": _ref("Patient", self.id, self.display),
            "startDate": start.isoformat(),
            "target": [
                {
                    "measure": _codeable(LOINC, goal.loinc, goal.display),
                    "detailQuantity": {
                        "value": goal.value,
                        "comparator": goal.comparator,
                        "unit": goal.unit,
                        "system": UCUM,
                        "code": goal.unit,
                    },
                    "dueDate": (start + timedelta(days=365)).isoformat(),
                }
            ],
            "expressedBy": _ref("Practitioner", *physician),
            "addresses": [_ref("Condition", condition_id, condition.icd10_display)],
        }

    def care_plan(
        self,
        specialty: str,
        practice: Practice,
        physician: tuple[str, str],
        team_id: str,
        treated: list[tuple[str, ChronicCondition]],
        goal: dict[str, Any],
    ) -> dict[str, Any]:
        rng = self.rng
        start = _day(*PLAN_STARTS, rng)
        end = start + timedelta(days=rng.choice((182, 365, 365, 365)))
        if end < AS_OF:
            status = "completed" if rng.random() < 0.9 else "on-hold"
        else:
            status = "active" if rng.random() < 0.85 else "on-hold"
        title = f"{SPECIALTY_TEXT[specialty].removesuffix(' practice')} CCM care plan"
        addresses = "; ".join(c.icd10_display for _, c in treated)
        narrative = (
            f"<p><b>{html.escape(title)}</b></p><ul><li><b>Patient:</b> {html.escape(self.display)}</li>"
            f"<li><b>Author:</b> {html.escape(physician[1])}, {html.escape(practice.name)}</li>"
            f"<li><b>Period:</b> {start.isoformat()} to {end.isoformat()}</li>"
            f"<li><b>Addresses:</b> {html.escape(addresses)}</li>"
            f"<li><b>Goal:</b> {html.escape(goal['description']['text'])}</li></ul>"
        )
        return {
            "resourceType": "CarePlan",
            "id": f"{self.id}-careplan-{specialty}",
            "text": {"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{narrative}</div>'},
            "status": status,
            "intent": "plan",
            "category": [
                _codeable(
                    "http://hl7.org/fhir/us/core/CodeSystem/careplan-category",
                    "assess-plan",
                    "Assessment and Plan of Treatment",
                )
            ],
            "title": title,
            "description": f"Chronic care management plan for {addresses.lower()}.",
            "subject": _ref("Patient", self.id, self.display),
            "period": {"start": start.isoformat(), "end": end.isoformat()},
            "created": start.isoformat(),
            "author": _ref("Practitioner", *physician),
            "contributor": [_ref("Practitioner", *(practice.nurse if specialty == "primary-care" else physician))],
            "careTeam": [_ref("CareTeam", team_id, f"{self.display} CCM team")],
            "addresses": [_ref("Condition", id, c.icd10_display) for id, c in treated],
            "goal": [_ref("Goal", goal["id"], goal["description"]["text"])],
            "activity": [
                {
                    "detail": {
                        "kind": "Task",
                        "code": {"text": "Chronic care management monthly telephone outreach"},
                        "status": "in-progress" if status == "active" else "completed",
                        "scheduledTiming": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "mo"}},
                        "performer": [_ref("Practitioner", *practice.nurse)],
                        "description": "Monthly CCM call: review symptoms and adherence, reconcile medications.",
                    }
                }
            ],
        }

    def medication_statement(
        self,
        specialty: str,
        physician: tuple[str, str],
        treated: list[tuple[str, ChronicCondition]],
        used: set[str],
    ) -> dict[str, Any]:
        rng = self.rng
        # A drug for what this provider treats, else for another of the patient's conditions; never twice.
        candidates = [(id, c, m) for id, c in treated for m in c.medications if m.rxnorm not in used]
        if not candidates:
            others = [(f"{self.id}-cond-{c.key}", c) for c in self.conditions]
            candidates = [(id, c, m) for id, c in others for m in c.medications if m.rxnorm not in used]
        condition_id, condition, medication = rng.choice(candidates)
        used.add(medication.rxnorm)
        started = _day(self.enrolled - timedelta(days=900), date(2026, 5, 31), rng)
        status = rng.choices(("active", "stopped", "completed"), weights=(80, 15, 5))[0]
        period: dict[str, str] = {"start": started.isoformat()}
        if status != "active":
            period["end"] = (started + timedelta(days=rng.randrange(30, 400))).isoformat()
        tablets = rng.choice((1, 1, 1, 2))
        dose = medication.dose_mg * tablets
        dose_text = f"{dose:g} mg"
        return {
            "resourceType": "MedicationStatement",
            "id": f"{self.id}-medstmt-{specialty}-{medication.rxnorm}",
            "status": status,
            "category": _codeable(
                "http://terminology.hl7.org/CodeSystem/medication-statement-category", "community", "Community"
            ),
            "medicationCodeableConcept": {
                "coding": [{"system": RXNORM, "code": medication.rxnorm, "display": medication.display}],
                "text": medication.display,
            },
            "subject": _ref("Patient", self.id, self.display),
            "effectivePeriod": period,
            "dateAsserted": max(started, self.enrolled).isoformat(),
            "informationSource": _ref("Practitioner", *physician),
            "reasonReference": [_ref("Condition", condition_id, condition.icd10_display)],
            "dosage": [
                {
                    "sequence": 1,
                    "text": f"Take {tablets} tablet{'s' if tablets > 1 else ''} ({dose_text}) by mouth"
                    f" {'twice' if medication.frequency == 2 else 'once'} daily",
                    "timing": {"repeat": {"frequency": medication.frequency, "period": 1, "periodUnit": "d"}},
                    "route": _codeable(SNOMED, "26643006", "Oral route"),
                    "doseAndRate": [
                        {
                            "type": _codeable(
                                "http://terminology.hl7.org/CodeSystem/dose-rate-type", "ordered", "Ordered"
                            ),
                            "doseQuantity": {"value": dose, "unit": "mg", "system": UCUM, "code": "mg"},
                        }
                    ],
                }
            ],
        }

    def observation(self, number: int) -> dict[str, Any]:
        rng = self.rng
        when = _day(self.enrolled, date(2026, 6, 30), rng)
        base = {
            "resourceType": "Observation",
            "id": f"{self.id}-obs-{number + 1}",
            "status": "final",
        }
        subject = _ref("Patient", self.id, self.display)
        performer = [_ref("Practitioner", *self.pcp.physicians[0])]
        effective = f"{when.isoformat()}T{rng.randrange(8, 17):02d}:{rng.randrange(60):02d}:00-06:00"
        if number % 2 == 0:
            systolic, diastolic = rng.randrange(112, 168), rng.randrange(66, 98)
            return base | {
                "category": [
                    _codeable(
                        "http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs", "Vital Signs"
                    )
                ],
                "code": _codeable(LOINC, *BP_PANEL, "Blood pressure"),
                "subject": subject,
                "effectiveDateTime": effective,
                "performer": performer,
                "component": [
                    {
                        "code": _codeable(LOINC, *code),
                        "valueQuantity": {"value": value, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]"},
                    }
                    for code, value in ((SYSTOLIC, systolic), (DIASTOLIC, diastolic))
                ],
            }
        lab = rng.choice([c.lab for c in self.conditions])
        value = round(rng.uniform(lab.low, lab.high), lab.decimals)
        category = "laboratory" if lab.category == "laboratory" else "survey"
        return base | {
            "category": [
                _codeable("http://terminology.hl7.org/CodeSystem/observation-category", category, category.title())
            ],
            "code": _codeable(LOINC, lab.loinc, lab.display),
            "subject": subject,
            "effectiveDateTime": effective,
            "performer": performer,
            "valueQuantity": {
                "value": int(value) if lab.decimals == 0 else value,
                "unit": lab.unit,
                "system": UCUM,
                "code": lab.unit,
            },
        }


def generate(spec: StoreSpec, seed: int = SEED) -> Iterator[dict[str, Any]]:
    """Every resource of ``spec``'s store, shared ones first, then patient by patient; exactly ``spec.total``."""
    yield from shared_resources()
    for index, budget in enumerate(_budgets(spec)):
        yield from _Patient(index, budget, seed).resources()


def patient_facts(spec: StoreSpec, seed: int = SEED) -> list[PatientFacts]:
    """The patients of ``spec``'s store, without generating their records."""
    return [_Patient(index, budget, seed).facts for index, budget in enumerate(_budgets(spec))]


# -- stores -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedStore:
    spec: StoreSpec
    path: Path
    cached: bool  # reused from an earlier run
    load_s: float | None = None  # seconds spent loading, when loaded now

    @property
    def rate(self) -> float | None:
        """Resources written per second through the server's write path, when loaded now."""
        return self.spec.total / self.load_s if self.load_s else None


def store_key(spec: StoreSpec, seed: int = SEED) -> str:
    """What a cached store depends on: the generator version, the spec, the seed and the server's index code."""
    digest = hashlib.sha256()
    digest.update(json.dumps([GENERATOR_VERSION, seed, spec.total, spec.patients]).encode())
    for source in INDEX_SOURCES:
        digest.update((ROOT / source).read_bytes())
    return digest.hexdigest()[:12]


def store_path(spec: StoreSpec, seed: int = SEED) -> Path:
    return STORES_DIR / f"ccm-{spec.name}-{store_key(spec, seed)}.db"


def load(spec: StoreSpec, path: Path, seed: int = SEED, progress_every: int = 20_000) -> float:
    """Write ``spec``'s resources into a new store at ``path`` with the update interaction; the seconds it took.

    One transaction per ``BATCH`` resources (each update nests a savepoint in
    it), so loading is bound by validation and indexing, not by ``fsync``.
    """
    from fhir_ccm.interactions import Context
    from fhir_ccm.interactions.update import update
    from fhir_ccm.store.sqlite import SQLiteStore

    store = SQLiteStore(path)
    context = Context()
    started = time.perf_counter()
    written = 0
    try:
        resources = generate(spec, seed)
        while True:
            batch = list(itertools.islice(resources, BATCH))
            if not batch:
                break
            with store.atomic():
                for resource in batch:
                    result = update(store, context, resource["resourceType"], resource["id"], resource)
                    if result.status != 201:
                        raise RuntimeError(f"{resource['resourceType']}/{resource['id']} was not created: {result}")
            previous, written = written, written + len(batch)
            if written // progress_every != previous // progress_every:
                elapsed = time.perf_counter() - started
                print(f"  {spec.name}: {written:,} resources, {written / elapsed:,.0f}/s", file=sys.stderr, flush=True)
        seconds = time.perf_counter() - started
        if store.count() != spec.total:
            raise RuntimeError(f"{spec.name}: {store.count()} resources stored, {spec.total} generated")
    finally:
        store.close()
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        connection.close()
    return seconds


def ensure_store(spec: StoreSpec, seed: int = SEED) -> LoadedStore:
    """The cached store for ``spec``, loaded first if missing; stale stores of the same name are removed."""
    path = store_path(spec, seed)
    if path.exists():
        return LoadedStore(spec, path, cached=True)
    STORES_DIR.mkdir(parents=True, exist_ok=True)
    for stale in STORES_DIR.glob(f"ccm-{spec.name}-*"):
        stale.unlink()
    partial = path.with_name(path.name + ".partial")
    for leftover in _files_of(partial):
        leftover.unlink(missing_ok=True)
    print(f"generating and loading the {spec.name} store ({spec.total:,} resources) into {path}", file=sys.stderr)
    seconds = load(spec, partial, seed)
    for leftover in _files_of(partial)[1:]:
        leftover.unlink(missing_ok=True)
    os.replace(partial, path)
    return LoadedStore(spec, path, cached=False, load_s=seconds)


def _files_of(database: Path) -> list[Path]:
    """A database file and what SQLite and the snapshot store keep beside it."""
    return [database, *(database.with_name(database.name + s) for s in ("-wal", "-shm", ".searches"))] + [
        database.with_name(database.name + ".searches" + s) for s in ("-wal", "-shm")
    ]
