"""Generated narratives (http://hl7.org/fhir/R4/narrative.html): well-formed XHTML, text escaped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

XHTML = "http://www.w3.org/1999/xhtml"


def text(value: Any) -> str:
    return escape(str(value), quote=False)


def heading(title: str, rest: str = "") -> str:
    return f"<p><b>{text(title)}</b>{text(rest)}</p>"


def paragraph(value: str) -> str:
    return f"<p>{text(value)}</p>"


def bullets(values: Iterable[str]) -> str:
    items = "".join(f"<li>{text(value)}</li>" for value in values)
    return f"<ul>{items}</ul>" if items else ""


def labelled(pairs: Iterable[tuple[str, str]]) -> str:
    items = "".join(f"<li><b>{text(label)}:</b> {text(value)}</li>" for label, value in pairs if value)
    return f"<ul>{items}</ul>" if items else ""


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    body = "".join("<tr>" + "".join(f"<td>{text(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    if not body:
        return ""
    head = "".join(f"<th>{text(h)}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def narrative(*blocks: str) -> dict[str, str]:
    return {"status": "generated", "div": f'<div xmlns="{XHTML}">' + "".join(blocks) + "</div>"}
