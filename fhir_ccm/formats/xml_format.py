"""FHIR XML <-> FHIR JSON (as Python dicts), driven by the vendored R4 definitions.

The in-memory form is decoded FHIR JSON with ``Decimal`` for decimals, so the
converter follows http://hl7.org/fhir/R4/xml.html and .../json.html:

* XML elements come in definition order; ``Property.order`` gives it (the
  variants of a choice element share one order).
* A primitive is ``<name value="..."/>``; its JSON ``_name`` companion (id and
  extensions) becomes the ``id`` attribute and ``extension`` children of the
  same element. Primitive arrays pair ``name[i]`` with ``_name[i]`` (nulls pad).
* ``Element.id`` and ``Extension.url`` are XML attributes.
* Properties holding a whole resource wrap it: ``<contained><Patient>..``.
* ``Narrative.div`` is an XHTML string in JSON and a real XHTML element in XML.

Reading is defensive: documents with a DOCTYPE are refused before libxml2 sees
them (libxml2 expands internal entities in attribute values even with
``resolve_entities=False``), the parser never loads DTDs or touches the
network, and every structural problem raises ``Invalid`` with a FHIRPath-like
expression such as ``CarePlan.activity[0].detail.status``.
"""

from __future__ import annotations

import copy
import math
import re
import threading
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

from lxml import etree

from fhir_ccm.definitions import resource_types
from fhir_ccm.definitions.elements import Property, properties
from fhir_ccm.errors import Invalid, Issue
from fhir_ccm.formats.json_format import MAX_EXPONENT

__all__ = ["FHIR_NS", "XHTML_NS", "resource_to_xml", "xml_to_resource"]

FHIR_NS = "http://hl7.org/fhir"
XHTML_NS = "http://www.w3.org/1999/xhtml"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"

_FHIR = "{" + FHIR_NS + "}"
_XHTML = "{" + XHTML_NS + "}"
_XSI = "{" + XSI_NS + "}"
_XHTML_DIV = _XHTML + "div"
_EXTENSION_TAG = _FHIR + "extension"
_XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_INDENT = "  "

# The node describing the id and extensions of a primitive (its JSON ``_name``).
_PRIMITIVE_COMPANION_NODE = "Element"

# How a property is represented in XML.
_ATTRIBUTE = 0  # an XML attribute (Element.id, Extension.url)
_PRIMITIVE = 1  # <name value="..."/> with optional id and extension children
_COMPLEX = 2  # <name> with child elements
_RESOURCE = 3  # <name><ResourceType>...</ResourceType></name>
_XHTML_KIND = 4  # the XHTML div itself

_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1

# Lexical forms from the R4 datatype definitions (JSON and XML share them).
_DECIMAL_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_INTEGER_RES = {
    "integer": re.compile(r"-?(?:0|[1-9][0-9]*)"),
    "positiveInt": re.compile(r"\+?[1-9][0-9]*"),
    "unsignedInt": re.compile(r"0|[1-9][0-9]*"),
}
_INTEGER_MIN = {"integer": _INT32_MIN, "positiveInt": 1, "unsignedInt": 0}
_BOOLEANS = {"true": True, "false": False}
_NON_STRING_TYPES = frozenset({"boolean", "decimal", *_INTEGER_RES})


@dataclass(frozen=True, slots=True)
class _Slot:
    """A JSON property as the XML codec sees it."""

    prop: Property
    tag: str  # Clark name of the XML element ("{ns}name"), or the attribute name
    kind: int


def _kind(prop: Property) -> int:
    if prop.xml_attribute:
        return _ATTRIBUTE
    if prop.type_code == "xhtml":
        return _XHTML_KIND
    if prop.is_resource:
        return _RESOURCE
    return _PRIMITIVE if prop.is_primitive else _COMPLEX


@cache
def _slots(node: str) -> dict[str, _Slot]:
    """The properties of ``node`` by JSON name."""
    result = {}
    for name, prop in properties(node).items():
        kind = _kind(prop)
        if kind == _ATTRIBUTE:
            tag = name
        elif kind == _XHTML_KIND:
            tag = _XHTML + name
        else:
            tag = _FHIR + name
        result[name] = _Slot(prop, tag, kind)
    return result


