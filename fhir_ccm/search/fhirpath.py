"""Typed evaluation of SearchParameter expressions (FHIRPath) against a resource.

``evaluate(expression, resource)`` gives ``(value, fhir_type)`` pairs: the JSON
value (a dict for complex types; str, Decimal, int or bool for primitives) and
the FHIR type code it has there (``"Period"``, ``"dateTime"``, ``"code"``...).

Two paths give the same values:

* the *hand path* compiles the expression shapes the R4 SearchParameters use
  (dotted paths with choice elements, ``as``/``ofType``, ``where(resolve() is
  T)``, ``where(child='x')``, ``where(hasExtension('u'))``, ``extension('u')``,
  ``[n]``, ``%resource``, unions and ``X.exists() and X != false``) once into a
  few steps whose element lookups were resolved against the StructureDefinitions
  at compile time, so evaluating is a handful of dict lookups;
* anything else goes to *fhirpathpy* with the R4 model, compiled once per
  expression, with ``resolve()`` supplied as a user function returning a
  minimal ``{"resourceType": T}`` parsed from the reference. Its values are
  typed from the model's node types, the element definitions and, failing
  those, the shape of the value.

Internally values travel as *items* ``(value, type, node, property)``: ``node``
names where the value's children are described (``elements.properties``) and
``property`` is the element it was read from (for bindings); composites use
them to evaluate component expressions relative to an element.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from functools import cache, lru_cache
from typing import Any

from fhir_ccm.definitions import resource_types, structure_definition
from fhir_ccm.definitions.elements import Property, known_types, properties
from fhir_ccm.search.parameters import COMMON_BASES, split_union

Item = tuple[Any, str, str | None, Property | None]  # value, FHIR type, node of its children, element
_Start = Callable[[dict[str, Any], Item | None], list[Item]]
_Step = Callable[[list[Item], dict[str, Any]], list[Item]]
_Post = Callable[[list[Item]], list[Item]]
_Position = tuple[str, str | None]  # compile-time (type, node)

# FHIRPath System types as the FHIR primitive a search expression means by them.
SYSTEM_TYPES = {
    "Boolean": "boolean",
    "String": "string",
    "Integer": "integer",
    "Decimal": "decimal",
    "Date": "date",
    "DateTime": "dateTime",
    "Time": "time",
}


class Unsupported(Exception):
    """The hand path cannot compile this expression; the fallback evaluates it."""


# --------------------------------------------------------------------------- public API


def evaluate(expression: str, resource: dict[str, Any]) -> list[tuple[Any, str]]:
    """The values of ``expression`` on ``resource`` with their FHIR types."""
    return [(item[0], item[1]) for item in evaluate_items(expression, resource)]


def uses_hand_path(expression: str, context: str | None = None, resource_type: str | None = None) -> bool:
    """Whether ``expression`` is evaluated without fhirpathpy.

    ``context`` is the node a relative expression (a composite component) is
    evaluated at, e.g. ``"Observation.component"``.
    """
    return _hand(expression, context, resource_type if "%" in expression else None) is not None


def result_nodes(expression: str) -> frozenset[str] | None:
    """The nodes the hand path knows ``expression``'s values to have (``None``: not hand-compiled)."""
    compiled = _hand(expression, None, None)
    return None if compiled is None else compiled.nodes


def compiled(expression: str, resource_type: str) -> Compiled | None:
    """``expression`` hand-compiled for resources of ``resource_type``; None when it is evaluated otherwise."""
    return _hand(expression, None, resource_type if "%" in expression else None)


def evaluate_items(expression: str, resource: dict[str, Any], context: Item | None = None) -> list[Item]:
    """The items of ``expression`` on ``resource``, relative to ``context`` when given."""
    resource_type = resource.get("resourceType")
    node = context[2] if context is not None else None
    compiled = _hand(expression, node, resource_type if "%" in expression else None)
    if compiled is not None:
        return compiled(resource, context)
    return _evaluate_fallback(expression, resource, context)


# --------------------------------------------------------------------------- references


