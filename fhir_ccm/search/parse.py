"""The query string of a search as a value (http://hl7.org/fhir/R4/search.html).

Pure: no store, no SQL. ``parse_search`` turns ``?patient=123&status=active,completed``
into a ``SearchQuery``; ``sql.py`` turns that into SQL. Anything not understood
(an unknown parameter, modifier, prefix or malformed value) raises ``Invalid``
naming it, except that with lenient handling unknown parameters are set aside
in ``SearchQuery.ignored``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from fhir_ccm.arguments import natural_number
from fhir_ccm.definitions import resource_types
from fhir_ccm.errors import Invalid
from fhir_ccm.search.parameters import SearchParam, component_parameter, parameters_for
from fhir_ccm.search.values import (
    Range,
    date_range,
    decimal_value,
    normalize_text,
    number_range,
    split_prefix,
)
from fhir_ccm.validation.valuesets import Expansion, expand

DEFAULT_COUNT = 20
MAX_COUNT = 1000
TOTAL_MODES = ("none", "estimate", "accurate")
DEFAULT_TOTAL = "accurate"

# Modifiers each kind of parameter honours (the CapabilityStatement lists these).
MODIFIERS: dict[str, tuple[str, ...]] = {
    "token": ("missing", "not", "text", "of-type", "in", "not-in"),
    "string": ("missing", "exact", "contains"),
    "date": ("missing",),
    "reference": ("missing", "identifier"),  # plus a resource type, e.g. subject:Patient
    "quantity": ("missing",),
    "number": ("missing",),
    "uri": ("missing", "above", "below"),
    "composite": ("missing",),
}
PREFIXED_KINDS = frozenset({"date", "number", "quantity"})
RESULT_PARAMETERS = frozenset(
    {"_sort", "_count", "_total", "_include", "_revinclude", "_summary", "_elements", "_snapshot", "_offset"}
)
FORMAT_PARAMETERS = frozenset({"_format", "_pretty"})
# Result parameters given at most once, and the SearchQuery field each sets.
SINGLE_RESULT_PARAMETERS = {
    "_sort": "sort",
    "_count": "count",
    "_total": "total",
    "_summary": "summary",
    "_snapshot": "snapshot",
    "_offset": "offset",
}

# ``:in`` / ``:not-in``: the codes of the ValueSet with a canonical URL, or None if it cannot be listed.
# The default knows the R4 definitions; the search interaction adds the ValueSets the store holds.
ValueSetResolver = Callable[[str], Expansion | None]


# -- values -------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenValue:
    system: str | None
    code: str | None
    any_system: bool  # "code" alone matches any system; "|code" only codes without one


@dataclass(frozen=True)
class OfTypeValue:
    type_system: str
    type_code: str
    value: str


@dataclass(frozen=True)
class CodeSetValue:
    """``:in`` / ``:not-in``: the (system, code) pairs of a ValueSet the server holds."""

    url: str
    codes: frozenset[tuple[str, str]]


@dataclass(frozen=True)
class TextValue:
    text: str  # normalized


@dataclass(frozen=True)
class StringValue:
    normalized: str
    exact: str


@dataclass(frozen=True)
class PrefixedValue:
    """A date, number or quantity with its comparison prefix and the range it stands for."""

    prefix: str
    range: Range
    value: Decimal | None = None  # numbers and quantities
    system: str | None = None  # quantities
    code: str | None = None


@dataclass(frozen=True)
class ReferenceValue:
    resource_type: str | None
    id: str | None
    url: str | None = None  # a canonical or external absolute URL


@dataclass(frozen=True)
class UriValue:
    uri: str


@dataclass(frozen=True)
class MissingValue:
    missing: bool


@dataclass(frozen=True)
class CompositeValue:
    parts: tuple[Any, ...]
    kinds: tuple[str, ...]


# -- criteria and the query ------------------------------------------------------------


@dataclass(frozen=True)
class Criterion:
    """One parameter occurrence: its values are OR'ed; several criteria are AND'ed."""

    code: str
    kind: str
    modifier: str | None
    values: tuple[Any, ...] = ()
    chain: Criterion | None = None  # subject:Patient.name=x: the criterion on what subject points to
    target_types: tuple[str, ...] = ()  # where a chain or a reference may point
    has: Has | None = None


@dataclass(frozen=True)
class Has:
    """``_has:Observation:patient:code=x``: resources that an Observation matching code=x points to."""

    source_type: str
    reference_code: str
    criterion: Criterion


@dataclass(frozen=True)
class Include:
    source_type: str
    code: str | None  # None for *
    target_type: str | None
    iterate: bool
    reverse: bool

    def spelled(self) -> str:
        return f"{self.source_type}:{self.code or '*'}" + (f":{self.target_type}" if self.target_type else "")


@dataclass(frozen=True)
class SortKey:
    code: str
    kind: str
    descending: bool


@dataclass(frozen=True)
class Compartment:
    """``Patient/123/CarePlan``: resources whose ``params`` reference ``Patient/123``."""

    resource_type: str
    id: str
    params: tuple[str, ...]


@dataclass(frozen=True)
class SearchQuery:
    resource_types: tuple[str, ...]
    criteria: tuple[Criterion, ...] = ()
    includes: tuple[Include, ...] = ()
    revincludes: tuple[Include, ...] = ()
    sort: tuple[SortKey, ...] = ()
    count: int = DEFAULT_COUNT
    total: str = DEFAULT_TOTAL
    summary: str | None = None
    snapshot: str | None = None
    offset: int = 0
    used: tuple[tuple[str, str], ...] = ()  # the parameters honoured, for the self link
    ignored: tuple[str, ...] = field(default=())
    compartment: Compartment | None = None


# -- parsing -------------------------------------------------------------------------


def split_values(text: str, separator: str = ",") -> list[str]:
    """Split at unescaped separators and undo ``\\,``, ``\\|``, ``\\$`` and ``\\\\``."""
    parts, current, escaped = [], [], False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    parts.append("".join(current))
    return parts


def _split_unescaped(text: str, separator: str) -> list[str]:
    """Split at unescaped separators, keeping escapes for a later split."""
    parts, start, index = [], 0, 0
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == separator:
            parts.append(text[start:index])
            start = index + 1
        index += 1
    parts.append(text[start:])
    return parts


def _unescape(text: str) -> str:
    return split_values(text, "\x00")[0]


def _common_parameter(code: str, types: Sequence[str]) -> SearchParam | None:
    """The parameter ``code`` of every type in ``types`` (same kind everywhere), else None."""
    found = [parameters_for(t).get(code) for t in types]
    if not found or any(p is None for p in found):
        return None
    kinds = {p.type for p in found if p is not None}
    return found[0] if len(kinds) == 1 else None


def parse_value(
    kind: str,
    modifier: str | None,
    text: str,
    param: SearchParam | None = None,
    value_sets: ValueSetResolver = expand,
) -> Any:
    """One value of a parameter of ``kind``."""
    if modifier == "missing":
        if text not in ("true", "false"):
            raise Invalid(f":missing takes true or false, not '{text}'")
        return MissingValue(text == "true")
    if not text:
        raise Invalid("Search values must not be empty")
    if kind == "token":
        return _token_value(modifier, text, value_sets)
    if kind == "string":
        return StringValue(normalize_text(_unescape(text)), _unescape(text))
    if kind in PREFIXED_KINDS:
        return _prefixed_value(kind, text)
    if kind == "reference":
        return _reference_value(modifier, text)
    if kind == "uri":
        return UriValue(_unescape(text))
    if kind == "composite":
        assert param is not None
        return _composite_value(param, text)
    raise Invalid(f"Parameters of type {kind} are not searchable")


def _token_value(modifier: str | None, text: str, value_sets: ValueSetResolver = expand) -> Any:
    if modifier == "text":
        return TextValue(normalize_text(_unescape(text)))
    if modifier in ("in", "not-in"):
        codes = value_sets(_unescape(text).split("|", 1)[0])
        if codes is None:
            raise Invalid(f"The ValueSet '{text}' is not known to this server or cannot be expanded")
        return CodeSetValue(_unescape(text), codes)
    parts = _split_unescaped(text, "|")
    if modifier == "of-type":
        if len(parts) != 3 or not all(parts):
            raise Invalid(f":of-type takes system|code|value, not '{text}'")
        return OfTypeValue(*(_unescape(p) for p in parts))
    if len(parts) == 1:
        return TokenValue(None, _unescape(parts[0]), any_system=True)
    if len(parts) == 2:
        system, code = (_unescape(p) or None for p in parts)
        if system is None and code is None:
            raise Invalid("A token needs a system or a code")
        return TokenValue(system, code, any_system=False)
    raise Invalid(f"'{text}' is not a token (system|code)")


def _prefixed_value(kind: str, text: str) -> PrefixedValue:
    prefix, rest = split_prefix(text)
    if kind == "date":
        return PrefixedValue(prefix, date_range(rest))
    parts = _split_unescaped(rest, "|")
    if kind == "number" and len(parts) > 1:
        raise Invalid(f"'{text}' is not a number")
    if len(parts) not in (1, 3):
        raise Invalid(f"'{text}' is not a quantity (number|system|code)")
    value = decimal_value(parts[0])
    system = _unescape(parts[1]) or None if len(parts) == 3 else None
    code = _unescape(parts[2]) or None if len(parts) == 3 else None
    return PrefixedValue(prefix, number_range(value), value, system, code)


def _reference_value(modifier: str | None, text: str) -> Any:
    if modifier == "identifier":
        return _token_value(None, text)
    text = _unescape(text)
    if "://" in text or text.startswith("urn:"):
        url = text.split("|")[0]  # a canonical's |version does not take part
        pieces = url.split("/")
        if len(pieces) >= 4 and pieces[-2] == "_history":  # nor a reference's version
            pieces = pieces[:-2]
            url = "/".join(pieces)
        if len(pieces) >= 2 and pieces[-2] in resource_types():
            return ReferenceValue(pieces[-2], pieces[-1], url=url)
        return ReferenceValue(None, None, url=url)
    pieces = text.split("/")
    if len(pieces) == 1:
        return ReferenceValue(modifier, pieces[0])
    if len(pieces) == 2 and pieces[0] in resource_types():
        if modifier and modifier != pieces[0]:
            raise Invalid(f"'{text}' is not a {modifier}")
        return ReferenceValue(pieces[0], pieces[1])
    if len(pieces) == 4 and pieces[0] in resource_types() and pieces[2] == "_history":
        return ReferenceValue(pieces[0], pieces[1])
    raise Invalid(f"'{text}' is not a reference ([type]/[id], [id] or a URL)")


def _composite_value(param: SearchParam, text: str) -> CompositeValue:
    parts = _split_unescaped(text, "$")
    if len(parts) != len(param.components):
        raise Invalid(f"{param.code} takes {len(param.components)} values joined by $, not '{text}'")
    values, kinds = [], []
    for (url, _), part in zip(param.components, parts, strict=True):
        component = component_parameter(url, param.resource_type)
        if component is None:
            raise Invalid(f"The composite {param.code} cannot be searched")
        values.append(parse_value(component.type, None, part, component))
        kinds.append(component.type)
    return CompositeValue(tuple(values), tuple(kinds))


def _resolve_parameter(code: str, types: Sequence[str]) -> SearchParam:
    param = _common_parameter(code, types)
    if param is None:
        raise UnknownParameter(code, f"Unknown search parameter '{code}' for {', '.join(types)}")
    return param


class UnknownParameter(Invalid):
    """A parameter the server does not know: lenient handling may ignore it."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def parse_criterion(name: str, text: str, types: Sequence[str], value_sets: ValueSetResolver = expand) -> Criterion:
    """One ``name=value`` pair (name may carry a modifier and a chain)."""
    if name.startswith("_has:"):
        return _parse_has(name, text, types, value_sets)
    head, dot, rest = name.partition(".")
    code, colon, modifier_text = head.partition(":")
    modifier = modifier_text if colon else None
    param = _resolve_parameter(code, types)
    if dot:
        return _parse_chain(param, modifier, rest, text, value_sets)
    kind = param.type
    if modifier is not None and modifier not in MODIFIERS.get(kind, ()):
        if not (kind == "reference" and modifier in resource_types()):
            raise Invalid(f"Unknown modifier ':{modifier}' for the {kind} parameter '{code}'")
        if param.targets and modifier not in param.targets:
            raise Invalid(f"'{code}' cannot point to {modifier}; it points to {', '.join(param.targets)}")
    raw_values = [text] if modifier == "missing" else _split_unescaped(text, ",")
    values = tuple(parse_value(kind, modifier, raw, param, value_sets) for raw in raw_values)
    targets = param.targets
    if kind == "reference" and modifier in resource_types():
        targets = (modifier,)
    return Criterion(code, kind, modifier, values, target_types=tuple(targets))


