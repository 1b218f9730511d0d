"""Base R4 and profile validation (``fhir_ccm.validation.profiles``): the corpus and the API.

The corpus (``tests/validation_corpus/<rule>/``) holds, per rule, valid and
invalid resources and ``expected.json`` with the exact issues each gives
(severity, code, expression), validated against the profiles the file names.
Corpus resources carry no narrative, so the dom-6 warning is left out of the
comparison except in the ``dom-6`` folder.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fhir_ccm.validation.profiles import MustSupport, Registry, must_support_report, validate

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "validation_corpus"
EXAMPLES = ROOT / "examples"
CCM = "http://example.org/fhir/ccm/StructureDefinition/"


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)


def unclaimed(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource without ``meta`` (examples claim the repository's profiles, which some tests do not load)."""
    return {key: value for key, value in resource.items() if key != "meta"}


@pytest.fixture(scope="module")
def registry() -> Registry:
    registry = Registry()
    registry.load_paths([CORPUS / "profiles"])
    return registry


# --------------------------------------------------------------------------- the corpus

RULES = sorted(p.name for p in CORPUS.iterdir() if p.is_dir() and p.name != "profiles")
CASES = [(rule, name) for rule in RULES for name in sorted(load(CORPUS / rule / "expected.json")["issues"])]


def issue_keys(issues: list[Any], rule: str) -> Counter[tuple[str, str, str]]:
    return Counter(
        (issue.severity, issue.code, issue.expression[0])
        for issue in issues
        if rule == "dom-6" or not issue.diagnostics.startswith("Constraint dom-6")
    )


@pytest.mark.parametrize(("rule", "name"), CASES, ids=[f"{rule}/{name}" for rule, name in CASES])
def test_corpus_gives_exactly_the_expected_issues(registry: Registry, rule: str, name: str) -> None:
    expected = load(CORPUS / rule / "expected.json")
    resource = load(CORPUS / rule / name)
    profiles = [url for url in expected["profiles"] if registry.profile(url).type == resource["resourceType"]]
    issues = validate(resource, profiles, registry)
    wanted = Counter((i["severity"], i["code"], i["expression"]) for i in expected["issues"][name])
    assert issue_keys(issues, rule) == wanted, [f"{i.severity} {i.code} {i.expression} {i.diagnostics}" for i in issues]
    if name.startswith("valid-"):
        assert not [issue for issue in issues if issue.severity == "error"]
    else:
        assert wanted, "an invalid corpus file must give at least one issue"


def test_every_rule_has_valid_and_invalid_files() -> None:
    for rule in RULES:
        names = [p.name for p in (CORPUS / rule).glob("*.json") if p.name != "expected.json"]
        assert any(n.startswith("valid-") for n in names), rule
        assert any(n.startswith("invalid-") for n in names), rule
        assert set(names) == set(load(CORPUS / rule / "expected.json")["issues"]), rule


def test_every_issue_has_severity_code_message_and_expression(registry: Registry) -> None:
    for rule, name in CASES:
        expected = load(CORPUS / rule / "expected.json")
        for issue in validate(load(CORPUS / rule / name), expected["profiles"], registry):
            assert issue.severity in ("error", "warning", "information")
            assert issue.code and issue.diagnostics
            assert len(issue.expression) == 1 and issue.expression[0]


# --------------------------------------------------------------------------- the examples


EXAMPLE_FILES = sorted(EXAMPLES.rglob("*.json"))


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[str(p.relative_to(EXAMPLES)) for p in EXAMPLE_FILES])
def test_every_example_is_valid_against_base_r4(path: Path) -> None:
    issues = validate(load(path))
    assert [i for i in issues if i.severity == "error"] == []
    for issue in issues:
        if issue.severity == "warning":
            dom_6 = (
                issue.diagnostics == "Constraint dom-6 failed: A resource should have narrative for robust management"
            )
            claimed_profile = issue.code == "not-found" and ".meta.profile[" in issue.expression[0]
            assert dom_6 or claimed_profile, issue


@pytest.fixture(scope="module")
def repository_profiles() -> Registry:
    registry = Registry()
    registry.load_paths([ROOT / "profiles"])
    return registry


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[str(p.relative_to(EXAMPLES)) for p in EXAMPLE_FILES])
def test_every_example_conforms_to_the_profiles_it_claims(repository_profiles: Registry, path: Path) -> None:
    """With the repository's ``profiles/`` loaded, ``meta.profile`` claims are validated too."""
    issues = validate(load(path), (), repository_profiles)
    assert [i for i in issues if i.severity == "error"] == []


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*/CarePlan-*.json")), ids=lambda p: p.name)
def test_example_care_plans_conform_to_the_test_profile(registry: Registry, path: Path) -> None:
    assert validate(unclaimed(load(path)), [CCM + "ccm-careplan"], registry) == []


# --------------------------------------------------------------------------- the API


