"""The FHIRPath functions the native compiler knows, as a table of factories.

A factory receives the parameter nodes of one call and the compiler, and
returns an invocation ``(input, this, env) -> collection``. Lambda parameters
(``where``, ``select``, ``all``, ``exists``, ``iif``...) are evaluated per
item; value parameters relative to ``$this`` of the call. A function or arity
missing here makes the compiler raise ``Unsupported`` and the expression go to
fhirpathpy instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from fhir_ccm.validation.profiles.navigation import (
    child_items,
    descendant_items,
    is_type,
    make_item,
    resource_item,
    type_specifier,
)
from fhir_ccm.validation.profiles.values import (
    FALSE,
    PRIMITIVE_TYPES,
    TRUE,
    EvaluationError,
    Item,
    boolean,
    equal,
    literal,
    singleton,
    to_boolean,
    to_decimal,
    to_string,
)

if TYPE_CHECKING:
    from fhir_ccm.validation.profiles.fhirpath import Env

Fn = Callable[[list[Item], "Env"], list[Item]]
Invocation = Callable[[list[Item], list[Item], "Env"], list[Item]]
Compiler = Callable[[dict[str, Any]], Fn]
Factory = Callable[[list[dict[str, Any]], Compiler], Invocation]


class Unsupported(Exception):
    """The native compiler does not implement this construct."""


FUNCTIONS: dict[str, tuple[frozenset[int], Factory]] = {}


def function(name: str, *arities: int) -> Callable[[Factory], Factory]:
    def register(factory: Factory) -> Factory:
        FUNCTIONS[name] = (frozenset(arities), factory)
        return factory

    return register


def contains_item(collection: list[Item], item: Item) -> bool:
    return any(equal(item, other) is True for other in collection)


def distinct(items: list[Item]) -> list[Item]:
    out: list[Item] = []
    for item in items:
        if not contains_item(out, item):
            out.append(item)
    return out


def _value_param(param: Fn, this: list[Item], env: Env) -> Any:
    item = singleton(param(this, env))
    return None if item is None else item[0]


def _string_input(input: list[Item]) -> str | None:
    item = singleton(input)
    if item is None:
        return None
    if not isinstance(item[0], str):
        raise EvaluationError(f"a string was expected, found {item[0]!r}")
    return item[0]


def _type_param(params: list[dict[str, Any]]) -> str:
    name = type_specifier(params[0].get("text") or "")
    if name is None:
        raise Unsupported(f"type {params[0].get('text')!r}")
    return name


# --------------------------------------------------------------------------- existence


@function("empty", 0)
def _empty(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    return lambda input, this, env: [FALSE if input else TRUE]


@function("exists", 0, 1)
def _exists(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    if not params:
        return lambda input, this, env: [TRUE if input else FALSE]
    criteria = compile(params[0])
    return lambda input, this, env: [boolean(any(to_boolean(criteria([i], env)) for i in input))]


@function("all", 1)
def _all(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    criteria = compile(params[0])
    return lambda input, this, env: [boolean(all(to_boolean(criteria([i], env)) for i in input))]


def _all_values(test: Callable[[list[Any]], bool]) -> Factory:
    def factory(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
        return lambda input, this, env: [boolean(test([item[0] for item in input]))]

    return factory


function("allTrue", 0)(_all_values(lambda values: all(value is True for value in values)))
function("anyTrue", 0)(_all_values(lambda values: any(value is True for value in values)))
function("allFalse", 0)(_all_values(lambda values: all(value is False for value in values)))
function("anyFalse", 0)(_all_values(lambda values: any(value is False for value in values)))


@function("not", 0)
def _not(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    def invoke(input: list[Item], this: list[Item], env: Env) -> list[Item]:
        value = to_boolean(input)
        return [] if value is None else [boolean(not value)]

    return invoke


@function("count", 0)
def _count(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    return lambda input, this, env: [(len(input), "System.Integer", None)]


@function("distinct", 0)
def _distinct(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    return lambda input, this, env: distinct(input)


@function("isDistinct", 0)
def _is_distinct(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    return lambda input, this, env: [boolean(len(distinct(input)) == len(input))]


@function("subsetOf", 1)
def _subset_of(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    other = compile(params[0])

    def invoke(input: list[Item], this: list[Item], env: Env) -> list[Item]:
        others = other(this, env)
        return [boolean(all(contains_item(others, item) for item in input))]

    return invoke


@function("supersetOf", 1)
def _superset_of(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    other = compile(params[0])

    def invoke(input: list[Item], this: list[Item], env: Env) -> list[Item]:
        return [boolean(all(contains_item(input, item) for item in other(this, env)))]

    return invoke


# --------------------------------------------------------------------------- filtering and projection


@function("where", 1)
def _where(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    criteria = compile(params[0])
    return lambda input, this, env: [item for item in input if to_boolean(criteria([item], env))]


@function("select", 1)
def _select(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    projection = compile(params[0])
    return lambda input, this, env: [out for item in input for out in projection([item], env)]


@function("repeat", 1)
def _repeat(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    projection = compile(params[0])

    def invoke(input: list[Item], this: list[Item], env: Env) -> list[Item]:
        out: list[Item] = []
        pending = list(input)
        while pending:
            item = pending.pop(0)
            for found in projection([item], env):
                if not contains_item(out, found):
                    out.append(found)
                    pending.append(found)
        return out

    return invoke


@function("ofType", 1)
def _of_type(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    name = _type_param(params)
    return lambda input, this, env: [item for item in input if is_type(item, name)]


@function("as", 1)
def _as(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    return _of_type(params, compile)


@function("is", 1)
def _is(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    name = _type_param(params)

    def invoke(input: list[Item], this: list[Item], env: Env) -> list[Item]:
        item = singleton(input)
        return [] if item is None else [boolean(is_type(item, name))]

    return invoke


@function("extension", 1)
def _extension(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    url_param = compile(params[0])

    def invoke(input: list[Item], this: list[Item], env: Env) -> list[Item]:
        url = _value_param(url_param, this, env)
        out: list[Item] = []
        for value, _, _ in input:
            if isinstance(value, dict):
                for extension in value.get("extension") or ():
                    if isinstance(extension, dict) and extension.get("url") == url:
                        out.append((extension, "Extension", "Extension"))
        return out

    return invoke


@function("children", 0)
def _children(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    return lambda input, this, env: [child for item in input for child in child_items(item)]


@function("descendants", 0)
def _descendants(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    return lambda input, this, env: descendant_items(input)


# --------------------------------------------------------------------------- subsetting and combining


@function("first", 0)
def _first(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    return lambda input, this, env: input[:1]


@function("last", 0)
def _last(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    return lambda input, this, env: input[-1:]


@function("tail", 0)
def _tail(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    return lambda input, this, env: input[1:]


@function("single", 0)
def _single(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    def invoke(input: list[Item], this: list[Item], env: Env) -> list[Item]:
        item = singleton(input)
        return [] if item is None else [item]

    return invoke


@function("skip", 1)
def _skip(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    count = compile(params[0])
    return lambda input, this, env: input[max(int(_value_param(count, this, env) or 0), 0) :]


@function("take", 1)
def _take(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    count = compile(params[0])
    return lambda input, this, env: input[: max(int(_value_param(count, this, env) or 0), 0)]


@function("intersect", 1)
def _intersect(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    other = compile(params[0])

    def invoke(input: list[Item], this: list[Item], env: Env) -> list[Item]:
        others = other(this, env)
        return distinct([item for item in input if contains_item(others, item)])

    return invoke


@function("exclude", 1)
def _exclude(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    other = compile(params[0])

    def invoke(input: list[Item], this: list[Item], env: Env) -> list[Item]:
        others = other(this, env)
        return [item for item in input if not contains_item(others, item)]

    return invoke


@function("union", 1)
def _union(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    other = compile(params[0])
    return lambda input, this, env: distinct(input + other(this, env))


@function("combine", 1)
def _combine(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    other = compile(params[0])
    return lambda input, this, env: input + other(this, env)


@function("iif", 2, 3)
def _iif(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    criterion, then = compile(params[0]), compile(params[1])
    otherwise = compile(params[2]) if len(params) == 3 else None

    def invoke(input: list[Item], this: list[Item], env: Env) -> list[Item]:
        if to_boolean(criterion(input, env)):
            return then(input, env)
        return otherwise(input, env) if otherwise is not None else []

    return invoke


@function("trace", 1, 2)
def _trace(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    return lambda input, this, env: input


# --------------------------------------------------------------------------- strings


def _string_function(apply: Callable[[str, list[Any]], Any]) -> Factory:
    """A function of one string input and value parameters; empty input gives empty."""

    def factory(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
        compiled = [compile(param) for param in params]

        def invoke(input: list[Item], this: list[Item], env: Env) -> list[Item]:
            text = _string_input(input)
            if text is None:
                return []
            args = [_value_param(param, this, env) for param in compiled]
            if any(arg is None for arg in args):
                return []
            result = apply(text, args)
            if result is None:
                return []
            if isinstance(result, list):
                return [literal(value) for value in result]
            return [literal(result)]

        return invoke

    return factory


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.DOTALL)


def _substring(text: str, args: list[Any]) -> str | None:
    start = int(args[0])
    if start < 0 or start >= len(text):
        return None
    return text[start:] if len(args) == 1 else text[start : start + max(int(args[1]), 0)]


function("startsWith", 1)(_string_function(lambda text, args: text.startswith(args[0])))
function("endsWith", 1)(_string_function(lambda text, args: text.endswith(args[0])))
function("contains", 1)(_string_function(lambda text, args: args[0] in text))
function("matches", 1)(_string_function(lambda text, args: _regex(args[0]).search(text) is not None))
function("replaceMatches", 2)(_string_function(lambda text, args: _regex(args[0]).sub(args[1], text)))
function("indexOf", 1)(_string_function(lambda text, args: text.find(args[0])))
function("substring", 1, 2)(_string_function(_substring))
function("upper", 0)(_string_function(lambda text, args: text.upper()))
function("lower", 0)(_string_function(lambda text, args: text.lower()))
function("trim", 0)(_string_function(lambda text, args: text.strip()))
function("replace", 2)(_string_function(lambda text, args: text.replace(args[0], args[1])))
function("length", 0)(_string_function(lambda text, args: len(text)))
function("toChars", 0)(_string_function(lambda text, args: list(text)))
function("split", 1)(_string_function(lambda text, args: text.split(args[0])))


# --------------------------------------------------------------------------- conversion


def _conversion(convert: Callable[[Item], Any], check: bool) -> Factory:
    def factory(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
        def invoke(input: list[Item], this: list[Item], env: Env) -> list[Item]:
            item = singleton(input)
            if item is None:
                return []
            value = convert(item)
            if check:
                return [boolean(value is not None)]
            return [] if value is None else [literal(value)]

        return invoke

    return factory


def _integer(item: Item) -> int | None:
    value = item[0]
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value):
        return int(value)
    return None


def _decimal(item: Item) -> Decimal | None:
    return None if isinstance(item[0], dict) else to_decimal(item[0])


def _boolean(item: Item) -> bool | None:
    value = item[0]
    if isinstance(value, bool):
        return value
    text = str(value).lower() if isinstance(value, (str, int, Decimal)) else None
    if text in ("true", "t", "yes", "y", "1", "1.0"):
        return True
    if text in ("false", "f", "no", "n", "0", "0.0"):
        return False
    return None


for _name, _convert in (("Integer", _integer), ("Decimal", _decimal), ("String", to_string), ("Boolean", _boolean)):
    function("to" + _name, 0)(_conversion(_convert, check=False))
    function("convertsTo" + _name, 0)(_conversion(_convert, check=True))


# --------------------------------------------------------------------------- math and time


def _math(apply: Callable[[Any], Any]) -> Factory:
    def factory(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
        def invoke(input: list[Item], this: list[Item], env: Env) -> list[Item]:
            item = singleton(input)
            if item is None:
                return []
            number = to_decimal(item[0]) if not isinstance(item[0], int) else item[0]
            if number is None:
                raise EvaluationError(f"a number was expected, found {item[0]!r}")
            return [literal(apply(number))]

        return invoke

    return factory


function("abs", 0)(_math(abs))
function("ceiling", 0)(_math(lambda number: int(Decimal(number).to_integral_value(rounding="ROUND_CEILING"))))
function("floor", 0)(_math(lambda number: int(Decimal(number).to_integral_value(rounding="ROUND_FLOOR"))))
function("truncate", 0)(_math(lambda number: int(number)))


@function("now", 0)
def _now(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    return lambda input, this, env: [(datetime.now(UTC).isoformat(timespec="milliseconds"), "System.DateTime", None)]


@function("today", 0)
def _today(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    return lambda input, this, env: [(datetime.now(UTC).date().isoformat(), "System.Date", None)]


# --------------------------------------------------------------------------- FHIR additions (fhirpath.html#functions)


@function("hasValue", 0)
def _has_value(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    def invoke(input: list[Item], this: list[Item], env: Env) -> list[Item]:
        return [boolean(len(input) == 1 and input[0][1] in PRIMITIVE_TYPES and input[0][0] is not None)]

    return invoke


@function("resolve", 0)
def _resolve(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    def invoke(input: list[Item], this: list[Item], env: Env) -> list[Item]:
        out = []
        for value, _, _ in input:
            reference = value.get("reference") if isinstance(value, dict) else value
            if isinstance(reference, str):
                resolved = env.services.resolve(reference, env)
                if resolved is not None:
                    out.append(resource_item(resolved))
        return out

    return invoke


@function("conformsTo", 1)
def _conforms_to(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    url_param = compile(params[0])

    def invoke(input: list[Item], this: list[Item], env: Env) -> list[Item]:
        item = singleton(input)
        url = _value_param(url_param, this, env)
        if item is None or not isinstance(item[0], dict) or not isinstance(url, str):
            return []
        result = env.services.conforms_to(item[0], url)
        return [] if result is None else [boolean(result)]

    return invoke


@function("memberOf", 1)
def _member_of(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    url_param = compile(params[0])

    def invoke(input: list[Item], this: list[Item], env: Env) -> list[Item]:
        item = singleton(input)
        url = _value_param(url_param, this, env)
        if item is None or not isinstance(url, str):
            return []
        result = env.services.member_of(item, url)
        return [] if result is None else [boolean(result)]

    return invoke


@function("htmlChecks", 0)
def _html_checks(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    def invoke(input: list[Item], this: list[Item], env: Env) -> list[Item]:
        item = singleton(input)
        if item is None or not isinstance(item[0], str):
            return []
        return [boolean(env.services.html_checks(item[0]))]

    return invoke


@function("getValue", 0)
def _get_value(params: list[dict[str, Any]], compile: Compiler) -> Invocation:
    def invoke(input: list[Item], this: list[Item], env: Env) -> list[Item]:
        item = singleton(input)
        if item is None or item[1] not in PRIMITIVE_TYPES:
            return []
        return [make_item(item[0], item[1], None)]

    return invoke
