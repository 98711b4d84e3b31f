"""SQL compilation: filter shapes, sorts and projections to PyPika, to SQL text, once per shape.

Every function here is pure and memoised on hashable inputs (the entity spec, a filter shape, a
sort key, a projection), so a query shape is built by PyPika once and afterwards is a dictionary
lookup. Placeholders are psycopg named parameters: ``%(p0)s``... for filter values in depth-first
order, ``%(_name)s`` for the library's own (id, limit, offset, version, user).
Identifiers come only from the entity spec; no value is ever rendered into the text.
"""

from __future__ import annotations

import enum
from functools import lru_cache
from typing import Any

from pypika import Criterion, Field, Order, Parameter, Table
from pypika import PostgreSQLQuery as Query
from pypika import functions as fn
from pypika.enums import Comparator
from pypika.terms import BasicCriterion, Function, Term, Tuple

from wxdata.query.filters import Shape
from wxdata.schema.spec import Entity

CACHE_SIZE = 4096


class _ArrayOp(Comparator):
    contains = "@>"
    overlaps = "&&"


class _Parens(Criterion):
    """Wraps a criterion in parentheses so NOT binds to all of it."""

    def __init__(self, inner: Term) -> None:
        super().__init__()
        self.inner = inner

    def get_sql(self, **kwargs: Any) -> str:
        kwargs["subquery"] = True
        return "(" + str(self.inner.get_sql(**kwargs)) + ")"


class _NotCriterion(Criterion):
    def __init__(self, inner: Term) -> None:
        super().__init__()
        self.inner = inner

    def get_sql(self, **kwargs: Any) -> str:
        return "NOT " + _Parens(self.inner).get_sql(**kwargs)


class Direction(enum.StrEnum):
    """Sort direction."""

    ASC = "ASC"
    DESC = "DESC"


class Nulls(enum.StrEnum):
    """Where NULLs sort."""

    FIRST = "FIRST"
    LAST = "LAST"


SortKey = tuple[tuple[str, Direction, Nulls], ...]


class _SortTerm(Term):
    def __init__(self, column: str, direction: Direction, nulls: Nulls) -> None:
        super().__init__()
        self.column, self.direction, self.nulls = column, direction, nulls

    def get_sql(self, **kwargs: Any) -> str:
        return f'"{self.column}" {self.direction.value} NULLS {self.nulls.value}'


def param(name: str) -> Any:
    """A psycopg named placeholder (typed Any: PyPika's stubs want literals where it takes terms)."""
    return Parameter(f"%({name})s")


def _returning(query: Any, *terms: Any) -> Any:
    """``RETURNING`` (PyPika's stubs mistype the builder method)."""
    return query.returning(*terms)


def _now() -> Any:
    return fn.Now()  # type: ignore[no-untyped-call]


def criterion(table: Table, shape: Shape, counter: list[int]) -> Any:
    """Render a filter shape as a PyPika criterion with placeholders numbered depth-first."""
    tag = shape[0]
    if tag == "and":
        return _Parens(Criterion.all([criterion(table, s, counter) for s in shape[1:]]))
    if tag == "or":
        return _Parens(Criterion.any([criterion(table, s, counter) for s in shape[1:]]))
    if tag == "not":
        return _NotCriterion(criterion(table, shape[1], counter))
    _, name, op, *extra = shape
    field: Field = table.field(name)
    if op == "is_null":
        return field.isnull() if extra[0] else field.notnull()

    def nxt() -> Any:
        p = param(f"p{counter[0]}")
        counter[0] += 1
        return p

    if op == "eq":
        return field == nxt()
    if op == "ne":
        return field != nxt()
    if op == "lt":
        return field < nxt()
    if op == "lte":
        return field <= nxt()
    if op == "gt":
        return field > nxt()
    if op == "gte":
        return field >= nxt()
    if op == "in":
        return field == Function("ANY", nxt())
    if op == "not_in":
        return field != Function("ALL", nxt())
    if op == "like":
        return field.like(nxt())
    if op == "ilike":
        return field.ilike(nxt())
    if op == "between":
        low = nxt()
        return field.between(low, nxt())
    if op == "contains":
        return BasicCriterion(_ArrayOp.contains, field, nxt())
    if op == "overlaps":
        return BasicCriterion(_ArrayOp.overlaps, field, nxt())
    raise ValueError(f"unknown operator {op!r}")  # unreachable: filters.bind checks ops


def _where(entity: Entity[Any], table: Table, shape: Shape | None, deleted: str) -> Criterion | None:
    parts: list[Criterion] = []
    marker = entity.managed("deleted_at")
    if marker is not None and deleted != "all":
        field = table.field(marker)
        parts.append(field.isnull() if deleted == "live" else field.notnull())
    if shape is not None:
        parts.append(criterion(table, shape, [0]))
    if not parts:
        return None
    return Criterion.all(parts)