def _parse_chain(
    param: SearchParam, modifier: str | None, rest: str, text: str, value_sets: ValueSetResolver
) -> Criterion:
    if param.type != "reference":
        raise Invalid(f"Only reference parameters can be chained; '{param.code}' is a {param.type}")
    if modifier is not None and modifier not in resource_types():
        raise Invalid(f"A chain needs a resource type as modifier, not ':{modifier}'")
    candidates = (modifier,) if modifier else param.targets or tuple(sorted(resource_types()))
    next_code = rest.partition(".")[0].partition(":")[0]
    targets = tuple(t for t in candidates if next_code in parameters_for(t) or next_code == "_has")
    if not targets:
        raise UnknownParameter(
            next_code, f"None of the types '{param.code}' points to has a search parameter '{next_code}'"
        )
    if len(targets) > 1:
        kinds = {parameters_for(t)[next_code].type for t in targets if next_code in parameters_for(t)}
        if len(kinds) > 1:
            raise Invalid(f"The chain '{param.code}.{rest}' is ambiguous; name the type (:{targets[0]})")
    chained = parse_criterion(rest, text, targets, value_sets)
    return Criterion(param.code, "reference", None, (), chain=chained, target_types=targets)


def _parse_has(name: str, text: str, types: Sequence[str], value_sets: ValueSetResolver) -> Criterion:
    pieces = name.split(":", 3)
    if len(pieces) != 4 or not all(pieces):
        raise Invalid(f"'{name}' is not _has:[type]:[reference parameter]:[parameter]")
    _, source_type, reference_code, rest = pieces
    if source_type not in resource_types():
        raise Invalid(f"Unknown resource type '{source_type}' in {name}")
    reference = parameters_for(source_type).get(reference_code)
    if reference is None or reference.type != "reference":
        raise Invalid(f"'{reference_code}' is not a reference parameter of {source_type}")
    if reference.targets and not set(types) & set(reference.targets):
        raise Invalid(f"{source_type}.{reference_code} never points to {', '.join(types)}")
    criterion = parse_criterion(rest, text, (source_type,), value_sets)
    return Criterion("_has", "has", None, (), has=Has(source_type, reference_code, criterion))