_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def parse_reference(reference: str) -> tuple[str | None, str | None, str | None, str | None] | None:
    """``(type, id, version, url)`` of a Reference.reference; ``None`` for ``#contained`` or nonsense.

    ``Patient/1`` and ``Patient/1/_history/2`` are local; an absolute URL keeps
    itself (without ``/_history/n``) as ``url`` and, when it ends in
    ``Type/id``, gives those too; ``urn:uuid:...`` and other URIs give a url only.
    """
    if not reference or reference.startswith("#"):
        return None
    absolute = ":" in reference
    parts = reference.rstrip("/").split("/") if absolute else reference.split("/")
    version = None
    if len(parts) >= 4 and parts[-2] == "_history":
        version = parts[-1]
        parts = parts[:-2]
    if len(parts) >= 2 and parts[-2] in resource_types() and _ID.fullmatch(parts[-1]):
        if absolute:
            return parts[-2], parts[-1], version, "/".join(parts)
        return (parts[-2], parts[-1], version, None) if len(parts) == 2 else None
    return (None, None, None, reference) if absolute else None


def reference_type(reference: Any) -> str | None:
    """The resource type a Reference points to, from its ``reference`` or else its ``type``."""
    if not isinstance(reference, dict):
        return None
    text = reference.get("reference")
    if isinstance(text, str):
        parsed = parse_reference(text)
        if parsed is not None and parsed[0] is not None:
            return parsed[0]
    declared = reference.get("type")
    if isinstance(declared, str):
        name = declared.rsplit("/", 1)[-1]  # Reference.type may be a full StructureDefinition url
        return name if name in resource_types() else None
    return None


# --------------------------------------------------------------------------- types


@cache
def is_a(type_name: str, ancestor: str) -> bool:
    """``type_name`` is ``ancestor`` or specializes/constrains it (Age is a Quantity, code a string)."""
    seen = 0
    current: str | None = type_name
    while current and seen < 20:
        if current == ancestor:
            return True
        definition = structure_definition(current)
        base = definition.get("baseDefinition") if definition else None
        current = base.rsplit("/", 1)[-1] if base else None
        seen += 1
    return False


_Child = tuple[str, str, str | None, Property]  # JSON name, type, node, property


@cache
def _children(node: str) -> dict[str, tuple[_Child, ...]]:
    """The children of ``node`` by FHIRPath name; a choice name lists every ``name[x]`` type."""
    result: dict[str, list[_Child]] = {}
    for prop in properties(node).values():
        name = prop.path.rsplit(".", 1)[-1]
        name = name[:-3] if prop.is_choice else prop.name
        result.setdefault(name, []).append((prop.name, prop.type_code, prop.node, prop))
    return {name: tuple(children) for name, children in result.items()}


def _position_of_node(node: str) -> _Position:
    return ("BackboneElement" if "." in node else node, node)


# --------------------------------------------------------------------------- the hand path


_TOKEN = re.compile(r"\s*(?:('(?:[^'\\]|\\.)*')|(\d+(?:\.\d+)?)|(%?[A-Za-z_][A-Za-z0-9_]*)|(!=|[.()\[\]=,]))")
_DECEASED = re.compile(r"^(?P<a>.+)\.exists\(\)\s+and\s+(?P<b>.+?)\s*!=\s*false$", re.S)
_ESCAPES = {"'": "'", '"': '"', "\\": "\\", "/": "/", "n": "\n", "r": "\r", "t": "\t", "f": "\f", "`": "`"}


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    position, end = 0, len(text.rstrip())
    while position < end:
        match = _TOKEN.match(text, position)
        if match is None:
            raise Unsupported(f"unexpected text at {text[position:]!r}")
        tokens.append(match.group(match.lastindex or 0))
        position = match.end()
    return tokens


def _string_literal(token: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), token[1:-1])


class _Term:
    """``first_keys``: the JSON names at the top of a resource one of which the term needs (None: unknown)."""

    __slots__ = ("start", "steps", "post", "positions", "first_keys")

    def __init__(
        self,
        start: _Start,
        steps: list[_Step],
        positions: set[_Position],
        post: _Post | None = None,
        first_keys: frozenset[str] | None = None,
    ) -> None:
        self.start, self.steps, self.positions, self.post = start, steps, positions, post
        self.first_keys = first_keys

    def run(self, resource: dict[str, Any], context: Item | None) -> list[Item]:
        items = self.start(resource, context)
        for step in self.steps:
            if not items:
                break
            items = step(items, resource)
        return self.post(items) if self.post is not None else items


