"""Filter trees: parse caller filters into a typed tree, check them against the entity's allow-list.

The tree has two halves kept apart on purpose: its *shape* (fields, operators, and/or/not structure),
which is hashable and selects the compiled SQL, and its *values*, which are bound as parameters in
the same depth-first order. Nothing a caller passes ever reaches SQL text.

Accepted forms (all compose by AND, never dropping a sibling)::

    {"grade": "5"}                               eq
    {"grade": None}                              is_null
    {"grade": {"in": ["5", "6"]}}                operator form; several operators on one field AND
    {"or": [{...}, {...}], "and": [...], "not": {...}}
    Cond("last_name", "ilike", "smi")            typed nodes: Cond / And / Or / Not
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeAlias
from uuid import UUID

import attrs
from returns.result import Failure, Result, Success

from wxdata.errors import InvalidQuery
from wxdata.schema.spec import Column, Entity, Kind
from wxdata.schema.validate import _Bad, coerce_value

OPERATORS = frozenset(
    {
        "eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "like", "ilike",
        "is_null", "between", "contains", "overlaps",
    }
)
MAX_IN = 1000
MAX_FILTER_TEXT = 4096
MAX_NODES = 200
MAX_DEPTH = 16


@attrs.frozen(slots=True)
class Pattern:
    """A LIKE pattern the caller wants used as-is (``%`` and ``_`` are wildcards)."""

    text: str


@attrs.frozen(slots=True)
class Cond:
    """One condition: ``field <op> value``."""

    field: str
    op: str
    value: Any = None


@attrs.frozen(slots=True)
class And:
    """All of the items hold."""

    items: tuple[Node, ...]


@attrs.frozen(slots=True)
class Or:
    """At least one of the items holds."""

    items: tuple[Node, ...]


@attrs.frozen(slots=True)
class Not:
    """The item does not hold (SQL three-valued logic: NOT of unknown is unknown)."""

    item: Node


Node: TypeAlias = Cond | And | Or | Not
Shape: TypeAlias = tuple[Any, ...]


def _bad(field: str, rule: str) -> Failure[InvalidQuery]:
    return Failure(InvalidQuery(field=field, rule=rule))


def _safe_name(name: object) -> str:
    if isinstance(name, str) and name.isidentifier() and len(name) <= 63:
        return name
    return "<invalid field name>"


def parse(where: Mapping[str, Any] | Node | None) -> Result[Node | None, InvalidQuery]:
    """Turn the dict form (or a typed node) into a tree of Cond/And/Or/Not."""
    if where is None:
        return Success(None)
    if isinstance(where, Cond | And | Or | Not):
        return Success(where)
    if not isinstance(where, Mapping):
        return _bad("where", "must be a mapping or a filter node")
    return _parse_mapping(where, 0)


def _parse_list(key: str, value: Any, depth: int) -> Result[tuple[Node, ...], InvalidQuery]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes) or not value:
        return _bad(key, "must be a non-empty list of filters")
    items: list[Node] = []
    for sub in value:
        parsed = parse(sub) if isinstance(sub, Cond | And | Or | Not) else (
            _parse_mapping(sub, depth + 1) if isinstance(sub, Mapping)
            else _bad(key, "items must be filters"))
        match parsed:
            case Success(None):
                pass
            case Success(node):
                items.append(node)
            case refused:
                return Failure(refused.failure())
    if not items:
        return _bad(key, "must be a non-empty list of filters")
    return Success(tuple(items))


def _parse_mapping(where: Mapping[str, Any], depth: int) -> Result[Node | None, InvalidQuery]:
    if depth > MAX_DEPTH:
        return _bad("where", f"must nest at most {MAX_DEPTH} levels")
    parts: list[Node] = []
    for key, value in where.items():
        if key in ("and", "or"):
            match _parse_list(key, value, depth):
                case Success(items):
                    parts.append(And(items) if key == "and" else Or(items))
                case refused:
                    return Failure(refused.failure())
        elif key == "not":
            if isinstance(value, Cond | And | Or | Not):
                parts.append(Not(value))
                continue
            if not isinstance(value, Mapping) or not value:
                return _bad("not", "must be a non-empty filter")
            match _parse_mapping(value, depth + 1):
                case Success(None):
                    pass
                case Success(node):
                    parts.append(Not(node))
                case invalid:
                    return Failure(invalid.failure())
        elif not isinstance(key, str):
            return _bad("<invalid field name>", "field names must be strings")
        elif isinstance(value, Mapping):
            if not value:
                return _bad(_safe_name(key), "operator mapping must not be empty")
            for op, operand in value.items():
                if op not in OPERATORS:
                    return _bad(_safe_name(key), "unknown operator")
                parts.append(Cond(key, op, operand))
        elif value is None:
            parts.append(Cond(key, "is_null", True))
        else:
            parts.append(Cond(key, "eq", value))
    if not parts:
        return Success(None)
    return Success(parts[0] if len(parts) == 1 else And(tuple(parts)))


#: The array kinds, read once: an enum member looked up on its class costs CPython 3.11 more than
#: the rest of a scalar's check.
_TEXT_ARRAY, _UUID_ARRAY = Kind.TEXT_ARRAY, Kind.UUID_ARRAY


def _check_scalar(column: Column, value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_FILTER_TEXT:
        raise _Bad(f"filter strings must be at most {MAX_FILTER_TEXT} characters")
    kind = column.kind
    if kind is _TEXT_ARRAY or kind is _UUID_ARRAY:
        scalar = Column(column.name, Kind.TEXT if kind is _TEXT_ARRAY else Kind.UUID,
                        column.sql_type, column.nullable, column.rules)
        return coerce_value(scalar, value)
    return coerce_value(column, value)


def escape_like(text: str) -> str:
    """Escape LIKE wildcards so the text matches literally (backslash is PostgreSQL's escape)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@attrs.frozen(slots=True)
class Bound:
    """A checked filter: its hashable shape and its values in placeholder order."""

    shape: Shape | None
    values: tuple[Any, ...]


def bind(entity: Entity[Any], node: Node | None) -> Result[Bound, InvalidQuery]:
    """Check fields, operators and value types against the entity; split shape from values."""
    if node is None:
        return Success(Bound(None, ()))
    values: list[Any] = []
    count = [0]
    try:
        shape = _bind(entity, node, values, count)
    except _QueryError as err:
        return Failure(err.error)
    return Success(Bound(shape, tuple(values)))


class _QueryError(Exception):
    def __init__(self, error: InvalidQuery) -> None:
        super().__init__(error.rule)
        self.error = error


def _fail(field: str, rule: str) -> _QueryError:
    return _QueryError(InvalidQuery(field=field, rule=rule))


def _bind(entity: Entity[Any], node: Node, values: list[Any], count: list[int]) -> Shape:
    count[0] += 1
    if count[0] > MAX_NODES:
        raise _fail("where", f"must have at most {MAX_NODES} conditions")
    if isinstance(node, And | Or):
        if not node.items:
            raise _fail("where", "and/or must not be empty")
        tag = "and" if isinstance(node, And) else "or"
        return (tag, *(_bind(entity, i, values, count) for i in node.items))
    if isinstance(node, Not):
        return ("not", _bind(entity, node.item, values, count))
    if not isinstance(node, Cond):
        raise _fail("where", "must be a filter node")
    column = entity.by_name.get(node.field) if isinstance(node.field, str) else None
    name = _safe_name(node.field)
    if column is None or not column.filterable:
        raise _fail(name, "is not a filterable column of " + entity.name)
    op = node.op
    if op not in OPERATORS:
        raise _fail(name, "unknown operator")
    array = column.kind in (Kind.TEXT_ARRAY, Kind.UUID_ARRAY)
    try:
        if op == "is_null":
            if not isinstance(node.value, bool):
                raise _Bad("is_null takes true or false")
            return ("c", column.name, op, node.value)
        if op in ("contains", "overlaps"):
            if not array:
                raise _Bad(f"{op} applies to array columns only")
            if not isinstance(node.value, list | tuple | set | frozenset) or not node.value:
                raise _Bad(f"{op} takes a non-empty list")
            if len(node.value) > MAX_IN:
                raise _Bad(f"{op} takes at most {MAX_IN} items")
            values.append([_check_scalar(column, v) for v in node.value])
            return ("c", column.name, op)
        if array:
            raise _Bad("array columns take contains, overlaps or is_null")
        if op in ("in", "not_in"):
            if not isinstance(node.value, list | tuple | set | frozenset):
                raise _Bad(f"{op} takes a list")
            if not node.value:
                raise _Bad(f"{op} takes a non-empty list")
            if len(node.value) > MAX_IN:
                raise _Bad(f"{op} takes at most {MAX_IN} items")
            items = [_check_scalar(column, v) for v in node.value]
            if any(v is None for v in items):
                raise _Bad(f"{op} items must not be null")
            values.append(items)
            return ("c", column.name, op)
        if op == "between":
            if not isinstance(node.value, list | tuple) or len(node.value) != 2:
                raise _Bad("between takes [low, high]")
            low, high = (_check_scalar(column, v) for v in node.value)
            values.extend((low, high))
            return ("c", column.name, op)
        if op in ("like", "ilike"):
            if column.kind is not Kind.TEXT:
                raise _Bad(f"{op} applies to text columns only")
            raw = node.value
            if isinstance(raw, Pattern):
                text = _check_scalar(column, raw.text)
                values.append(text)
            else:
                text = _check_scalar(column, raw)
                values.append("%" + escape_like(text) + "%")
            return ("c", column.name, op)
        if node.value is None:
            raise _Bad("use is_null to compare with null")
        if op in ("lt", "lte", "gt", "gte") and column.kind in (Kind.BOOL, Kind.JSON):
            raise _Bad(f"{op} does not apply to this column type")
        values.append(_check_scalar(column, node.value))
        return ("c", column.name, op)
    except _Bad as bad:
        raise _fail(name, bad.rule) from None


#: The most fields a filter may have to take :func:`bind_where`'s per-shape fast path.
FLAT_MAX = 8
_COMBINATORS = frozenset({"and", "or", "not"})


def bind_where(entity: Entity[Any], where: Mapping[str, Any] | Node | None
               ) -> Result[Bound, InvalidQuery]:
    """:func:`parse` then :func:`bind`, with the structure of a flat equality filter checked once.

    A plain dict of up to :data:`FLAT_MAX` ``field: value`` pairs (no operators, no null, no
    and/or/not) is the common filter: its shape depends only on its field names, so the field
    checks run once per entity and names (:func:`flat_shape`, memoised) and each call only checks
    and converts its values (:func:`flat_params`), with the same rules as :func:`bind`. Anything
    else, and any filter whose values :func:`flat_params` refuses, takes the general path, which
    names the field and the rule.
    """
    flat = flat_params(entity, where)
    if flat is not None:
        shape, params = flat
        return Success(Bound(shape, tuple(params.values())))
    return parse(where).bind(lambda node: bind(entity, node))


#: Types whose values are never a mapping: a flat filter's values are told from operator mappings
#: without an abstract-class check per value.
_SCALAR_TYPES = frozenset({str, int, float, bool, Decimal, date, datetime, UUID})


def flat_params(entity: Entity[Any], where: Any) -> tuple[Shape, dict[str, Any]] | None:
    """A flat equality filter's shape and its values as the ``p0``, ``p1``... parameters of the
    statement: what :func:`bind_where` binds for it, without its containers. None when ``where``
    is not such a filter (see :func:`bind_where`) or one of its values is refused: the caller then
    takes :func:`bind_where`, which names the field and the rule."""
    if (type(where) is not dict or not 0 < len(where) <= FLAT_MAX
            or not entity.by_name.keys() >= where.keys()):  # only declared names reach the memo
        return None
    flat = flat_shape(entity, tuple(where))
    if flat is None:
        return None
    shape, columns, names = flat
    params = {}
    for name, column, value in zip(names, columns, where.values(), strict=False):
        if value is None or (type(value) not in _SCALAR_TYPES and isinstance(value, Mapping)):
            return None  # is_null or an operator mapping: the general path parses it
        try:
            params[name] = _check_scalar(column, value)
        except _Bad:
            return None
    return shape, params


@functools.lru_cache(maxsize=4096)
def flat_shape(entity: Entity[Any], names: tuple[str, ...]
               ) -> tuple[Shape, tuple[Column, ...], tuple[str, ...]] | None:
    """The shape, columns and parameter names (``p0``, ``p1``...) of a flat equality filter on
    ``names``, or None when the names do not make one (a combinator, an unknown, non-filterable
    or array field).

    Memoised per entity and names: ``flat_shape.cache_info().misses`` counts the shapes checked.
    """
    columns = []
    for name in names:
        column = entity.by_name.get(name) if isinstance(name, str) else None
        if name in _COMBINATORS or column is None or not column.filterable:
            return None
        if column.kind in (Kind.TEXT_ARRAY, Kind.UUID_ARRAY):
            return None
        columns.append(column)
    conds: tuple[Shape, ...] = tuple(("c", c.name, "eq") for c in columns)
    shape = conds[0] if len(conds) == 1 else ("and", *conds)
    return shape, tuple(columns), tuple(f"p{i}" for i in range(len(columns)))


ScalarValue: TypeAlias = str | int | float | bool | Decimal | date | datetime | None