def _order_terms(sort: SortKey) -> list[_SortTerm]:
    return [_SortTerm(c, d, n) for c, d, n in sort]


@lru_cache(maxsize=CACHE_SIZE)
def select_rows(
    entity: Entity[Any],
    shape: Shape | None,
    sort: SortKey,
    projection: tuple[str, ...],
    deleted: str = "live",
    paged: bool = True,
    for_update: bool = False,
) -> str:
    """SELECT projection WHERE filter ORDER BY sort [LIMIT %(_limit)s OFFSET %(_offset)s]."""
    table = Table(entity.table)
    q = Query.from_(table).select(*[table.field(c) for c in projection])
    where = _where(entity, table, shape, deleted)
    if where is not None:
        q = q.where(where)
    if sort:
        q = q.orderby(*_order_terms(sort))
    if paged:
        q = q.limit(param("_limit")).offset(param("_offset"))
    sql = str(q.get_sql())
    return sql + " FOR UPDATE" if for_update else sql


@lru_cache(maxsize=CACHE_SIZE, typed=True)
def select_after(
    entity: Entity[Any],
    shape: Shape | None,
    sort: SortKey,
    projection: tuple[str, ...],
    deleted: str = "live",
    first: bool = True,
    limit: int | None = None,
) -> str:
    """Keyset page: rows strictly after the cursor values ``%(_k<i>)s`` in sort order.

    ``limit`` (a checked integer) is written into the statement, as a page's window is (see
    :func:`with_window`: with it a parameter, the statement is re-planned on every call); None
    leaves it the ``%(_limit)s`` parameter.

    When every sort column runs the same way the condition is one row-value comparison, which an
    index on the sort columns seeks to directly. Mixed directions expand to the OR chain, led by
    a bound on the first column so the index still narrows the scan.
    """
    table = Table(entity.table)
    q = Query.from_(table).select(*[table.field(c) for c in projection])
    where = _where(entity, table, shape, deleted)
    if not first:
        keys = [param(f"_k{i}") for i in range(len(sort))]
        fields = [table.field(c) for c, _, _ in sort]
        directions = {d for _, d, _ in sort}
        if len(directions) == 1:
            left, right = Tuple(*fields), Tuple(*keys)
            keyset: Any = left > right if Direction.ASC in directions else left < right
        else:
            branches = []
            for i, (_, direction, _) in enumerate(sort):
                parts = [fields[j] == keys[j] for j in range(i)]
                parts.append(fields[i] > keys[i] if direction is Direction.ASC
                             else fields[i] < keys[i])
                branches.append(Criterion.all(parts))
            lead = fields[0] >= keys[0] if sort[0][1] is Direction.ASC else fields[0] <= keys[0]
            keyset = _Parens(Criterion.all([lead, _Parens(Criterion.any(branches))]))
        where = keyset if where is None else where & keyset
    if where is not None:
        q = q.where(where)
    if limit is not None and (type(limit) is not int or limit < 1):
        raise ValueError("limit must be a positive integer")
    return str(q.orderby(*_order_terms(sort)).limit(param("_limit") if limit is None else limit)
               .get_sql())


@lru_cache(maxsize=CACHE_SIZE)
def select_page(
    entity: Entity[Any],
    shape: Shape | None,
    sort: SortKey,
    projection: tuple[str, ...],
    deleted: str = "live",
) -> str:
    """One statement for a page and its total: row 0 is (total, hit, *projection).

    The count and the page share one round trip; an empty page still returns one row carrying the
    total (``hit`` is NULL there). Both halves use the same placeholders.
    """
    table = Table(entity.table)
    count = Query.from_(table).select(fn.Count("*").as_("_total"))
    where = _where(entity, table, shape, deleted)
    if where is not None:
        count = count.where(where)
    rows = select_rows(entity, shape, sort, ("__hit__", *projection), deleted, True)
    rows = rows.replace('"__hit__"', 'true "_hit"', 1)
    return f'SELECT c."_total",t.* FROM ({count.get_sql()}) c LEFT JOIN LATERAL ({rows}) t ON true'


_WINDOW = "LIMIT %(_limit)s OFFSET %(_offset)s"