def _parse_include(text: str, types: Sequence[str], reverse: bool, iterate: bool) -> Include:
    pieces = text.split(":")
    if text == "*":
        # _include=*: every reference of the matches; _revinclude=*: every resource referencing them.
        source = types[0] if len(types) == 1 and not reverse else "*"
        return Include(source, None, None, iterate, reverse)
    if len(pieces) not in (2, 3) or pieces[0] not in resource_types():
        raise Invalid(f"'{text}' is not a valid include ([type]:[parameter] or [type]:[parameter]:[target])")
    source_type, code = pieces[0], pieces[1]
    target = pieces[2] if len(pieces) == 3 else None
    if code != "*":
        param = parameters_for(source_type).get(code)
        if param is None or param.type != "reference":
            raise Invalid(f"'{code}' is not a reference parameter of {source_type}")
        if target is not None and (target not in resource_types() or (param.targets and target not in param.targets)):
            raise Invalid(f"'{code}' of {source_type} cannot point to {target}")
    if not reverse and not iterate and source_type not in types:
        raise Invalid(f"_include={text} must start from the searched type ({', '.join(types)}) or use :iterate")
    return Include(source_type, None if code == "*" else code, target, iterate, reverse)


def _parse_sort(text: str, types: Sequence[str]) -> tuple[SortKey, ...]:
    keys = []
    for part in text.split(","):
        descending = part.startswith("-")
        code = part[1:] if descending else part
        param = _common_parameter(code, types)
        if param is None or param.type == "composite":
            raise Invalid(f"Unknown _sort parameter '{code}'")
        keys.append(SortKey(code, param.type, descending))
    return tuple(keys)