class Compiled:
    """A hand-compiled expression: its union terms."""

    __slots__ = ("terms",)

    def __init__(self, terms: Sequence[_Term]) -> None:
        self.terms = tuple(terms)

    @property
    def first_keys(self) -> frozenset[str] | None:
        """The JSON names at the top of a resource one of which must be there for any value (None: unknown).

        Most of a type's search parameters find nothing in a given resource; this lets a caller skip them.
        """
        keys: set[str] = set()
        for term in self.terms:
            if term.first_keys is None:
                return None
            keys |= term.first_keys
        return frozenset(keys)

    @property
    def nodes(self) -> frozenset[str]:
        """The nodes the values can have (known at compile time), for relative expressions on them."""
        return frozenset(node for term in self.terms for _type, node in term.positions if node is not None)

    def __call__(self, resource: dict[str, Any], context: Item | None = None) -> list[Item]:
        if len(self.terms) == 1:
            return self.terms[0].run(resource, context)
        results = [term.run(resource, context) for term in self.terms]
        if sum(1 for items in results if items) <= 1:
            return [item for items in results for item in items]
        return _distinct([item for items in results for item in items])


def _value_key(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return (type(value).__name__ == "bool", value)


def _distinct(items: list[Item]) -> list[Item]:
    """FHIRPath union: equal values once, first occurrence kept."""
    seen: set[Any] = set()
    result = []
    for item in items:
        key = _value_key(item[0])
        if key not in seen:
            seen.add(key)
            result.append(item)
    return result


@lru_cache(maxsize=8192)
def _hand(expression: str, context: str | None, resource_type: str | None) -> Compiled | None:
    try:
        return Compiled([_compile_term(term, context, resource_type) for term in split_union(expression)])
    except Unsupported:
        return None


def _compile_term(text: str, context: str | None, resource_type: str | None) -> _Term:
    deceased = _DECEASED.match(text)
    if deceased:
        if deceased.group("a").strip() != deceased.group("b").strip():
            raise Unsupported("exists() and != false over different paths")
        term = _Parser(deceased.group("b"), context, resource_type).term()
        return _Term(term.start, term.steps, {("boolean", None)}, _exists_and_not_false)
    return _Parser(text, context, resource_type).term()


def _exists_and_not_false(items: list[Item]) -> list[Item]:
    """``X.exists() and X != false``: false when X is empty or the single value false."""
    flag = bool(items) and not (len(items) == 1 and items[0][0] is False)
    return [(flag, "boolean", None, None)]


class _Parser:
    """Recursive descent over the FHIRPath subset, compiling as it goes."""

    def __init__(self, text: str, context: str | None, resource_type: str | None) -> None:
        self.tokens = _tokenize(text)
        self.index = 0
        self.context = context
        self.resource_type = resource_type
        self.first_keys: frozenset[str] | None = None  # the JSON names the first child step looks up

    # tokens
    def peek(self, ahead: int = 0) -> str | None:
        index = self.index + ahead
        return self.tokens[index] if index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise Unsupported(f"expected {expected!r}, got {token!r}")
        self.index += 1
        return token

    def identifier(self) -> str:
        token = self.take()
        if not (token[0].isalpha() or token[0] == "_"):
            raise Unsupported(f"expected a name, got {token!r}")
        return token

    def type_name(self) -> str:
        name = self.identifier()
        if self.peek() == "." and name in ("FHIR", "System"):
            self.take(".")
            qualified = self.identifier()
            name = SYSTEM_TYPES.get(qualified, qualified) if name == "System" else qualified
        name = SYSTEM_TYPES.get(name, name)
        if name not in known_types():
            raise Unsupported(f"unknown type {name}")
        return name

    # grammar
    def term(self) -> _Term:
        start, positions, steps = self.expression()
        if self.peek() is not None:
            raise Unsupported(f"unexpected {self.peek()!r}")
        return _Term(start, steps, positions, first_keys=None if start is _start_context else self.first_keys)

    def expression(self) -> tuple[_Start, set[_Position], list[_Step]]:
        start, positions, steps = self.primary()
        positions = self.postfix(positions, steps)
        if self.peek() == "as":
            self.take()
            positions = self.as_type(positions, steps, self.type_name())
        return start, positions, steps

    def primary(self) -> tuple[_Start, set[_Position], list[_Step]]:
        token = self.peek()
        if token == "(":
            self.take()
            result = self.expression()
            self.take(")")
            return result
        if token == "%resource":
            self.take()
            if self.resource_type is None:
                raise Unsupported("%resource without a resource type")
            return _start_resource, {(self.resource_type, self.resource_type)}, []
        name = self.identifier()
        if name in COMMON_BASES:
            return _start_any(name), {("Resource", name)}, []
        if name[0].isupper():
            if name not in resource_types():
                raise Unsupported(f"unknown root {name}")
            return _start_type(name), {(name, name)}, []
        if self.context is None:
            raise Unsupported(f"relative path {name} without a context")
        steps: list[_Step] = []
        positions = self.child({_position_of_node(self.context)}, steps, name)
        return _start_context, positions, steps

    def postfix(self, positions: set[_Position], steps: list[_Step]) -> set[_Position]:
        while True:
            token = self.peek()
            if token == ".":
                self.take()
                name = self.identifier()
                if self.peek() == "(":
                    positions = self.function(positions, steps, name)
                else:
                    positions = self.child(positions, steps, name)
            elif token == "[":
                self.take()
                number = self.take()
                if not number.isdigit():
                    raise Unsupported("non-integer index")
                self.take("]")
                steps.append(_index_step(int(number)))
            else:
                return positions

    def child(self, positions: set[_Position], steps: list[_Step], name: str) -> set[_Position]:
        table: dict[str, tuple[_Child, ...]] = {}
        result: set[_Position] = set()
        for _type, node in positions:
            if node is None:
                raise Unsupported(f"child {name} of a primitive or an abstract resource")
            children = _children(node).get(name)
            if children:
                table[node] = children
                for _json, type_code, child_node, _prop in children:
                    result.add((type_code, None if type_code == "Resource" else child_node))
        if not table:
            raise Unsupported(f"unknown element {name}")
        if not steps:
            self.first_keys = frozenset(child[0] for children in table.values() for child in children)
        steps.append(_child_step(table))
        return result

    def function(self, positions: set[_Position], steps: list[_Step], name: str) -> set[_Position]:
        self.take("(")
        if name in ("as", "ofType"):
            target = self.type_name()
            self.take(")")
            return self.as_type(positions, steps, target)
        if name == "extension":
            url = self.string()
            self.take(")")
            self.complex_only(positions, "extension()")
            steps.append(_extension_step(url))
            return {("Extension", "Extension")}
        if name == "where":
            steps.append(self.condition(positions))
            self.take(")")
            return positions
        raise Unsupported(f"function {name}()")

    def string(self) -> str:
        token = self.take()
        if not token.startswith("'"):
            raise Unsupported("expected a string literal")
        return _string_literal(token)

    def complex_only(self, positions: set[_Position], what: str) -> None:
        if any(node is None for _type, node in positions):
            raise Unsupported(f"{what} on a primitive")

    def as_type(self, positions: set[_Position], steps: list[_Step], target: str) -> set[_Position]:
        steps.append(_as_step(target))
        return {
            (type_code, node) for type_code, node in positions if type_code == "Resource" or is_a(type_code, target)
        }

    def condition(self, positions: set[_Position]) -> _Step:
        token = self.peek()
        if token == "resolve" and self.peek(1) == "(":
            self.take()
            self.take("(")
            self.take(")")
            self.take("is")
            return _resolves_to_step(self.type_name())
        if token == "hasExtension" and self.peek(1) == "(":
            self.take()
            self.take("(")
            url = self.string()
            self.take(")")
            self.complex_only(positions, "hasExtension()")
            return _has_extension_step(url)
        name = self.identifier()
        self.take("=")
        literal = self.literal()
        table: dict[str, tuple[_Child, ...]] = {}
        for _type, node in positions:
            if node is None:
                raise Unsupported("where() on a primitive")
            children = _children(node).get(name)
            if children:
                table[node] = children
        if not table:
            raise Unsupported(f"unknown element {name} in where()")
        return _equals_step(table, literal)

    def literal(self) -> Any:
        token = self.take()
        if token.startswith("'"):
            return _string_literal(token)
        if token in ("true", "false"):
            return token == "true"
        if token[0].isdigit():
            return Decimal(token) if "." in token else int(token)
        raise Unsupported(f"literal {token!r}")


# runtime pieces of the hand path


def _start_type(type_name: str) -> _Start:
    def start(resource: dict[str, Any], context: Item | None) -> list[Item]:
        if resource.get("resourceType") == type_name:
            return [(resource, type_name, type_name, None)]
        return []

    return start


def _start_any(base: str) -> _Start:
    def start(resource: dict[str, Any], context: Item | None) -> list[Item]:
        resource_type = resource.get("resourceType")
        if isinstance(resource_type, str):
            return [(resource, resource_type, base, None)]
        return []

    return start


def _start_resource(resource: dict[str, Any], context: Item | None) -> list[Item]:
    resource_type = resource.get("resourceType")
    return [(resource, resource_type, resource_type, None)] if isinstance(resource_type, str) else []


def _start_context(resource: dict[str, Any], context: Item | None) -> list[Item]:
    return [context] if context is not None else []


def _child_step(table: dict[str, tuple[_Child, ...]]) -> _Step:
    def step(items: list[Item], resource: dict[str, Any]) -> list[Item]:
        out: list[Item] = []
        for value, _type, node, _prop in items:
            if node is None or not isinstance(value, dict):
                continue
            for json_name, type_code, child_node, prop in table.get(node, ()):
                found = value.get(json_name)
                if found is None:
                    continue
                if type_code == "Resource":
                    for each in found if isinstance(found, list) else (found,):
                        if isinstance(each, dict) and isinstance(each.get("resourceType"), str):
                            out.append((each, each["resourceType"], each["resourceType"], prop))
                elif isinstance(found, list):
                    out.extend((each, type_code, child_node, prop) for each in found if each is not None)
                else:
                    out.append((found, type_code, child_node, prop))
        return out

    return step


def _as_step(target: str) -> _Step:
    def step(items: list[Item], resource: dict[str, Any]) -> list[Item]:
        return [item for item in items if is_a(item[1], target)]

    return step


def _index_step(index: int) -> _Step:
    def step(items: list[Item], resource: dict[str, Any]) -> list[Item]:
        return items[index : index + 1]

    return step


def _extension_step(url: str) -> _Step:
    def step(items: list[Item], resource: dict[str, Any]) -> list[Item]:
        out: list[Item] = []
        for value, _type, _node, _prop in items:
            extensions = value.get("extension") if isinstance(value, dict) else None
            if isinstance(extensions, list):
                for extension in extensions:
                    if isinstance(extension, dict) and extension.get("url") == url:
                        out.append((extension, "Extension", "Extension", None))
        return out

    return step


def _resolves_to_step(target: str) -> _Step:
    def step(items: list[Item], resource: dict[str, Any]) -> list[Item]:
        out = []
        for item in items:
            resolved = reference_type(item[0])
            if resolved is not None and is_a(resolved, target):
                out.append(item)
        return out

    return step


def _has_extension_step(url: str) -> _Step:
    def step(items: list[Item], resource: dict[str, Any]) -> list[Item]:
        out = []
        for item in items:
            extensions = item[0].get("extension") if isinstance(item[0], dict) else None
            if isinstance(extensions, list) and any(
                isinstance(extension, dict) and extension.get("url") == url for extension in extensions
            ):
                out.append(item)
        return out

    return step


def _equals_step(table: dict[str, tuple[_Child, ...]], literal: Any) -> _Step:
    def matches(found: Any) -> bool:
        return found == literal and isinstance(found, bool) == isinstance(literal, bool)

    def step(items: list[Item], resource: dict[str, Any]) -> list[Item]:
        out = []
        for item in items:
            value, node = item[0], item[2]
            if node is None or not isinstance(value, dict):
                continue
            for json_name, _type, _node, _prop in table.get(node, ()):
                found = value.get(json_name)
                if isinstance(found, list):
                    hit = len(found) == 1 and matches(found[0])  # FHIRPath '=' on a collection
                else:
                    hit = found is not None and matches(found)
                if hit:
                    out.append(item)
                    break
        return out

    return step


# --------------------------------------------------------------------------- the fhirpathpy fallback


def _resolve(inputs: list[Any]) -> list[Any]:
    from fhirpathpy.engine.nodes import ResourceNode

    out = []
    for reference in inputs:
        resolved = reference_type(reference)
        if resolved is not None:
            out.append(ResourceNode.create_node({"resourceType": resolved}))
    return out


def _has_extension(inputs: list[Any], url: Any) -> list[bool]:
    """FHIR's ``hasExtension(url)``, which fhirpathpy lacks."""
    for value in inputs:
        extensions = value.get("extension") if isinstance(value, dict) else None
        if isinstance(extensions, list) and any(
            isinstance(extension, dict) and extension.get("url") == url for extension in extensions
        ):
            return [True]
    return [False]


_AS_OPERATOR = re.compile(r"(?P<path>.*\S)\s+as\s+(?P<type>[A-Za-z][A-Za-z0-9_.]*)", re.S)
_AS_FUNCTION = re.compile(r"\.as\(")
_SYSTEM_TYPE_ARGUMENT = re.compile(r"\bofType\(\s*(?:System\.)?(" + "|".join(SYSTEM_TYPES) + r")\s*\)")


def _rewrite_term(term: str, resource_type: str | None) -> str:
    """Adapt an R4 search expression term to fhirpathpy.

    ``x as T`` and ``x.as(T)`` become ``x.ofType(T)`` (search expressions use
    ``as`` over collections, where strict FHIRPath and fhirpathpy raise),
    ``System`` type names become the FHIR primitive, and a ``Resource.`` or
    ``DomainResource.`` root becomes the resource's own type.
    """
    if term.startswith("("):
        depth = 0
        for index, char in enumerate(term):
            depth += char == "("
            depth -= char == ")"
            if depth == 0:
                match = _AS_OPERATOR.fullmatch(term[1:index])
                if match:
                    term = f"{match.group('path')}.ofType({match.group('type')}){term[index + 1 :]}"
                break
    else:
        match = _AS_OPERATOR.fullmatch(term)
        if match and "(" not in match.group("path"):
            term = f"{match.group('path')}.ofType({match.group('type')})"
    term = _AS_FUNCTION.sub(".ofType(", term)
    term = _SYSTEM_TYPE_ARGUMENT.sub(lambda m: f"ofType({SYSTEM_TYPES[m.group(1)]})", term)
    if resource_type:
        for base in COMMON_BASES:
            if term.startswith(base + "."):
                term = resource_type + term[len(base) :]
    return term


@lru_cache(maxsize=1024)
def _fallback_terms(expression: str, resource_type: str | None) -> tuple[Callable[..., list[Any]], ...]:
    """fhirpathpy functions for each union term (typed results are lost through ``|``)."""
    import fhirpathpy
    from fhirpathpy.models import models

    functions = {
        "resolve": {"fn": _resolve, "arity": {0: []}},
        "hasExtension": {"fn": _has_extension, "arity": {1: ["String"]}},
    }
    options = {"userInvocationTable": functions, "returnRawData": True}
    return tuple(
        fhirpathpy.compile(_rewrite_term(term, resource_type), model=models["r4"], options=options)
        for term in split_union(expression)
    )


def compiles_with_fhirpathpy(expression: str, resource_type: str | None = None) -> bool:
    try:
        _fallback_terms(expression, resource_type)
    except Exception:
        return False
    return True


def _evaluate_fallback(expression: str, resource: dict[str, Any], context: Item | None = None) -> list[Item]:
    """``evaluate_items`` through fhirpathpy (also used by tests to check the hand path)."""
    from fhirpathpy.engine.nodes import ResourceNode

    resource_type = resource.get("resourceType")
    terms = _fallback_terms(expression, resource_type if isinstance(resource_type, str) else None)
    if context is None:
        data: Any = resource
    else:
        data = ResourceNode.create_node(context[0], context[2] or context[1])
    results: list[list[Item]] = []
    for function in terms:
        try:
            raw = function(data, {"resource": resource, "rootResource": resource})
        except Exception:  # fhirpathpy raising on odd content: no values
            raw = []
        results.append([item for item in (_typed(value) for value in raw) if item is not None])
    if len(results) == 1:
        return results[0]
    combined = [item for items in results for item in items]
    return _distinct(combined) if sum(1 for items in results if items) > 1 else combined


def _typed(value: Any) -> Item | None:
    """Type one fhirpathpy result from its model path, the element definitions or its shape."""
    from fhirpathpy.engine.nodes import FP_Type, ResourceNode

    path = prop_name = None
    if isinstance(value, ResourceNode):
        path, prop_name, value = value.path, value.propName, value.data
    if value is None or isinstance(value, FP_Type):
        return None
    if isinstance(value, dict) and list(value) == ["extension"]:
        return None  # a primitive's extensions without its value
    prop = _property_at(_INDEX.sub("", prop_name), path) if prop_name else None
    if isinstance(value, dict) and isinstance(value.get("resourceType"), str):
        return (value, value["resourceType"], value["resourceType"], prop)
    type_code: str | None = None
    node: str | None = None
    if path and not path.startswith("System.") and path in known_types():
        type_code = path
    elif path and "." in path and properties(path):
        type_code, node = "BackboneElement", path
    elif prop is not None:
        type_code = prop.type_code
        node = prop.node
    if type_code is None:
        type_code = infer_type(value)
    if node is None and isinstance(value, dict):
        node = prop.node if prop is not None and prop.type_code == type_code else type_code
    return (value, type_code, node, prop)


_INDEX = re.compile(r"\[\d+\]")


@lru_cache(maxsize=8192)
def _property_at(element_path: str, type_hint: str | None) -> Property | None:
    """The element a fhirpathpy ``propName`` without indices (``Observation.component.code``) was read from."""
    segments = element_path.split(".")
    node: str | None = segments[0]
    if node not in resource_types():
        return None
    prop: Property | None = None
    for segment in segments[1:]:
        if node is None:
            return None
        children = _children(node).get(segment)
        if not children:
            by_json = properties(node).get(segment)
            children = ((by_json.name, by_json.type_code, by_json.node, by_json),) if by_json else ()
        if not children:
            return None
        chosen = next((child for child in children if child[1] == type_hint), children[0])
        prop, node = chosen[3], chosen[2]
    return prop


_DATE_SHAPE = re.compile(r"\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?")
_CONTACT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})