@lru_cache(maxsize=CACHE_SIZE, typed=True)  # typed: True and 1.0 must not find 1's entry
def with_window(statement: str, limit: int, offset: int) -> str:
    """``statement`` (of :func:`select_rows` or :func:`select_page`, paged) with its LIMIT and
    OFFSET written in as integer literals instead of the ``_limit``/``_offset`` parameters.

    With the OFFSET a parameter, PostgreSQL's generic plan of a prepared page must assume an
    unknown share of the rows skipped, so it never looks cheaper than a plan made for the values
    at hand: the statement is planned again on every execution, which for a page with its audit
    record riding in it costs more than running it. With both known, the generic plan is chosen
    and reused. ``limit`` and ``offset`` are checked integers (``check_page``), never text.
    """
    if type(limit) is not int or type(offset) is not int or limit < 1 or offset < 0:
        raise ValueError("limit must be a positive integer, offset a non-negative one")
    if statement.count(_WINDOW) != 1:
        raise ValueError("the statement has no LIMIT/OFFSET parameters to write in")
    return statement.replace(_WINDOW, f"LIMIT {limit:d} OFFSET {offset:d}")


@lru_cache(maxsize=CACHE_SIZE)
def select_count(entity: Entity[Any], shape: Shape | None, deleted: str = "live") -> str:
    """SELECT count(*) WHERE filter."""
    table = Table(entity.table)
    q = Query.from_(table).select(fn.Count("*"))
    where = _where(entity, table, shape, deleted)
    if where is not None:
        q = q.where(where)
    return str(q.get_sql())


@lru_cache(maxsize=CACHE_SIZE)
def select_exists(entity: Entity[Any], shape: Shape | None, deleted: str = "live") -> str:
    """SELECT EXISTS (SELECT 1 WHERE filter)."""
    table = Table(entity.table)
    q = Query.from_(table).select(1)
    where = _where(entity, table, shape, deleted)
    if where is not None:
        q = q.where(where)
    return f"SELECT EXISTS ({q.get_sql()})"


@lru_cache(maxsize=CACHE_SIZE)
def select_by_id(
    entity: Entity[Any], projection: tuple[str, ...], deleted: str = "live",
    for_update: bool = False,
) -> str:
    """SELECT projection WHERE id = %(_id)s."""
    table = Table(entity.table)
    q = Query.from_(table).select(*[table.field(c) for c in projection])
    crit = table.field(entity.pk) == param("_id")
    marker = entity.managed("deleted_at")
    if marker is not None and deleted != "all":
        crit &= table.field(marker).isnull() if deleted == "live" else table.field(marker).notnull()
    sql = str(q.where(crit).get_sql())
    return sql + " FOR UPDATE" if for_update else sql


@lru_cache(maxsize=CACHE_SIZE)
def insert_row(entity: Entity[Any], columns: tuple[str, ...], returning: tuple[str, ...]) -> str:
    """INSERT (columns) VALUES (%(<column>)s...) RETURNING returning: each value bound under its
    column's own name (:func:`wxdata.schema.spec.entity` keeps column names out of the other
    parameters' names)."""
    table = Table(entity.table)
    q = Query.into(table).columns(*columns).insert(*[param(c) for c in columns])
    return str(_returning(q, *[table.field(c) for c in returning]).get_sql())


def _set_bookkeeping(entity: Entity[Any], table: Table, q: Any) -> Any:
    """SET version = version + 1, updated_at = now(), updated_by = %(_uid)s (where declared)."""
    version_col = entity.managed("version")
    if version_col is not None:
        q = q.set(table.field(version_col), table.field(version_col) + 1)
    for kind, value in (("updated_at", _now()), ("updated_by", param("_uid"))):
        name = entity.managed(kind)
        if name is not None:
            q = q.set(table.field(name), value)
    return q


class _OldValue(Term):
    """``old."<column>" "_o_<column>"``: in PostgreSQL 18's RETURNING list, the value the UPDATE
    replaced (PyPika has no term for it)."""

    def __init__(self, column: str) -> None:
        super().__init__()
        self.column = column

    def get_sql(self, **kwargs: Any) -> str:
        return f'old."{self.column}" "_o_{self.column}"'


