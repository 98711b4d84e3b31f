"""Cached page totals: ``find_many`` counts once, then serves the total from the cache.

A page with its total costs one statement whose count is most of its server time. For the
entities named with :func:`cache_totals`, ``find_many`` (both shells: it is one plan) asks the
process cache for the total of the same filter first:

* **hit** — only the page's rows are read (with their riding audit record, as always); the total
  comes from the cache;
* **miss** — the usual statement (page and count in one round trip) runs, and its total is stored,
  guarded by the token the miss carried: a total counted before a writer's commit is never stored
  after that writer's invalidation.

Exactness: every total is tagged ``entity:<Name>``, which every committed write of the entity
invalidates (either shell; after COMMIT, before the writing call returns; nothing on rollback).
Scope: the key holds the caller's row-security partition (system / break-glass, or the school
ids) and role, so one school's or one role's total is never served to another. The key holds the
filter only as a keyed hash (no value in clear); the total of a PHI / FERPA entity is encrypted
in Redis like any sensitive value. Bypassed (the usual statement, nothing read or stored) inside a
unit of work that wrote the entity, inside REPEATABLE READ / SERIALIZABLE, inside a transaction
wxdata did not open, when caching is off, and for a sensitive entity on a backend that does not
encrypt.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from returns.result import Failure, Result, Success

from wxdata.cache.backends.base import Miss
from wxdata.cache.core import scope_of
from wxdata.cache.factory import default_cache
from wxdata.cache.invalidation import held_by_foreign
from wxdata.cache.keys import (
    LIST,
    UncacheableArgument,
    call_text,
    entity_tag,
    fingerprint,
    partition_of,
)
from wxdata.cache.policy import is_sensitive, ttl_for
from wxdata.config import settings
from wxdata.context import ExecutionContext
from wxdata.core import reads
from wxdata.core.auditing import _read
from wxdata.core.effects import Call, Plan
from wxdata.core.execute import Where, _deleted, _Err, _rows_builder, _where
from wxdata.errors import DataError
from wxdata.query import compiler
from wxdata.query.paging import Page, SortSpec, check_page, parse_sort
from wxdata.schema.spec import Entity
from wxdata.tx.events import foreign_writes, settle_foreign
from wxdata.tx.scope import Isolation

__all__ = ["TOTAL_CALL", "cache_totals", "counted_page", "totals_cached", "uncache_totals"]

#: The function name in every total's canonical call (no cached function can take it).
TOTAL_CALL = "wxdata.find_many#total"
_RC = (None, Isolation.READ_COMMITTED)
_IDLE = TransactionStatus.IDLE
_lock = threading.Lock()
_ON: dict[str, Entity[Any]] = {}


def cache_totals(*entities: Entity[Any]) -> None:
    """Serve the totals of ``find_many`` pages of these entities from the process cache."""
    with _lock:
        for e in entities:
            _ON[e.name] = e
        reads.page_totals = counted_page if _ON else None


def uncache_totals(*entities: Entity[Any]) -> None:
    """Count the totals of these entities (all, when none is named) in the page's statement."""
    with _lock:
        for name in [e.name for e in entities] if entities else list(_ON):
            _ON.pop(name, None)
        reads.page_totals = counted_page if _ON else None


def totals_cached() -> frozenset[str]:
    """Names of the entities whose page totals are served from the cache."""
    with _lock:
        return frozenset(_ON)


def _cache_for(conn: Any) -> Any:
    """The process cache of the connection's shell (None when caching is off)."""
    if isinstance(conn, psycopg.AsyncConnection):
        from wxdata.cache.aio import default_async_cache

        return default_async_cache()
    return default_cache()


def _usable(conn: Any, entity: Entity[Any]) -> bool:
    """READ COMMITTED, nothing of the entity written in the unit of work, and no transaction
    wxdata did not open."""
    if foreign_writes:
        settle_foreign()
    scope = scope_of(conn)
    if scope is not None:
        return scope.isolation in _RC and not scope.has_written(entity.name)
    return bool(conn.pgconn.transaction_status == _IDLE)


def counted_page(
    conn: Any, ctx: ExecutionContext, entity: Entity[Any], where: Where, order_by: SortSpec,
    page: int, limit: int, include_deleted: bool,
) -> Plan[Result[Page[Any], DataError]] | None:
    """The ``find_many`` plan with its total served from the cache, or None (count as usual)."""
    if entity.name not in _ON:
        return None
    cache = _cache_for(conn)
    if cache is None or not _usable(conn, entity):
        return None
    sensitive = is_sensitive(entity)
    if sensitive and not cache.accepts_sensitive:
        return None
    try:
        sort = check_page(page, limit).bind(lambda _: parse_sort(entity, order_by)).value_or(None)
        if sort is None:
            return None
        shape, params = _where(entity, where)
        deleted = _deleted(include_deleted)
        counting = compiler.select_count(entity, shape, deleted)
        part = f"{partition_of(ctx)}|{ctx.role.value}"
        call = call_text(TOTAL_CALL, fingerprint(entity), part, (counting,), params)
        key = cache.keys.key(entity, True, LIST, call)  # keyed hash: no filter value in clear
    except (_Err, UncacheableArgument, ValueError):
        return None  # the usual plan says what is wrong (or counts an uncacheable filter)
    rows_sql = compiler.select_rows(entity, shape, sort, entity.column_names, deleted,
                                    True)
    return _plan(cache, conn, ctx, entity, key, sensitive, rows_sql, params, where, order_by,
                 page, limit, include_deleted)


def _plan(
    cache: Any, conn: Any, ctx: ExecutionContext, entity: Entity[Any], key: str, sensitive: bool,
    rows_sql: str, params: dict[str, Any], where: Where, order_by: SortSpec, page: int,
    limit: int, include_deleted: bool,
) -> Plan[Result[Page[Any], DataError]]:
    label = entity.name
    got = yield Call(lambda: cache.lookup(key, label, sensitive))
    if type(got) is not Miss:
        total = got.unwrap()
        if type(total) is int and total >= 0:
            columns = entity.column_names
            paged = reads.windowed(rows_sql, params, page, limit)
            try:
                data = yield from _read(conn, ctx, entity, paged, params, columns, columns,
                                        build=_rows_builder(entity, columns, None))
            except _Err as err:
                return Failure(err.error)
            return Success(Page.of(data, page, limit, total))
        got = Miss(None)  # not a total: count, and store nothing
    result: Result[Page[Any], DataError] = yield from reads._page(
        conn, ctx, entity, where, order_by, page, limit, include_deleted, None)
    token = got.token
    match result:
        case Success(counted) if token is not None and _usable(conn, entity) and not (
                foreign_writes and held_by_foreign((entity_tag(entity),))):
            tags = [cache.keys.tag_id(entity_tag(entity))]
            life = ttl_for(entity, None,
                           getattr(cache, "default_ttl", settings().cache_default_ttl))
            total = counted.total
            yield Call(lambda: cache.fill(key, total, ttl=life, tag_ids=tags, token=token,
                                          entity=label, sensitive=sensitive))
    return result