def _count(text: str) -> int:
    return natural_number("_count", text, MAX_COUNT)


def parse_search(
    types: Sequence[str],
    params: Iterable[tuple[str, str]],
    lenient: bool = False,
    extra_result_parameters: Iterable[str] = (),
    value_sets: ValueSetResolver = expand,
) -> SearchQuery:
    """Parse a search on ``types`` (one type, or several for a system search).

    Every error names the parameter it is about. With ``lenient``, parameters
    the server does not know are set aside in ``ignored`` (and left out of
    ``used``, the self link); malformed values and unknown modifiers are still
    errors.
    """
    criteria: list[Criterion] = []
    includes: list[Include] = []
    revincludes: list[Include] = []
    used: list[tuple[str, str]] = []
    ignored: list[str] = []
    options: dict[str, Any] = {}
    for name, text in params:
        if name in FORMAT_PARAMETERS or name in extra_result_parameters:
            continue
        try:
            if name in RESULT_PARAMETERS or name.startswith(("_include", "_revinclude")):
                spelled = _parse_result_parameter(name, text, types, options, includes, revincludes)
                if spelled is not None:
                    used.append((name, spelled))
                continue
            criteria.append(parse_criterion(name, text, types, value_sets))
        except UnknownParameter:
            if not lenient:
                raise
            ignored.append(name)
            continue
        except Invalid as error:
            raise _naming(error, name) from None
        used.append((name, text))
    if "offset" in options and "snapshot" not in options:
        raise Invalid("_offset is only valid with _snapshot: follow the links of a searchset Bundle to page")
    return SearchQuery(
        resource_types=tuple(types),
        criteria=tuple(criteria),
        includes=tuple(includes),
        revincludes=tuple(revincludes),
        used=tuple(used),
        ignored=tuple(ignored),
        **options,
    )


