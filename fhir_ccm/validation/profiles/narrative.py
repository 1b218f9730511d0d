"""The narrative XHTML rules (``txt-1``, ``txt-2``; narrative.html#xhtml).

The div must be well-formed XHTML in the XHTML namespace, use only the basic
formatting elements and attributes FHIR allows, and have some non-whitespace
content. Scripts, event attributes (``onclick``...), forms, frames, objects,
``javascript:`` links and DTDs are refused. Parsing is safe: no DTDs, no
entities resolved, no network.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from lxml import etree

XHTML_NS = "http://www.w3.org/1999/xhtml"
_XHTML = "{" + XHTML_NS + "}"
_XML_NS = "{http://www.w3.org/XML/1998/namespace}"

ALLOWED_ELEMENTS = frozenset(
    "a abbr acronym address b big blockquote br caption cite code col colgroup dd dfn div dl dt em "
    "h1 h2 h3 h4 h5 h6 hr i img li ol p pre q samp small span strong sub sup table tbody td tfoot th "
    "thead tr tt ul var bdo kbd map area".split()
)
ALLOWED_ATTRIBUTES = frozenset(
    "title style class id lang dir accesskey tabindex span width align valign char charoff abbr axis headers "
    "scope rowspan colspan href name src alt longdesc height border cellpadding cellspacing summary rules frame "
    "start type value compact nowrap bgcolor shape coords hreflang rel rev cite datetime".split()
)
_URL_ATTRIBUTES = frozenset({"href", "src", "longdesc", "cite"})

Problem = tuple[str, str]  # (invariant key or "", message)

_parsers = threading.local()


def _parser() -> Any:
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_pis=False
        )
        _parsers.parser = parser
    return parser


def check_narrative(div: str) -> tuple[Problem, ...]:
    """Every problem of a narrative div: ``("", ...)`` for well-formedness, else the invariant key."""
    return _check(div)


@lru_cache(maxsize=512)
def _check(div: str) -> tuple[Problem, ...]:
    if "<!DOCTYPE" in div or "<!ENTITY" in div:
        return (("", "The narrative must not contain a DOCTYPE or entity declarations"),)
    try:
        root = etree.fromstring(div.encode("utf-8"), _parser())
    except etree.XMLSyntaxError as error:
        return (("", f"The narrative is not well-formed XHTML: {error}"),)
    if root.tag != _XHTML + "div":
        return (("txt-1", f"The narrative must be a <div> in the XHTML namespace {XHTML_NS}"),)
    problems: list[Problem] = []
    for element in root.iter():
        if not isinstance(element.tag, str):
            if isinstance(element, etree._ProcessingInstruction):
                problems.append(("txt-1", "Processing instructions are not allowed in the narrative"))
            continue
        problems.extend(_element_problems(element))
    if not "".join(root.itertext()).strip() and root.find(".//" + _XHTML + "img") is None:
        problems.append(("txt-2", "The narrative must have some non-whitespace content"))
    return tuple(dict.fromkeys(problems))


def _element_problems(element: Any) -> list[Problem]:
    problems: list[Problem] = []
    namespace, _, local = element.tag[1:].partition("}") if element.tag.startswith("{") else ("", "", element.tag)
    if namespace != XHTML_NS:
        problems.append(("txt-1", f"The element <{local}> is not in the XHTML namespace"))
    elif local == "script":
        problems.append(("txt-1", "Scripts are not allowed in the narrative"))
    elif local not in ALLOWED_ELEMENTS:
        problems.append(("txt-1", f"The element <{local}> is not allowed in the narrative"))
    for name, value in element.attrib.items():
        problems.extend(_attribute_problems(local, name, value))
    return problems


def _attribute_problems(element: str, name: str, value: str) -> list[Problem]:
    if name.startswith(_XML_NS):
        return (
            [] if name == _XML_NS + "lang" else [("txt-1", f"The attribute xml:{name[len(_XML_NS) :]} is not allowed")]
        )
    if name.startswith("{"):
        return [("txt-1", f"The namespaced attribute {name} on <{element}> is not allowed in the narrative")]
    lowered = name.lower()
    if lowered.startswith("on"):
        return [("txt-1", f"The event attribute '{name}' on <{element}> is not allowed in the narrative")]
    if lowered not in ALLOWED_ATTRIBUTES:
        return [("txt-1", f"The attribute '{name}' on <{element}> is not allowed in the narrative")]
    if lowered in _URL_ATTRIBUTES and "".join(value.split()).lower().startswith(("javascript:", "vbscript:")):
        return [("txt-1", f"The {name} of <{element}> must not be a script URL")]
    return []


def html_checks(div: str) -> bool:
    """FHIRPath ``htmlChecks()``: the div passes every rule."""
    return not check_narrative(div)