CAREPLAN = {
    "resourceType": "CarePlan",
    "status": "active",
    "intent": "plan",
    "subject": {"reference": "Patient/p1"},
    "text": {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">Plan</div>'},
}


def test_a_valid_resource_has_no_issues() -> None:
    assert validate(CAREPLAN) == []


def test_update_mode_needs_an_id_and_delete_mode_checks_nothing() -> None:
    [issue] = validate(CAREPLAN, mode="update")
    assert (issue.severity, issue.code, issue.expression) == ("error", "required", ("CarePlan.id",))
    assert validate({**CAREPLAN, "id": "cp1"}, mode="update") == []
    assert validate({**CAREPLAN, "status": "bogus"}, mode="delete") == []
    assert validate(CAREPLAN, mode="create") == []
    with pytest.raises(ValueError):
        validate(CAREPLAN, mode="patch")


def test_an_unknown_profile_asked_for_is_a_not_found_warning() -> None:
    [issue] = validate(CAREPLAN, ["http://example.org/nowhere"])
    assert (issue.severity, issue.code, issue.expression) == ("warning", "not-found", ("CarePlan",))
    assert "not known" in issue.diagnostics


def test_a_core_profile_url_adds_nothing_to_base_validation() -> None:
    assert validate(CAREPLAN, ["http://hl7.org/fhir/StructureDefinition/CarePlan"]) == []


def test_validation_never_stops_at_the_first_error() -> None:
    resource = {"resourceType": "CarePlan", "status": "x", "intent": "y", "foo": 1, "period": {}, "title": 5}
    codes = sorted(issue.code for issue in validate(resource))
    assert codes == ["code-invalid", "code-invalid", "invariant", "invariant", "required", "structure", "value"]


def test_non_resources_are_reported_not_raised() -> None:
    assert [i.expression for i in validate({"resourceType": "Spaceship"})] == [("Resource",)]
    assert [i.code for i in validate([])] == ["structure"]  # type: ignore[arg-type]


def test_registry_reads_stored_conformance_resources(registry: Registry) -> None:
    @dataclass
    class Version:
        json: str

    class Store:
        def iter_current(self, resource_type: str) -> list[Version]:
            folder = CORPUS / "profiles"
            return [Version(p.read_text()) for p in sorted(folder.glob(f"{resource_type}-*.json"))]

    stored = Registry()
    assert stored.load_store(Store()) == len(list((CORPUS / "profiles").glob("*.json")))
    resource = load(CORPUS / "profile-bindings" / "invalid-careplan.json")
    assert validate(resource, [CCM + "ccm-careplan-terminology"], stored) == validate(
        resource, [CCM + "ccm-careplan-terminology"], registry
    )


def test_a_new_version_of_a_profile_replaces_the_compiled_one() -> None:
    registry = Registry()
    definition = load(CORPUS / "profiles" / "StructureDefinition-ccm-careplan-closed.json")
    registry.add(definition)
    resource = {**CAREPLAN, "category": [{"text": "other"}]}
    assert [i.code for i in validate(resource, [definition["url"]], registry)] == ["structure"]
    definition["differential"]["element"][0]["slicing"]["rules"] = "open"
    registry.add(definition)
    assert validate(resource, [definition["url"]], registry) == []


def test_a_profile_whose_base_is_unknown_says_why() -> None:
    registry = Registry([{**load(CORPUS / "profiles" / "StructureDefinition-ccm-episode.json"), "baseDefinition": "x"}])
    [issue] = validate({**CAREPLAN, "meta": {"profile": [CCM + "ccm-episode"]}}, (), registry)
    assert issue.code == "not-found" and "base definition x is not known" in issue.diagnostics


def test_must_support_report(registry: Registry) -> None:
    resource = load(EXAMPLES / "maria-garcia" / "CarePlan-ccm-garcia-careplan-primary-care.json")
    report = {entry.element: entry for entry in must_support_report(resource, CCM + "ccm-careplan", registry)}
    assert report["CarePlan.category:assess"] == MustSupport(
        "CarePlan.category:assess", "CarePlan.category", True, 1, ("CarePlan.category[0]",)
    )
    assert report["CarePlan.extension:episode"].populated is False
    assert report["CarePlan.activity.detail.status"].expressions == (
        "CarePlan.activity[1].detail.status",
        "CarePlan.activity[2].detail.status",
    )
    assert set(report) == {
        "CarePlan.extension:episode",
        "CarePlan.category",
        "CarePlan.category:assess",
        "CarePlan.title",
        "CarePlan.subject",
        "CarePlan.period",
        "CarePlan.activity",
        "CarePlan.activity.detail.status",
    }
    with pytest.raises(LookupError):
        must_support_report(resource, "http://example.org/nowhere", registry)
    with pytest.raises(ValueError):
        must_support_report(resource, CCM + "ccm-patient", registry)


def test_performance_smoke(registry: Registry) -> None:
    """Runs the benchmark's workload once (timings are measured by hand, not asserted)."""
    care_plans = [unclaimed(load(path)) for path in sorted((EXAMPLES / "maria-garcia").glob("CarePlan-*.json"))]
    for _ in range(20):
        for care_plan in care_plans:
            assert validate(care_plan, (), registry) == []
            assert validate(care_plan, [CCM + "ccm-careplan"], registry) == []
