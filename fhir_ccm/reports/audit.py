"""The ``audit`` command's report as one self-contained HTML page (no scripts, no external files).

It renders the dict ``fhir_ccm.audit.audit_store`` returns: the totals, a table
per profile and per resource type, the most frequent issues with examples, each
profile's own issues, and the invalid resources. Every value is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2733;margin:0;background:#f5f7fa}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:19px;margin:34px 0 10px;border-bottom:1px solid #d8dee6;padding-bottom:4px}
h3{font-size:16px;margin:18px 0 6px}.meta{color:#5b6876;font-size:13px}
.cards{display:flex;gap:14px;flex-wrap:wrap;margin:18px 0}
.card{background:#fff;border:1px solid #d8dee6;border-radius:8px;padding:12px 18px;min-width:130px}
.card b{display:block;font-size:26px}.card span{color:#5b6876;font-size:13px}
.card.bad b{color:#b42318}.card.good b{color:#067647}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #d8dee6;font-size:14px}
th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e6eaef;vertical-align:top}
th{background:#eef2f6;font-weight:600}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f0f3f7;padding:1px 4px;border-radius:3px}
.bar{background:#f4d3d0;border-radius:4px;height:10px;width:120px;overflow:hidden;display:inline-block}
.bar i{display:block;height:100%;background:#3aa76d}
.sev{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;font-weight:600}
.sev.error,.sev.fatal{background:#fde2e0;color:#b42318}.sev.warning{background:#fff1d6;color:#935f00}
.sev.information{background:#e0ecff;color:#1849a9}
.ok{color:#067647;font-weight:600}.ko{color:#b42318;font-weight:600}
ul.ex{margin:0;padding-left:18px;font-size:13px}details{margin:8px 0}summary{cursor:pointer}
.empty{color:#5b6876;font-style:italic}.nw{white-space:nowrap}
"""


def _text(value: Any) -> str:
    return escape(str(value), quote=True)


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[int] = ()) -> str:
    """A table of already-escaped cells; ``numeric`` columns are right-aligned."""
    head = "".join(f'<th class="n">{h}</th>' if i in numeric else f"<th>{h}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>"
        + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _bar(valid: int, total: int) -> str:
    share = 100.0 * valid / total if total else 100.0
    bar = f'<span class="bar" title="{share:.0f} % valid"><i style="width:{share:.1f}%"></i></span>'
    return f'<span class="nw">{bar} {share:.0f}&nbsp;%</span>'


def _severity(severity: str) -> str:
    return f'<span class="sev {_text(severity)}">{_text(severity)}</span>'


def _card(value: Any, label: str, kind: str = "") -> str:
    return f'<div class="card {kind}"><b>{_text(value)}</b><span>{_text(label)}</span></div>'


def _issues(groups: Sequence[dict[str, Any]]) -> str:
    if not groups:
        return '<p class="empty">No issues.</p>'
    rows = []
    for group in groups:
        examples = "".join(
            f"<li><code>{_text(e['resource'])}</code> at <code>{_text(e['expression'])}</code></li>"
            for e in group["examples"]
        )
        rows.append(
            (
                str(group["count"]),
                _severity(group["severity"]),
                _text(group["code"]),
                f"<code>{_text(group['path'])}</code>",
                _text(group["message"]),
                f'<ul class="ex">{examples}</ul>',
            )
        )
    return _table(("Count", "Severity", "Code", "Element", "Message", "Examples"), rows, numeric=(0,))


def _profiles(report: dict[str, Any]) -> str:
    if not report["profiles"]:
        return '<p class="empty">No stored resource claims a profile and none is required.</p>'
    rows = []
    for row in report["profiles"]:
        known = "" if row["known"] else ' <span class="ko">(not known to the server)</span>'
        rows.append(
            (
                f"<b>{_text(row['title'])}</b>{known}<br><code>{_text(row['url'])}</code>",
                _text(", ".join(row["types"])),
                str(row["resources"]),
                str(row["claimed"]),
                str(row["required"]),
                f'<span class="ok">{row["valid"]}</span>',
                f'<span class="ko">{row["invalid"]}</span>' if row["invalid"] else "0",
                str(row["unchecked"]),
                _bar(row["valid"], row["resources"]),
            )
        )
    headers = ("Profile", "Types", "Resources", "Claimed", "Required", "Valid", "Invalid", "Unchecked", "Conformance")
    return _table(headers, rows, numeric=(2, 3, 4, 5, 6, 7))


def _types(report: dict[str, Any]) -> str:
    rows = [
        (
            f"<b>{_text(row['type'])}</b>",
            str(row["resources"]),
            f'<span class="ok">{row["valid"]}</span>',
            f'<span class="ko">{row["invalid"]}</span>' if row["invalid"] else "0",
            str(row["warnings"]),
            _bar(row["valid"], row["resources"]),
            "<br>".join(f"<code>{_text(url)}</code>" for url in row["profiles"]) or '<span class="empty">none</span>',
        )
        for row in report["types"]
    ]
    return _table(("Type", "Resources", "Valid", "Invalid", "Warnings", "Conformance", "Profiles"), rows, (1, 2, 3, 4))


def _invalid(report: dict[str, Any]) -> str:
    if not report["invalid"]:
        return '<p class="empty">Every stored resource is valid.</p>'
    rows = [
        (
            f"<code>{_text(row['resource'])}</code>",
            str(row["errors"]),
            "<br>".join(f"<code>{_text(url)}</code>" for url in row["profiles"]) or "base R4 only",
            _text(row["first"]),
        )
        for row in report["invalid"]
    ]
    return _table(("Resource", "Errors", "Profiles", "First error"), rows, numeric=(1,))


def render(report: dict[str, Any]) -> str:
    """The whole page."""
    summary = report["summary"]
    settings = report["settings"]
    required = "; ".join(f"{t} = {', '.join(urls)}" for t, urls in settings["requiredProfiles"].items()) or "none"
    per_profile = "".join(
        f"<details><summary><b>{_text(row['title'])}</b>: {row['invalid']} invalid of {row['resources']}"
        f"</summary>{_issues(row['issues'])}</details>"
        for row in report["profiles"]
    )
    cards = "".join(
        (
            _card(summary["resources"], "resources"),
            _card(summary["valid"], "valid", "good"),
            _card(summary["invalid"], "invalid", "bad" if summary["invalid"] else ""),
            _card(summary["profiled"], "profile checks"),
            _card(summary["errors"], "errors", "bad" if summary["errors"] else ""),
            _card(summary["warnings"], "warnings"),
        )
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_text(report["title"])}: {_text(report["source"])}</title><style>{STYLE}</style></head>
<body><main>
<h1>{_text(report["title"])}</h1>
<p class="meta">{_text(report["source"])} &middot; generated {_text(report["generated"])} &middot;
unknown profiles: {_text(settings["unknownProfiles"])} &middot; required profiles: {_text(required)}</p>
<div class="cards">{cards}</div>
<h2>By profile</h2>{_profiles(report)}
<h2>By resource type</h2>{_types(report)}
<h2>Most frequent issues</h2>{_issues(report["issues"])}
<h2>Issues per profile</h2>{per_profile or '<p class="empty">No profiles.</p>'}
<h2>Base R4</h2><p>{report["base"]["invalid"]} of {report["base"]["resources"]} resources break a rule of the base
specification; {report["base"]["warnings"]} warnings.</p>
<h2>Invalid resources</h2>{_invalid(report)}
</main></body></html>
"""