def infer_type(value: Any) -> str:
    """A FHIR type for a value from its shape alone (when no definition says)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, Decimal | float):
        return "decimal"
    if isinstance(value, str):
        if _DATE_SHAPE.fullmatch(value):
            return "dateTime" if "T" in value or len(value) < 10 else "date"
        return "string"
    if not isinstance(value, dict):
        return "Element"
    keys = value.keys()
    if "url" in keys and any(key.startswith("value") for key in keys):
        return "Extension"
    if "coding" in keys or keys == {"text"}:
        return "CodeableConcept"
    if "reference" in keys or ("identifier" in keys and isinstance(value.get("identifier"), dict)):
        return "Reference"
    if "currency" in keys:
        return "Money"
    if "low" in keys or "high" in keys:
        return "Range"
    if "start" in keys or "end" in keys:
        return "Period"
    if "event" in keys or "repeat" in keys:
        return "Timing"
    if "family" in keys or "given" in keys:
        return "HumanName"
    if keys & {"line", "city", "district", "state", "postalCode", "country"}:
        return "Address"
    if "value" in keys and ("unit" in keys or "comparator" in keys or isinstance(value.get("value"), int | Decimal)):
        return "Quantity"
    if "value" in keys and value.get("system") in _CONTACT_SYSTEMS:
        return "ContactPoint"
    if "value" in keys:
        return "Identifier"
    if "code" in keys or "system" in keys or "display" in keys:
        return "Coding"
    return "Element"
