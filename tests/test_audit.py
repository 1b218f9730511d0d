"""The conformance audit: ``fhir_ccm.audit``, its HTML page, and ``python -m fhir_ccm audit``."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from typing import Any

import pytest
from conftest import EXAMPLE_DATA, EXAMPLES, ROOT

from fhir_ccm.audit import audit_store, without_claims
from fhir_ccm.config import Config
from fhir_ccm.interactions import LOCAL_CONTEXT
from fhir_ccm.interactions.update import update
from fhir_ccm.interactions.validate import ProfilePolicy, use_policy
from fhir_ccm.loader import load_paths
from fhir_ccm.reports.audit import render
from fhir_ccm.store.sqlite import SQLiteStore

CCM = "http://fhir-ccm.org/StructureDefinition/"
NOWHERE = "http://example.org/StructureDefinition/nowhere"


def policy(store: SQLiteStore, **settings: Any) -> ProfilePolicy:
    return ProfilePolicy.from_config(Config(**settings), store)


@pytest.fixture
def examples_store(store: SQLiteStore) -> SQLiteStore:
    """The example data set, plus one Goal claiming a profile nobody defined (stored under ``warn``)."""
    with use_policy(policy(store, unknown_profiles="warn")):
        assert load_paths(store, EXAMPLE_DATA).failed == []
        goal = json.loads((EXAMPLES / "maria-garcia" / "Goal-ccm-garcia-goal-primary-care-a1c.json").read_text())
        goal["id"] = "goal-claiming-nowhere"
        goal["meta"]["profile"].append(NOWHERE)
        update(store, LOCAL_CONTEXT, "Goal", goal["id"], goal)
    return store


def row(rows: list[dict[str, Any]], key: str, value: str) -> dict[str, Any]:
    return next(item for item in rows if item[key] == value)


def test_counts_per_profile_and_per_type(examples_store):
    report = audit_store(examples_store, policy(examples_store, unknown_profiles="warn"), "test.db")
    assert report["summary"]["resources"] == 127
    assert report["summary"]["invalid"] == 0
    careplan = row(report["profiles"], "url", CCM + "ccm-careplan")
    assert (careplan["resources"], careplan["claimed"], careplan["valid"], careplan["invalid"]) == (4, 4, 4, 0)
    assert careplan["title"] == "CCM comprehensive care plan" and careplan["known"]
    nowhere = row(report["profiles"], "url", NOWHERE)
    assert (nowhere["known"], nowhere["resources"], nowhere["unchecked"], nowhere["invalid"]) == (False, 1, 1, 0)
    goals = row(report["types"], "type", "Goal")
    assert (goals["resources"], goals["valid"], goals["invalid"]) == (22, 22, 0)
    assert goals["profiles"] == sorted([CCM + "ccm-goal", NOWHERE])


def test_required_profiles_and_rejected_unknown_profiles_count_as_invalid(examples_store):
    strict = policy(examples_store, required_profiles=f"CarePlan={CCM}ccm-careplan")
    report = audit_store(examples_store, strict, "test.db")
    careplan = row(report["profiles"], "url", CCM + "ccm-careplan")
    assert (careplan["resources"], careplan["claimed"], careplan["required"]) == (12, 4, 12)
    assert (careplan["valid"], careplan["invalid"]) == (4, 8)  # the specialists' plans
    assert row(report["profiles"], "url", NOWHERE)["invalid"] == 1  # reject is the default
    assert report["summary"]["invalid"] == 9
    assert row(report["types"], "type", "CarePlan")["invalid"] == 8
    assert {item["resource"] for item in report["invalid"]} >= {
        "CarePlan/ccm-garcia-careplan-nephrology",
        "Goal/goal-claiming-nowhere",
    }


def test_the_most_frequent_issues_come_with_examples(examples_store):
    strict = policy(examples_store, required_profiles=f"CarePlan={CCM}ccm-careplan")
    report = audit_store(examples_store, strict, "test.db")
    first = report["issues"][0]
    assert first["severity"] == "error" and first["count"] == 8
    assert "ccm-careplan-2" in first["message"]
    assert len(first["examples"]) == 3
    assert all(e["resource"].startswith("CarePlan/") and e["expression"] == "CarePlan" for e in first["examples"])
    per_profile = row(report["profiles"], "url", CCM + "ccm-careplan")["issues"]
    assert {(i["code"], i["path"]) for i in per_profile} >= {
        ("invariant", "CarePlan"),
        ("required", "CarePlan.addresses"),
    }
    assert not any(i["message"].startswith("Constraint dom-6") for i in per_profile)  # base issues stay in base
    assert report["base"]["invalid"] == 0 and report["base"]["warnings"] > 0


def test_a_profile_made_stricter_after_the_data_was_written_is_audited(store):
    with use_policy(policy(store)):
        assert load_paths(store, [EXAMPLES / "shared", EXAMPLES / "linda-thompson"]).failed == []
    stricter = json.loads((ROOT / "profiles" / "StructureDefinition-ccm-goal.json").read_text())
    stricter["differential"]["element"].append({"id": "Goal.note", "path": "Goal.note", "min": 1})
    with use_policy(policy(store)):
        update(store, LOCAL_CONTEXT, "StructureDefinition", stricter["id"], stricter)
    report = audit_store(store, policy(store), "test.db")
    goal = row(report["profiles"], "url", CCM + "ccm-goal")
    assert (goal["resources"], goal["invalid"]) == (4, 4)
    assert goal["issues"][0]["path"] == "Goal.note"


def test_without_claims_leaves_the_rest_of_meta():
    resource = {"resourceType": "Goal", "meta": {"profile": ["x"], "tag": [{"code": "t"}]}}
    assert without_claims(resource) == {"resourceType": "Goal", "meta": {"tag": [{"code": "t"}]}}
    assert without_claims({"resourceType": "Goal", "meta": {"profile": ["x"]}}) == {"resourceType": "Goal"}


# -- the HTML page --------------------------------------------------------------------------


class Page(HTMLParser):
    """Collects the headings and table headers, and checks that every tag is closed."""

    VOID = {"meta", "br", "link", "img", "input", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.headings: list[str] = []
        self.text: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        self.scripts += tag == "script"
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, (tag, self.open[-5:])
        self.open.pop()

    def handle_data(self, data: str) -> None:
        if self.open and self.open[-1] in ("h1", "h2"):
            self.headings.append(data.strip())
        self.text.append(data)


def test_the_html_page_is_well_formed_and_complete(examples_store):
    report = audit_store(examples_store, policy(examples_store, required_profiles=f"CarePlan={CCM}ccm-careplan"), "x")
    page = Page()
    page.feed(render(report))
    assert page.open == []
    assert page.headings == [
        "Conformance audit",
        "By profile",
        "By resource type",
        "Most frequent issues",
        "Issues per profile",
        "Base R4",
        "Invalid resources",
    ]
    text = " ".join(page.text)
    assert "CCM comprehensive care plan" in text and "CarePlan/ccm-garcia-careplan-nephrology" in text
    assert page.scripts == 0


def test_the_html_page_escapes_what_it_shows(examples_store):
    report = audit_store(examples_store, policy(examples_store), "<b>db</b>")
    report["issues"][0]["message"] = "<script>alert(1)</script>"
    page = render(report)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;db&lt;/b&gt;" in page


# -- the command --------------------------------------------------------------------------


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fhir_ccm", *args], cwd=ROOT, capture_output=True, text=True, timeout=180
    )


def test_the_command_writes_json_and_html(tmp_path):
    database = tmp_path / "audit.db"
    assert run("load", "--database", str(database), *map(str, EXAMPLE_DATA)).returncode == 0
    html, report_file = tmp_path / "report.html", tmp_path / "report.json"
    result = run("audit", "--database", str(database), "--html", str(html), "--json", str(report_file))
    assert result.returncode == 0, result.stderr
    assert "audited 126 resources" in result.stdout and "126 valid, 0 invalid" in result.stdout
    report = json.loads(report_file.read_text())
    assert report["summary"]["resources"] == 126 and report["source"] == str(database)
    assert html.read_text().startswith("<!DOCTYPE html>")
    stdout = run("audit", "--database", str(database), "--required-profiles", f"CarePlan={CCM}ccm-careplan")
    assert stdout.returncode == 1
    assert json.loads(stdout.stdout)["summary"]["invalid"] == 8
    assert "8 invalid" in stdout.stderr


def test_the_command_needs_an_existing_database(tmp_path):
    result = run("audit", "--database", str(tmp_path / "missing.db"))
    assert result.returncode == 2 and "no database" in result.stderr
    assert not (tmp_path / "missing.db").exists()
