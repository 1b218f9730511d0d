"""The index rows a resource yields for its search parameters (http://hl7.org/fhir/R4/search.html).

Each parameter's expression is evaluated (``fhirpath.evaluate_items``) and every
typed value converted by the rules of the parameter's kind:

* token: Coding (system, code, display), CodeableConcept (each coding and its
  text), Identifier (system, value, with its type codings for ``:of-type``),
  ContactPoint (value), code (with the system its required binding implies),
  boolean, id, string, uri;
* string: string/markdown, HumanName and Address parts, normalized and exact;
* date: date/dateTime/instant by precision, Period, Timing, as epoch ms ranges;
* reference: relative, versioned, absolute and canonical references, identifiers;
* quantity: Quantity and its kinds, Money, Range;  number: decimal/integer;
  uri: uri/url/canonical/oid/uuid;
* composite: the combinations of component values taken from one element.

Values that do not convert are skipped; nothing here raises on odd content.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any

from fhir_ccm.definitions import search_parameters
from fhir_ccm.definitions.elements import Property, known_types
from fhir_ccm.search.coverage import subtract_narrower
from fhir_ccm.search.fhirpath import compiled, evaluate_items, parse_reference
from fhir_ccm.search.parameters import SearchParam, component_parameter, parameters_for
from fhir_ccm.search.rows import (
    DATE_MAX,
    DATE_MIN,
    STRING_PARTS,
    CompositeRow,
    DateRow,
    IndexRow,
    NumberRow,
    QuantityRow,
    ReferenceRow,
    StringRow,
    TokenRow,
    UriRow,
)
from fhir_ccm.search.values import normalize_text as normalize
from fhir_ccm.validation.valuesets import expand

_Converter = Callable[[str, Any, str, Property | None, list[Any]], None]

CURRENCY_SYSTEM = "urn:iso:std:iso:4217"
QUANTITY_TYPES = frozenset({"Quantity", "Age", "Duration", "Distance", "Count", "SimpleQuantity", "MoneyQuantity"})
NUMBER_TYPES = frozenset({"decimal", "integer", "positiveInt", "unsignedInt", "integer64"})
DATE_TYPES = frozenset({"date", "dateTime", "instant"})


# --------------------------------------------------------------------------- entry points


def extract_rows(resource: dict[str, Any]) -> list[IndexRow]:
    """Every index row ``resource`` yields, over all parameters of its type, without duplicates.

    A value a narrower parameter holds is left out of the broader one's rows
    (``coverage``): searches on the broader one read both.
    """
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    if not isinstance(resource_type, str):
        return []
    rows_by_code: dict[str, list[IndexRow]] = {}
    for param, converter, needs in _plan(resource_type):
        if needs is not None and needs.isdisjoint(resource):
            continue
        rows: list[IndexRow] = []
        try:
            _collect(param, resource, converter, rows)
        except Exception:  # a value shape no rule foresaw: keep the rows before it, go on with the rest
            pass
        if rows:
            rows_by_code[param.code] = rows
    subtract_narrower(resource_type, rows_by_code)
    return list(dict.fromkeys(itertools.chain.from_iterable(rows_by_code.values())))


def rows_for(param: SearchParam, resource: dict[str, Any]) -> list[IndexRow]:
    """The index rows of one parameter, without duplicates."""
    rows: list[IndexRow] = []
    try:
        _collect(param, resource, _converter_for(param), rows)
    except Exception:
        return []
    return list(dict.fromkeys(rows))


@cache
def _plan(resource_type: str) -> tuple[tuple[SearchParam, _Converter | None, frozenset[str] | None], ...]:
    """Each parameter of the type with its converter and the top-level names it needs (None: unknown)."""
    return tuple(
        (param, _converter_for(param), _needs(param, resource_type)) for param in parameters_for(resource_type).values()
    )


def _needs(param: SearchParam, resource_type: str) -> frozenset[str] | None:
    """The JSON names at the top of a resource one of which ``param`` needs to yield any row.

    A type has dozens of parameters and a resource feeds a handful; checking the top-level
    names skips the rest without evaluating them.
    """
    if param.type == "composite":
        return None
    expression = compiled(param.expression, resource_type)
    return None if expression is None else expression.first_keys


def _converter_for(param: SearchParam) -> _Converter | None:
    return None if param.type == "composite" else _CONVERTERS.get(param.type)


def _collect(param: SearchParam, resource: dict[str, Any], converter: _Converter | None, out: list[Any]) -> None:
    if param.type == "composite":
        _composite(param, resource, out)
        return
    if converter is None:
        return
    code = param.code
    for value, type_code, _node, prop in evaluate_items(param.expression, resource):
        converter(code, value, type_code, prop, out)


# --------------------------------------------------------------------------- text


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return normalize(value) or None
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _unwrap_extension(value: Any) -> tuple[Any, str] | None:
    """An Extension's ``value[x]`` with its type."""
    if not isinstance(value, dict):
        return None
    for key, found in value.items():
        if key.startswith("value") and len(key) > 5:
            name = key[5:]
            for candidate in (name, name[0].lower() + name[1:]):
                if candidate in known_types():
                    return found, candidate
    return None