@cache
def _element_slots(node: str) -> dict[str, _Slot]:
    """The element (non-attribute) properties of ``node`` by Clark tag."""
    return {slot.tag: slot for slot in _slots(node).values() if slot.kind != _ATTRIBUTE}


@cache
def _attribute_slots(node: str) -> dict[str, _Slot]:
    """The properties of ``node`` carried as XML attributes, by attribute name."""
    return {slot.tag: slot for slot in _slots(node).values() if slot.kind == _ATTRIBUTE}


def _invalid(message: str, expression: str) -> Invalid:
    """A structural error; an empty expression (the document as a whole) is left out."""
    return Invalid(message, issues=[Issue("error", "structure", message, (expression,) if expression else ())])


# --------------------------------------------------------------------------- JSON -> XML


def resource_to_xml(resource: dict[str, Any], pretty: bool = False) -> bytes:
    """Render a FHIR JSON resource (a dict) as UTF-8 FHIR XML, with an XML declaration.

    Raises ``Invalid`` if the dict is not FHIR JSON (unknown property, wrong
    value type, unknown resource type, unparsable narrative XHTML).
    """
    try:
        root = _resource_element(None, resource, "")
    except RecursionError:
        raise Invalid("The resource is nested too deeply") from None
    if pretty:
        _indent(root)
    return _XML_DECLARATION + etree.tostring(root, encoding="UTF-8", xml_declaration=False)


def _resource_element(parent: Any, resource: Any, path: str) -> Any:
    """Build the element for a whole resource (under ``parent`` if given)."""
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    if not isinstance(resource_type, str) or resource_type not in resource_types():
        where = path or "resource"
        raise _invalid(f"Not a resource: unknown or missing resourceType {resource_type!r} at {where}", where)
    tag = _FHIR + resource_type
    if parent is None:
        element = etree.Element(tag, nsmap={None: FHIR_NS})
    else:
        element = etree.SubElement(parent, tag)
    _write_children(element, resource, resource_type, path or resource_type, is_resource=True)
    return element


def _write_children(element: Any, data: dict[str, Any], node: str, path: str, is_resource: bool = False) -> None:
    """Write the attributes and child elements for the JSON object ``data`` at ``node``."""
    slots = _slots(node)
    present: dict[str, _Slot] = {}
    for key in data:
        if is_resource and key == "resourceType":
            continue
        if not isinstance(key, str):
            raise _invalid(f"Property names must be strings, not {key!r}, at {path}", path)
        is_companion = key.startswith("_")
        name = key[1:] if is_companion else key
        slot = slots.get(name)
        if slot is None or (is_companion and slot.kind != _PRIMITIVE):
            raise _invalid(f"Unknown property '{key}' at {path}", f"{path}.{key}")
        present[name] = slot
    for name, slot in sorted(present.items(), key=lambda item: item[1].prop.order):
        _write_property(element, slot, data, name, path)


def _write_property(element: Any, slot: _Slot, data: dict[str, Any], name: str, path: str) -> None:
    """Write one property; ``path`` is the parent's expression (children's are built only when needed)."""
    value = data.get(name)
    kind = slot.kind
    if kind == _PRIMITIVE:
        if slot.prop.is_array:
            _write_primitive_array(element, slot, value, data.get("_" + name), f"{path}.{name}")
        else:
            _write_primitive(element, slot, value, data.get("_" + name), path, name)
    elif kind == _ATTRIBUTE:
        _write_attribute(element, slot, value, data, f"{path}.{name}")
    elif kind == _XHTML_KIND:
        if "_" + name in data:
            where = f"{path}._{name}"
            raise _invalid(f"'_{name}' is not allowed at {path}: the XHTML div cannot carry an id or extensions", where)
        element.append(_xhtml_element(value, f"{path}.{name}"))
    else:
        for item, item_path in _items(slot, value, f"{path}.{name}"):
            if kind == _RESOURCE:
                _resource_element(etree.SubElement(element, slot.tag), item, item_path)
            elif isinstance(item, dict):
                _write_children(etree.SubElement(element, slot.tag), item, slot.prop.node or "", item_path)
            else:
                raise _invalid(f"{item_path} must be a JSON object", item_path)