def _naming(error: Invalid, name: str) -> Invalid:
    """``error`` with the parameter's name in front, unless it names it already."""
    if f"'{name}'" in error.message or error.message.startswith(name):
        return error
    return Invalid(f"Search parameter '{name}': {error.message}")


def _parse_result_parameter(
    name: str,
    text: str,
    types: Sequence[str],
    options: dict[str, Any],
    includes: list[Include],
    revincludes: list[Include],
) -> str | None:
    """Record one result parameter; return its value as the self link shows it (None: not shown)."""
    if name.startswith(("_include", "_revinclude")):
        base, _, modifier = name.partition(":")
        if base not in ("_include", "_revinclude") or modifier not in ("", "iterate", "recurse"):
            raise Invalid(f"Unknown parameter '{name}'")
        reverse = base == "_revinclude"
        (revincludes if reverse else includes).append(_parse_include(text, types, reverse, bool(modifier)))
        return text
    if SINGLE_RESULT_PARAMETERS.get(name) in options:
        raise Invalid(f"'{name}' may be given only once")
    if name == "_sort":
        options["sort"] = _parse_sort(text, types)
    elif name == "_count":
        options["count"] = _count(text)
        return str(options["count"])  # as capped
    elif name == "_total":
        if text not in TOTAL_MODES:
            raise Invalid(f"_total must be one of {', '.join(TOTAL_MODES)}, not '{text}'")
        options["total"] = text
    elif name == "_summary":
        if text not in ("true", "text", "data", "count", "false"):
            raise Invalid(f"_summary must be true, text, data, count or false, not '{text}'")
        options["summary"] = text
    elif name == "_snapshot":
        options["snapshot"] = text
        return None
    elif name == "_offset":
        options["offset"] = natural_number("_offset", text)
        return None
    return text