# --------------------------------------------------------------------------- token


@cache
def implied_system(value_set: str) -> str | None:
    """The CodeSystem of a required ValueSet whose codes all come from one system."""
    expansion = expand(value_set)
    if not expansion:
        return None
    systems = {system for system, _code in expansion}
    return systems.pop() if len(systems) == 1 else None


def _token(param: str, value: Any, type_code: str, prop: Property | None, out: list[Any]) -> None:
    if isinstance(value, dict):
        if type_code == "CodeableConcept":
            _codeable_concept(param, value, out)
        elif type_code == "Coding":
            _coding(param, value, out)
        elif type_code == "Identifier":
            _identifier(param, value, out)
        elif type_code == "ContactPoint":
            contact = _str(value.get("value"))
            if contact is not None:
                out.append(TokenRow(param, None, contact))
        elif type_code == "Extension":
            unwrapped = _unwrap_extension(value)
            if unwrapped is not None:
                _token(param, unwrapped[0], unwrapped[1], None, out)
        return
    if isinstance(value, bool):
        out.append(TokenRow(param, None, "true" if value else "false"))
    elif isinstance(value, str):
        if not value:
            return
        system = None
        if type_code == "code" and prop is not None and prop.binding_strength == "required" and prop.value_set:
            system = implied_system(prop.value_set)
        out.append(TokenRow(param, system, value))
    elif isinstance(value, int | Decimal):
        out.append(TokenRow(param, None, str(value)))


def _coding(param: str, coding: dict[str, Any], out: list[Any]) -> None:
    system, code, display = _str(coding.get("system")), _str(coding.get("code")), _text(coding.get("display"))
    if system is not None or code is not None or display is not None:
        out.append(TokenRow(param, system, code, display))


def _codeable_concept(param: str, concept: dict[str, Any], out: list[Any]) -> None:
    codings = concept.get("coding")
    if isinstance(codings, list):
        for coding in codings:
            if isinstance(coding, dict):
                _coding(param, coding, out)
    text = _text(concept.get("text"))
    if text is not None:
        out.append(TokenRow(param, None, None, text))


def _identifier(param: str, identifier: dict[str, Any], out: list[Any]) -> None:
    system, value = _str(identifier.get("system")), _str(identifier.get("value"))
    if system is None and value is None:
        return
    kind = identifier.get("type")
    text = None
    type_codes: list[tuple[str | None, str | None]] = []
    if isinstance(kind, dict):
        text = _text(kind.get("text"))
        codings = kind.get("coding")
        if isinstance(codings, list):
            for coding in codings:
                if isinstance(coding, dict) and (coding.get("system") or coding.get("code")):
                    type_codes.append((_str(coding.get("system")), _str(coding.get("code"))))
    if not type_codes:
        out.append(TokenRow(param, system, value, text))
    for type_system, type_code in type_codes:
        out.append(TokenRow(param, system, value, text, type_system, type_code))


# --------------------------------------------------------------------------- string


def _string(param: str, value: Any, type_code: str, prop: Property | None, out: list[Any]) -> None:
    if isinstance(value, str):
        _string_row(param, value, out)
        return
    if not isinstance(value, dict):
        return
    if type_code == "Extension":
        unwrapped = _unwrap_extension(value)
        if unwrapped is not None:
            _string(param, unwrapped[0], unwrapped[1], None, out)
        return
    for name, repeated in STRING_PARTS.get(type_code, ()):
        found = value.get(name)
        if repeated and isinstance(found, list):
            for each in found:
                if isinstance(each, str):
                    _string_row(param, each, out)
        elif isinstance(found, str):
            _string_row(param, found, out)


def _string_row(param: str, text: str, out: list[Any]) -> None:
    normalized = normalize(text)
    if normalized:
        out.append(StringRow(param, normalized, text))


# --------------------------------------------------------------------------- date