def _items(slot: _Slot, value: Any, path: str) -> list[tuple[Any, str]]:
    """The values of a property with their expressions; checks array-ness against the definition."""
    if slot.prop.is_array:
        if not isinstance(value, list):
            raise _invalid(f"{path} must be an array", path)
        return [(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, list) or value is None:
        raise _invalid(f"{path} must be a single value, not {'an array' if value is not None else 'null'}", path)
    return [(value, path)]


def _write_attribute(element: Any, slot: _Slot, value: Any, data: dict[str, Any], path: str) -> None:
    if "_" + slot.prop.name in data:
        raise _invalid(f"'_{slot.prop.name}' is not allowed: {path} is an XML attribute", path)
    if not isinstance(value, str):
        raise _invalid(f"{path} must be a string", path)
    try:
        element.set(slot.tag, value)
    except ValueError:
        raise _not_xml_characters(path) from None


def _not_xml_characters(path: str) -> Invalid:
    return _invalid(f"{path} contains characters that cannot be represented in XML", path)


def _write_primitive_array(element: Any, slot: _Slot, values: Any, companions: Any, path: str) -> None:
    """Write a primitive array, pairing ``values[i]`` with its ``_name`` companion ``companions[i]``."""
    if values is not None and not isinstance(values, list):
        raise _invalid(f"{path} must be an array", path)
    if companions is not None and not isinstance(companions, list):
        raise _invalid(f"_{slot.prop.name} at {path} must be an array", path)
    if values is None:
        values = [None] * len(companions or ())
    elif companions is None:
        companions = [None] * len(values)
    elif len(values) != len(companions):
        raise _invalid(f"{path} and its '_{slot.prop.name}' companion must have the same length", path)
    for index, (value, companion) in enumerate(zip(values, companions, strict=True)):
        _write_primitive(element, slot, value, companion, path, index)


def _write_primitive(element: Any, slot: _Slot, value: Any, companion: Any, path: str, step: str | int) -> None:
    """Write ``<name value="..."/>`` with the id and extensions of its companion.

    The expression is ``path`` plus ``step`` (a name, or an index into the array ``path``),
    joined only when an error or a companion needs it.
    """
    if value is None and companion is None:
        raise _invalid(f"{_join(path, step)} has neither a value nor an id or extensions", _join(path, step))
    child = etree.SubElement(element, slot.tag)
    if companion is not None:  # first, so that an id attribute precedes value as in the spec's examples
        if not isinstance(companion, dict):
            where = _join(path, step)
            raise _invalid(f"The id and extensions of {where} ('_{slot.prop.name}') must be a JSON object", where)
        _write_children(child, companion, _PRIMITIVE_COMPANION_NODE, _join(path, step))
    if value is not None:
        try:
            child.set("value", _primitive_text(slot.prop.type_code, value, path, step))
        except ValueError:
            raise _not_xml_characters(_join(path, step)) from None


def _join(path: str, step: str | int) -> str:
    """The expression of a child: ``path.name`` or ``path[index]``."""
    return f"{path}[{step}]" if isinstance(step, int) else f"{path}.{step}"


def _primitive_text(type_code: str, value: Any, path: str, step: str | int) -> str:
    """The XML ``value`` attribute text of a JSON primitive, checking its JSON type."""
    if type_code == "boolean":
        if isinstance(value, bool):
            return "true" if value else "false"
    elif type_code == "decimal":
        if isinstance(value, Decimal) and value.is_finite():
            return _decimal_text(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, float) and math.isfinite(value):
            return repr(value)
    elif type_code in _INTEGER_RES:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    elif isinstance(value, str):
        return value
    where = _join(path, step)
    raise _invalid(f"{where} has a value of the wrong JSON type for a FHIR {type_code}: {value!r}", where)


def _decimal_text(value: Decimal) -> str:
    if value and abs(value.adjusted()) > MAX_EXPONENT:
        return str(value)  # never expand an out-of-range exponent into positional digits
    """The digits of a decimal as written in the JSON it came from.

    ``str(Decimal)`` switches to exponent form for small numbers (``0.0000001``
    parses to ``Decimal('1E-7')``), so fixed-point is used whenever the exponent
    is not positive; that keeps trailing zeros (``2.50``) too. A positive
    exponent only comes from exponent notation in the source (``1E+2``), which
    ``str`` keeps as is, so the significant digits are not inflated.
    """
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent <= 0:
        return format(value, "f")
    return str(value)


def _xhtml_element(value: Any, path: str) -> Any:
    """Parse the narrative XHTML string of JSON into an element, refusing anything but an XHTML div."""
    if not isinstance(value, str):
        raise _invalid(f"{path} must be a string of XHTML", path)
    try:
        div = _parse(value.encode("utf-8"), path)
    except Invalid as error:
        raise _invalid(f"{path} is not well-formed XHTML: {error.message}", path) from None
    if div.tag != _XHTML_DIV:
        raise _invalid(f"{path} must be a <div> element in the XHTML namespace {XHTML_NS}", path)
    div.tail = None
    return div


def narrative_problem(value: str) -> str | None:
    """Why a narrative ``div`` is not well-formed XHTML, or None when it is.

    Checked on write, so every stored resource can also be served as XML.
    """
    try:
        _xhtml_element(value, "div")
    except Invalid as error:
        return error.message
    return None


def _indent(root: Any) -> None:
    """Pretty-print by setting whitespace on FHIR elements only.

    lxml's own indentation would also reformat the XHTML narrative, whose
    whitespace is content, so the div's inside is left untouched.
    """
    stack = [(root, 0)]
    while stack:
        element, level = stack.pop()
        children = list(element)
        if not children or element.tag == _XHTML_DIV:
            continue
        inner = "\n" + _INDENT * (level + 1)
        element.text = inner
        for child in children:
            child.tail = inner
            stack.append((child, level + 1))
        children[-1].tail = "\n" + _INDENT * level


# --------------------------------------------------------------------------- XML -> JSON

_parsers = threading.local()


def _parser() -> Any:
    """A safe parser per thread (lxml parsers must not be shared between threads)."""
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_comments=True,
            remove_pis=True,
            encoding="utf-8",  # FHIR XML is always UTF-8; this also makes the DOCTYPE check below sound
        )
        _parsers.parser = parser
    return parser


