"""T1-T3: one care team from every provider's, and the people it cannot safely merge.

- T1: Practitioners with the same valid NPI and the same family name are one
  member: one participant per organization they act for, roles merged.
- T2: the same valid NPI with different family names is a
  careteam-identity-conflict (low) between the two people; they stay apart.
- T3: an NPI failing the check is never a merge key; each Practitioner
  carrying one gets an invalid-identifier issue (low).

Only Practitioners that are CareTeam members and were passed in are judged;
other members (Patient, Organization, RelatedPerson, PractitionerRole, or an
unresolved Practitioner) merge by reference.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from fhir_ccm.coordination.conflicts import Conflict, Finding, Rule
from fhir_ccm.coordination.npi import npi_valid, npis_of
from fhir_ccm.coordination.references import SourceRef, person_name, reference_key, source_ref
from fhir_ccm.coordination.sources import Sources
from fhir_ccm.coordination.unions import Unions


@dataclass(frozen=True)
class Person:
    source: SourceRef
    name: str | None
    family: str  # normalized for comparison; empty when unknown
    valid_npis: tuple[str, ...]
    invalid_npis: tuple[str, ...]
    teams: tuple[SourceRef, ...]  # the care teams listing this person


def normalized_family(resource: dict[str, Any]) -> str:
    """The family name compared without case, accents or punctuation (O'Neill = ONEILL)."""
    names = [n for n in resource.get("name") or [] if isinstance(n, dict)]
    name = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
    family = name.get("family")
    decomposed = unicodedata.normalize("NFKD", family if isinstance(family, str) else "")
    return "".join(ch for ch in decomposed if ch.isalnum()).casefold()


def _invalid_npi(person: Person) -> Finding | None:
    if not person.invalid_npis:
        return None
    numbers = ", ".join(person.invalid_npis)
    return Finding(f"NPI {numbers} fails the NPI check (10 digits, first 1 or 2, Luhn check digit with prefix 80840)")


def _same_npi_other_family(a: tuple[Person, ...], b: tuple[Person, ...]) -> Finding | None:
    shared = sorted({n for p in a for n in p.valid_npis} & {n for p in b for n in p.valid_npis})
    if not shared:
        return None
    return Finding(f"NPI {', '.join(shared)} is used by people with different family names; they were not merged")


PERSON_RULES: tuple[tuple[Rule, Callable[[Person], Finding | None]], ...] = (
    (Rule("T3", "invalid-identifier", "FORMAT", "low"), _invalid_npi),
)
PAIR_RULES: tuple[tuple[Rule, Callable[[tuple[Person, ...], tuple[Person, ...]], Finding | None]], ...] = (
    (Rule("T2", "careteam-identity-conflict", "KEY205", "low"), _same_npi_other_family),
)


@dataclass(frozen=True)
class Participant:
    member: dict[str, Any] | None
    on_behalf_of: dict[str, Any] | None
    roles: tuple[dict[str, Any], ...]

    def to_fhir(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        if self.roles:
            result["role"] = list(self.roles)
        if self.member:
            result["member"] = self.member
        if self.on_behalf_of:
            result["onBehalfOf"] = self.on_behalf_of
        return result


@dataclass(frozen=True)
class TeamResult:
    participants: tuple[Participant, ...]
    managing_organizations: tuple[dict[str, Any], ...]
    conflicts: tuple[Conflict, ...]
    sources: tuple[SourceRef, ...]


def reconcile_team(sources: Sources) -> TeamResult:
    people = _people(sources)
    identity = _identities(people)
    conflicts = [*_person_conflicts(people), *_pair_conflicts(people, identity)]
    participants: dict[tuple[str, str], tuple[dict[str, Any] | None, dict[str, Any] | None, dict[Any, Any]]] = {}
    organizations: dict[str, dict[str, Any]] = {}
    for team in sources.care_teams:
        for organization in team.get("managingOrganization") or []:
            key = reference_key(organization)
            if key:
                organizations.setdefault(key, _plain_reference(organization, key))
        for participant in team.get("participant") or []:
            if isinstance(participant, dict):
                _merge_participant(participant, identity, people, participants)
    merged = tuple(
        Participant(member, organization, tuple(roles[k] for k in sorted(roles)))
        for _, (member, organization, roles) in sorted(participants.items())
    )
    team_sources = [source_ref(team) for team in sources.care_teams]
    person_sources = [person.source for person in people.values()]
    return TeamResult(
        merged,
        tuple(organizations[k] for k in sorted(organizations)),
        tuple(conflicts),
        tuple(sorted({*team_sources, *person_sources})),
    )


def _people(sources: Sources) -> dict[str, Person]:
    teams: dict[str, set[SourceRef]] = {}
    for team in sources.care_teams:
        for participant in team.get("participant") or []:
            key = reference_key((participant or {}).get("member"))
            resource = sources.lookup.get(key) if key else None
            if key and resource and resource.get("resourceType") == "Practitioner":
                teams.setdefault(key, set()).add(source_ref(team))
    people = {}
    for key in sorted(teams):
        resource = sources.lookup[key]
        numbers = npis_of(resource)
        people[key] = Person(
            source_ref(resource),
            person_name(resource),
            normalized_family(resource),
            tuple(n for n in numbers if npi_valid(n)),
            tuple(n for n in numbers if not npi_valid(n)),
            tuple(sorted(teams[key])),
        )
    return people


def _identities(people: dict[str, Person]) -> Unions:
    """T1: people joined by (valid NPI, family name)."""
    unions = Unions(people)
    first: dict[tuple[str, str], str] = {}
    for key, person in sorted(people.items()):
        for number in person.valid_npis:
            if person.family:
                unions.join(first.setdefault((number, person.family), key), key)
    return unions


def _statement(person: Person) -> str:
    numbers = ", ".join((*person.valid_npis, *person.invalid_npis)) or "none"
    teams = ", ".join(team.label() for team in person.teams)
    return f"NPI {numbers}, member of {teams}"


def _person_conflicts(people: dict[str, Person]) -> list[Conflict]:
    found = []
    for person in people.values():
        for rule, detect in PERSON_RULES:
            finding = detect(person)
            if finding:
                subject = f"Care team member {person.name or person.source.key}"
                found.append(Conflict.of(rule, finding, subject, [(person.source, _statement(person))]))
                break
    return found


def _pair_conflicts(people: dict[str, Person], identity: Unions) -> list[Conflict]:
    groups = [tuple(people[k] for k in members) for members in identity.groups()]
    found = []
    for a, b in combinations(groups, 2):
        for rule, detect in PAIR_RULES:
            finding = detect(a, b)
            if finding:
                statements = [(p.source, _statement(p)) for p in (*a, *b)]
                found.append(Conflict.of(rule, finding, "Care team member identity", statements))
                break
    return found


def _merge_participant(
    participant: dict[str, Any],
    identity: Unions,
    people: dict[str, Person],
    merged: dict[tuple[str, str], tuple[dict[str, Any] | None, dict[str, Any] | None, dict[Any, Any]]],
) -> None:
    member = participant.get("member") if isinstance(participant.get("member"), dict) else None
    member_key = reference_key(member) if member else None
    if member_key in people:
        lead_key = identity.find(member_key)
        display = (member or {}).get("display") if lead_key == member_key else None
        display = display if isinstance(display, str) else people[lead_key].name
        member = {"reference": lead_key, **({"display": display} if display else {})}
        member_key = lead_key
    elif member is not None:
        member = _plain_reference(member, member_key)
    organization = participant.get("onBehalfOf") if isinstance(participant.get("onBehalfOf"), dict) else None
    organization_key = reference_key(organization) if organization else None
    unnamed = f"display:{(member or {}).get('display', '')}"
    key = (member_key or unnamed, organization_key or "")
    _, _, roles = merged.setdefault(
        key, (member, _plain_reference(organization, organization_key) if organization else None, {})
    )
    for role in participant.get("role") or []:
        if isinstance(role, dict):
            roles.setdefault(_role_key(role), role)


def _role_key(concept: dict[str, Any]) -> tuple[Any, ...]:
    codings = tuple(
        sorted((str(c.get("system")), str(c.get("code"))) for c in concept.get("coding") or [] if c.get("code"))
    )
    return codings or (("text", str(concept.get("text") or concept.get("display") or "")),)


def _plain_reference(reference: dict[str, Any], key: str | None) -> dict[str, Any]:
    """A reference by ``Type/id`` (keeping its display), or as written when it is not literal."""
    if key is None:
        return dict(reference)
    display = reference.get("display")
    return {"reference": key, **({"display": display} if isinstance(display, str) else {})}