_DATE = re.compile(
    r"(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.(?P<f>\d+))?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)
_DAY_MS = 86_400_000
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _days(year: int, month: int, day: int) -> int:
    return date(year, month, day).toordinal() - _EPOCH_ORDINAL


def date_range(text: str) -> tuple[int, int] | None:
    """``[low, high]`` epoch ms (UTC) a date, dateTime or instant covers at its precision."""
    match = _DATE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    try:
        year = int(match["y"])
        if year < 1:
            return None
        if match["m"] is None:
            low = _days(year, 1, 1) * _DAY_MS
            high = (_days(year + 1, 1, 1) * _DAY_MS - 1) if year < 9999 else DATE_MAX
            return low, high
        month = int(match["m"])
        if match["d"] is None:
            low = _days(year, month, 1) * _DAY_MS
            following = (year + 1, 1) if month == 12 else (year, month + 1)
            high = (_days(following[0], following[1], 1) * _DAY_MS - 1) if following[0] <= 9999 else DATE_MAX
            return low, high
        start = _days(year, month, int(match["d"])) * _DAY_MS
    except ValueError:  # month 13, February 30...
        return None
    if match["H"] is None:
        return start, start + _DAY_MS - 1
    hour, minute = int(match["H"]), int(match["M"])
    second = int(match["S"]) if match["S"] is not None else 0
    if hour > 23 or minute > 59 or second > 60:
        return None
    second = min(second, 59)  # a leap second
    offset = 0
    zone = match["tz"]
    if zone and zone != "Z":
        zone_hours, zone_minutes = int(zone[1:3]), int(zone[4:6])
        if zone_hours > 14 or zone_minutes > 59:
            return None
        offset = (zone_hours * 60 + zone_minutes) * 60_000 * (1 if zone[0] == "+" else -1)
    low = start + ((hour * 60 + minute) * 60 + second) * 1000 - offset
    if match["S"] is None:
        return low, low + 59_999
    fraction = match["f"]
    if fraction is None:
        return low, low + 999
    if len(fraction) >= 3:
        low += int(fraction[:3])
        return low, low
    step = 10 ** (3 - len(fraction))
    low += int(fraction) * step
    return low, low + step - 1


def _period_range(period: Any) -> tuple[int, int] | None:
    if not isinstance(period, dict):
        return None
    start, end = period.get("start"), period.get("end")
    if start is None and end is None:
        return None
    low = DATE_MIN
    high = DATE_MAX
    if start is not None:
        start_range = date_range(start)
        if start_range is None:
            return None
        low = start_range[0]
    if end is not None:
        end_range = date_range(end)
        if end_range is None:
            return None
        high = end_range[1]
    return low, high


def _timing_range(timing: dict[str, Any]) -> tuple[int, int] | None:
    events = timing.get("event")
    ranges = [found for found in (date_range(event) for event in events) if found] if isinstance(events, list) else []
    if ranges:
        return min(low for low, _ in ranges), max(high for _, high in ranges)
    repeat = timing.get("repeat")
    if isinstance(repeat, dict):
        return _period_range(repeat.get("boundsPeriod"))
    return None


def _date(param: str, value: Any, type_code: str, prop: Property | None, out: list[Any]) -> None:
    found: tuple[int, int] | None = None
    if isinstance(value, str):
        if type_code in DATE_TYPES:
            found = date_range(value)
    elif isinstance(value, dict):
        if type_code == "Period":
            found = _period_range(value)
        elif type_code == "Timing":
            found = _timing_range(value)
        elif type_code == "Extension":
            unwrapped = _unwrap_extension(value)
            if unwrapped is not None:
                _date(param, unwrapped[0], unwrapped[1], None, out)
    if found is not None:
        out.append(DateRow(param, found[0], found[1]))


# --------------------------------------------------------------------------- reference


def _reference(param: str, value: Any, type_code: str, prop: Property | None, out: list[Any]) -> None:
    if isinstance(value, str):  # canonical, uri
        canonical = value.split("|", 1)[0]
        if canonical and not canonical.startswith("#"):
            out.append(ReferenceRow(param, None, None, url=canonical))
        return
    if not isinstance(value, dict):
        return
    resource_type = value.get("resourceType")
    if isinstance(resource_type, str):  # a resource itself (Bundle.entry[0].resource)
        if isinstance(value.get("id"), str):
            out.append(ReferenceRow(param, resource_type, value["id"]))
        return
    if type_code == "Extension":
        unwrapped = _unwrap_extension(value)
        if unwrapped is not None:
            _reference(param, unwrapped[0], unwrapped[1], None, out)
        return
    parsed = None
    text = value.get("reference")
    if isinstance(text, str):
        parsed = parse_reference(text)
    identifier_system = identifier_value = None
    identifier = value.get("identifier")
    if isinstance(identifier, dict):
        identifier_system, identifier_value = _str(identifier.get("system")), _str(identifier.get("value"))
    if parsed is None and identifier_system is None and identifier_value is None:
        return
    target_type, target_id, version, url = parsed or (None, None, None, None)
    out.append(ReferenceRow(param, target_type, target_id, version, url, identifier_system, identifier_value))


# --------------------------------------------------------------------------- quantity, number, uri


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        return None
    try:
        number = float(value)
    except (OverflowError, InvalidOperation, ValueError):
        return None
    return number if math.isfinite(number) else None


def _quantity(param: str, value: Any, type_code: str, prop: Property | None, out: list[Any]) -> None:
    if not isinstance(value, dict):
        number = _number(value)
        if number is not None:
            out.append(QuantityRow(param, number, number, None, None, None))
        return
    if type_code == "Range":
        low, high = value.get("low"), value.get("high")
        low_value = _number(low.get("value")) if isinstance(low, dict) else None
        high_value = _number(high.get("value")) if isinstance(high, dict) else None
        if low_value is None and high_value is None:
            return
        side: dict[str, Any] = low if isinstance(low, dict) and low_value is not None else high or {}
        out.append(
            QuantityRow(
                param,
                low_value if low_value is not None else -math.inf,
                high_value if high_value is not None else math.inf,
                _str(side.get("system")),
                _str(side.get("code")),
                _str(side.get("unit")),
            )
        )
    elif type_code == "Money":
        number = _number(value.get("value"))
        if number is not None:
            currency = _str(value.get("currency"))
            out.append(QuantityRow(param, number, number, CURRENCY_SYSTEM if currency else None, currency, None))
    elif type_code in QUANTITY_TYPES:
        number = _number(value.get("value"))
        if number is not None:
            system, code, unit = _str(value.get("system")), _str(value.get("code")), _str(value.get("unit"))
            out.append(QuantityRow(param, number, number, system, code, unit))
    elif type_code == "Extension":
        unwrapped = _unwrap_extension(value)
        if unwrapped is not None:
            _quantity(param, unwrapped[0], unwrapped[1], None, out)


def _number_row(param: str, value: Any, type_code: str, prop: Property | None, out: list[Any]) -> None:
    if isinstance(value, dict):
        if type_code == "Range" or type_code in QUANTITY_TYPES:
            rows: list[QuantityRow] = []
            _quantity(param, value, type_code, prop, rows)
            out.extend(NumberRow(param, row.low, row.high) for row in rows)
        elif type_code == "Extension":
            unwrapped = _unwrap_extension(value)
            if unwrapped is not None:
                _number_row(param, unwrapped[0], unwrapped[1], None, out)
        return
    number = _number(value)
    if number is not None:
        out.append(NumberRow(param, number, number))


def _uri(param: str, value: Any, type_code: str, prop: Property | None, out: list[Any]) -> None:
    if isinstance(value, str):
        if value:
            out.append(UriRow(param, value))
    elif type_code == "Extension":
        unwrapped = _unwrap_extension(value)
        if unwrapped is not None:
            _uri(param, unwrapped[0], unwrapped[1], None, out)


_CONVERTERS: dict[str, _Converter] = {
    "token": _token,
    "string": _string,
    "date": _date,
    "reference": _reference,
    "quantity": _quantity,
    "number": _number_row,
    "uri": _uri,
}


# --------------------------------------------------------------------------- composite


@cache
def _definition_kinds() -> dict[str, tuple[str, str]]:
    """SearchParameter url -> (code, type), for components whose parameter a type does not list."""
    return {sp["url"]: (sp.get("code", ""), sp.get("type", "")) for sp in search_parameters() if "url" in sp}


@cache
def _components(param: SearchParam) -> tuple[tuple[str, str, _Converter], ...] | None:
    """(expression, code, converter) per component; ``None`` if a component's kind is unknown."""
    result = []
    for url, expression in param.components:
        component = component_parameter(url, param.resource_type)
        code, kind = (component.code, component.type) if component else _definition_kinds().get(url, ("", ""))
        converter = _CONVERTERS.get(kind)
        if converter is None:
            return None
        result.append((expression, code or param.code, converter))
    return tuple(result)


def _composite(param: SearchParam, resource: dict[str, Any], out: list[Any]) -> None:
    components = _components(param)
    if not components:
        return
    for element in evaluate_items(param.expression, resource):
        if element[2] is None:
            continue
        values: list[list[Any]] = []
        for expression, code, converter in components:
            rows: list[Any] = []
            for value, type_code, _node, prop in evaluate_items(expression, resource, element):
                converter(code, value, type_code, prop, rows)
            if not rows:
                break
            values.append(list(dict.fromkeys(rows)))
        else:
            out.extend(CompositeRow(param.code, combination) for combination in itertools.product(*values))