def _parse(data: bytes, path: str) -> Any:
    """Parse a document into its root element, refusing DTDs before the parser sees them."""
    # With the encoding forced to UTF-8 a DOCTYPE can only be spelled with these bytes.
    if b"<!DOCTYPE" in data:
        raise _invalid("XML with a DOCTYPE declaration is not accepted (DTDs and entities are not allowed)", path)
    try:
        root = etree.fromstring(data, _parser())
    except etree.XMLSyntaxError as error:
        raise _invalid(f"Malformed XML: {error}", path) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise _invalid("XML with a DOCTYPE declaration is not accepted (DTDs and entities are not allowed)", path)
    return root


def xml_to_resource(data: bytes | str) -> dict[str, Any]:
    """Read a FHIR XML document into the FHIR JSON dict form (``resourceType`` first).

    Raises ``Invalid`` for malformed or hostile XML (any DOCTYPE), a wrong
    namespace, an unknown resource type or element, or a malformed value.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    root = _parse(data, "")
    try:
        return _read_resource(root, "")
    except RecursionError:  # pragma: no cover - libxml2 limits depth to 256 first
        raise Invalid("The document is nested too deeply") from None


def _split_tag(tag: str) -> tuple[str | None, str]:
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return None, tag


def _read_resource(element: Any, path: str) -> dict[str, Any]:
    namespace, resource_type = _split_tag(element.tag)
    where = path or resource_type
    if namespace != FHIR_NS:
        found = f"namespace '{namespace}'" if namespace else "no namespace"
        raise _invalid(
            f"Element <{resource_type}> at {where} is in {found}; a resource must be in the FHIR namespace {FHIR_NS}",
            where,
        )
    if resource_type not in resource_types():
        raise _invalid(f"Unknown resource type '{resource_type}' at {where}", where)
    result: dict[str, Any] = {"resourceType": resource_type}
    _read_children(element, resource_type, result, path or resource_type)
    return result


def _check_attributes(element: Any, allowed: dict[str, _Slot], path: str) -> None:
    for name in element.attrib:
        if name not in allowed and not name.startswith(_XSI):
            kind = "complex element" if name == "value" else "element"
            raise _invalid(f"Attribute '{name}' is not allowed on {kind} {path}", path)


def _read_children(element: Any, node: str, result: dict[str, Any], path: str) -> None:
    """Read the attributes and children of ``element`` (described by ``node``) into ``result``."""
    attributes = _attribute_slots(node)
    _check_attributes(element, attributes, path)
    for name, value in element.attrib.items():
        if name in attributes:
            result[name] = value
    _check_no_text(element.text, path)
    slots = _element_slots(node)
    seen: set[str] = set()
    primitive_arrays: dict[str, tuple[list[Any], list[Any]]] = {}
    for child in element:
        _check_no_text(child.tail, path)
        slot = slots.get(child.tag)
        if slot is None:
            raise _unknown_element(child, node, path)
        name = slot.prop.name
        if slot.prop.is_array:
            _read_array_item(child, slot, result, primitive_arrays, path)
            continue
        if slot.prop.path in seen:
            raise _repeated(slot, path)
        seen.add(slot.prop.path)
        if slot.kind == _PRIMITIVE:
            value, companion = _read_primitive(child, slot, path, name)
            if value is not None:
                result[name] = value
            if companion is not None:
                result["_" + name] = companion
        else:
            result[name] = _read_value(child, slot, f"{path}.{name}")
    for name, (values, companions) in primitive_arrays.items():
        _finish_primitive_array(result, name, values, companions)


def _repeated(slot: _Slot, path: str) -> Invalid:
    name = slot.prop.name
    if slot.prop.is_choice:
        choice = slot.prop.path.rsplit(".", 1)[-1]
        return _invalid(f"Only one element for the choice '{choice}' may occur at {path}", f"{path}.{name}")
    return _invalid(f"Element '{name}' may occur only once at {path}", f"{path}.{name}")


def _read_array_item(
    child: Any,
    slot: _Slot,
    result: dict[str, Any],
    primitive_arrays: dict[str, tuple[list[Any], list[Any]]],
    path: str,
) -> None:
    name = slot.prop.name
    if slot.kind == _PRIMITIVE:
        if name not in primitive_arrays:
            result[name] = []  # the values list, stored now to keep the property's place
            primitive_arrays[name] = result[name], []
        values, companions = primitive_arrays[name]
        value, companion = _read_primitive(child, slot, f"{path}.{name}", len(values))
        values.append(value)
        companions.append(companion)
        return
    items = result.setdefault(name, [])
    items.append(_read_value(child, slot, f"{path}.{name}[{len(items)}]"))


def _finish_primitive_array(result: dict[str, Any], name: str, values: list[Any], companions: list[Any]) -> None:
    """Store a primitive array as JSON does: values with nulls, ``_name`` only if some item has id/extensions."""
    if all(value is None for value in values):
        del result[name]
    if any(companion is not None for companion in companions):
        result["_" + name] = companions


def _read_value(child: Any, slot: _Slot, path: str) -> Any:
    if slot.kind == _COMPLEX:
        value: dict[str, Any] = {}
        _read_children(child, slot.prop.node or "", value, path)
        return value
    if slot.kind == _RESOURCE:
        return _read_contained(child, path)
    return _xhtml_text(child, path)


def _read_contained(wrapper: Any, path: str) -> dict[str, Any]:
    """Read ``<contained><Patient>...</Patient></contained>`` and the like."""
    _check_attributes(wrapper, {}, path)
    _check_no_text(wrapper.text, path)
    children = list(wrapper)
    if len(children) != 1:
        raise _invalid(f"{path} must contain exactly one resource element, found {len(children)}", path)
    _check_no_text(children[0].tail, path)
    return _read_resource(children[0], path)


def _read_primitive(element: Any, slot: _Slot, path: str, step: str | int) -> tuple[Any, dict[str, Any] | None]:
    """The JSON value of a primitive element and its ``_name`` companion (or None).

    The element's expression is ``path`` plus ``step``, joined only when needed.
    """
    companion: dict[str, Any] | None = None
    raw = None
    for name, text in element.items():
        if name == "value":
            raw = text
        elif name == "id":
            companion = {"id": text}
        elif not name.startswith(_XSI):
            raise _invalid(f"Attribute '{name}' is not allowed on {_join(path, step)}", _join(path, step))
    if element.text is not None:
        _check_no_text(element.text, _join(path, step))
    if len(element):
        companion = _read_primitive_extensions(element, companion or {}, _join(path, step))
    if raw is None:
        if companion is None:
            raise _invalid(f"{_join(path, step)} has neither a value attribute nor extensions", _join(path, step))
        return None, companion
    return _primitive_value(slot.prop.type_code, raw, path, step), companion


def _read_primitive_extensions(element: Any, companion: dict[str, Any], path: str) -> dict[str, Any]:
    """Add the ``extension`` children of a primitive element to its companion."""
    extensions: list[dict[str, Any]] = []
    for child in element:
        _check_no_text(child.tail, path)
        if child.tag != _EXTENSION_TAG:
            raise _unknown_element(child, _PRIMITIVE_COMPANION_NODE, path)
        extension: dict[str, Any] = {}
        _read_children(child, "Extension", extension, f"{path}.extension[{len(extensions)}]")
        extensions.append(extension)
    companion["extension"] = extensions
    return companion


def _primitive_value(type_code: str, text: str, path: str, step: str | int) -> Any:
    """Convert a ``value`` attribute to its JSON type, checking numbers and booleans."""
    if type_code not in _NON_STRING_TYPES:
        return text
    if type_code == "boolean":
        if text in _BOOLEANS:
            return _BOOLEANS[text]
        problem = "is not a boolean (expected 'true' or 'false')"
    elif type_code == "decimal":
        if _DECIMAL_RE.fullmatch(text):
            value = Decimal(text)
            if not value or abs(value.adjusted()) <= MAX_EXPONENT:
                return value
            problem = "is out of range"
        else:
            problem = "is not a valid decimal"
    elif _INTEGER_RES[type_code].fullmatch(text):
        number = int(text)
        if _INTEGER_MIN[type_code] <= number <= _INT32_MAX:
            return number
        problem = f"is out of range for {type_code}"
    else:
        problem = f"is not a valid {type_code}"
    where = _join(path, step)
    raise _invalid(f"{where}: {text!r} {problem}", where)


def _xhtml_text(div: Any, path: str) -> str:
    """The JSON string of an XHTML div: the default XHTML namespace on the div, no other declarations."""
    detached = copy.deepcopy(div)  # serializing in place would repeat every ancestor's namespace
    detached.tail = None
    if any(element.prefix is not None for element in detached.iter(_XHTML + "*")):
        detached = _with_default_namespace(detached)
    etree.cleanup_namespaces(detached)
    text: str = etree.tostring(detached, encoding="unicode", with_tail=False)
    return text


def _with_default_namespace(element: Any, parent: Any = None) -> Any:
    """Copy an XHTML tree written with a prefix (``<h:div>``) so it uses the default namespace."""
    attributes = dict(element.attrib)
    if parent is None:
        copied = etree.Element(element.tag, attributes, nsmap={None: XHTML_NS})
    else:
        copied = etree.SubElement(parent, element.tag, attributes)
    copied.text = element.text
    copied.tail = element.tail
    for child in element:
        _with_default_namespace(child, copied)
    return copied


def _check_no_text(text: str | None, path: str) -> None:
    if text and not text.isspace():
        raise _invalid(f"Unexpected text {text.strip()[:40]!r} in {path}; FHIR XML puts values in attributes", path)


def _unknown_element(child: Any, node: str, path: str) -> Invalid:
    """The error for a child element that ``node`` does not define, explaining namespace mistakes."""
    if not isinstance(child.tag, str):  # pragma: no cover - comments and PIs are removed by the parser
        return _invalid(f"Unexpected content in {path}", path)
    namespace, local = _split_tag(child.tag)
    expression = f"{path}.{local}"
    found = f"namespace '{namespace}'" if namespace else "no namespace"
    slot = _slots(node).get(local)
    if slot is None:
        where = "" if namespace == FHIR_NS else f" (in {found})"
        return _invalid(f"Unknown element '{local}'{where} at {path}", expression)
    if slot.kind == _ATTRIBUTE:
        return _invalid(f"'{local}' at {path} must be an XML attribute, not an element", expression)
    if slot.kind == _XHTML_KIND:
        return _invalid(f"'{local}' at {path} must be an XHTML element in the namespace {XHTML_NS}", expression)
    return _invalid(
        f"Element '{local}' at {path} is in {found}; FHIR elements must be in the namespace {FHIR_NS}", expression
    )