@lru_cache(maxsize=CACHE_SIZE)
def update_row(
    entity: Entity[Any], columns: tuple[str, ...], returning: tuple[str, ...], check_version: bool,
    with_old: bool = True, old_returning: bool = False, optimistic: bool = False,
) -> str:
    """UPDATE SET columns (+ version, updated_at/by) WHERE id [AND version] RETURNING new and old.

    With ``with_old`` the result ``(*new[returning], *old[changed] as _o_<name>)`` carries the
    exact before-image of the changed columns (those of ``columns`` in ``returning``, in the
    order of ``returning``) for the audit diff, and nothing of the old row the diff does not read:
    PostgreSQL 18 returns it itself (``old_returning``: ``RETURNING old.<name>``, the version the
    UPDATE replaced); before 18 the old row is read and locked in the same statement
    (``FROM (SELECT ... FOR UPDATE) o``). Without ``with_old``, a plain UPDATE ... RETURNING new.

    ``optimistic`` (before 18): the old row is read without a lock and the UPDATE joins it by its
    physical address (``ctid``) as well as its key. If another transaction changed the row after
    the statement's snapshot, the row the UPDATE finds is a newer version at another address, the
    join drops it and nothing is updated; the caller then runs the locking form. Either way the
    old row is exactly the one the UPDATE replaced.
    """
    table = Table(entity.table)
    crit = table.field(entity.pk) == param("_id")
    marker = entity.managed("deleted_at")
    if marker is not None:
        crit &= table.field(marker).isnull()
    changed = tuple(c for c in returning if c in columns)
    if not with_old or old_returning:
        plain = Query.update(table)
        for c in columns:
            plain = plain.set(table.field(c), param(c))
        plain = _set_bookkeeping(entity, table, plain)
        version_name = entity.managed("version")
        if check_version and version_name is not None:
            crit &= table.field(version_name) == param("_version")
        before = [_OldValue(c) for c in changed] if with_old else []
        return str(_returning(plain.where(crit), *[table.field(c) for c in returning], *before)
                   .get_sql())
    read = Query.from_(table).select(
        *[table.field(c) for c in dict.fromkeys((entity.pk, *changed))]).where(crit)
    if optimistic:
        read = read.select(table.field("ctid").as_("_ctid"))
    old = (read if optimistic else read.for_update()).as_("o")
    q = Query.update(table)
    for c in columns:
        q = q.set(table.field(c), param(c))
    q = _set_bookkeeping(entity, table, q)
    version_col = entity.managed("version")
    join = table.field(entity.pk) == Field(entity.pk, table=old)
    if optimistic:  # the address, and the key too: an address is unique within one table only
        join = (table.field("ctid") == Field("_ctid", table=old)) & join
    if check_version and version_col is not None:
        join &= table.field(version_col) == param("_version")
    q = _returning(
        q.from_(old).where(join),
        *[table.field(c) for c in returning], *[Field(c, table=old).as_("_o_" + c) for c in changed]
    )
    return str(q.get_sql())


@lru_cache(maxsize=CACHE_SIZE)
def update_where(
    entity: Entity[Any], shape: Shape | None, columns: tuple[str, ...], returning: tuple[str, ...]
) -> str:
    """UPDATE SET columns (+ version, updated_at/by) WHERE filter (live rows) RETURNING returning."""
    table = Table(entity.table)
    q = Query.update(table)
    for c in columns:
        q = q.set(table.field(c), param(c))
    version_col = entity.managed("version")
    if version_col is not None:
        q = q.set(table.field(version_col), table.field(version_col) + 1)
    for kind, value in (("updated_at", _now()), ("updated_by", param("_uid"))):
        name = entity.managed(kind)
        if name is not None:
            q = q.set(table.field(name), value)
    where = _where(entity, table, shape, "live")
    if where is not None:
        q = q.where(where)
    return str(_returning(q, *[table.field(c) for c in returning]).get_sql())


@lru_cache(maxsize=CACHE_SIZE)
def soft_delete_row(entity: Entity[Any], returning: tuple[str, ...], restore: bool) -> str:
    """UPDATE SET deleted_at = now() (or NULL to restore) WHERE id, returning the row."""
    table = Table(entity.table)
    marker = entity.managed("deleted_at")
    if marker is None:  # callers soft-delete only entities that declare it
        raise ValueError(f"{entity.name} does not soft-delete")
    q = Query.update(table).set(table.field(marker), None if restore else _now())
    if entity.versioned:
        v = str(entity.managed("version"))
        q = q.set(table.field(v), table.field(v) + 1)
    for kind, value in (("updated_at", _now()), ("updated_by", param("_uid"))):
        name = entity.managed(kind)
        if name is not None:
            q = q.set(table.field(name), value)
    crit = table.field(entity.pk) == param("_id")
    crit &= table.field(marker).notnull() if restore else table.field(marker).isnull()
    q = _returning(q.where(crit), *[table.field(c) for c in returning])
    return str(q.get_sql())


@lru_cache(maxsize=CACHE_SIZE)
def hard_delete_row(entity: Entity[Any], returning: tuple[str, ...]) -> str:
    """DELETE WHERE id RETURNING returning (only for entities without soft delete)."""
    table = Table(entity.table)
    q = Query.from_(table).delete().where(table.field(entity.pk) == param("_id"))
    return str(_returning(q, *[table.field(c) for c in returning]).get_sql())


def sort_direction(value: str) -> Direction | None:
    """Parse 'asc'/'desc' (any case)."""
    try:
        return Direction(value.upper())
    except (ValueError, AttributeError):
        return None


__all__ = [
    "Direction",
    "Nulls",
    "Order",
    "SortKey",
    "criterion",
    "hard_delete_row",
    "insert_row",
    "param",
    "select_after",
    "select_by_id",
    "select_count",
    "select_exists",
    "select_page",
    "select_rows",
    "soft_delete_row",
    "sort_direction",
    "update_row",
    "update_where",
]
