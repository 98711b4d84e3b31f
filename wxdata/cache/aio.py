"""``cached`` for ``async def`` reads: ``(AsyncConnection, ctx, ...) -> Result``.

The same rules as the sync :func:`wxdata.cache.cached`, decided by the same code
(:mod:`wxdata.cache.core`): the same keys for the same call (a sync and an async read of one
function share entries), the same bypasses, the same refusal of unprovable identities at
decoration time and of arguments with no canonical key text at call time (a typed ``Failure``),
the same PHI rules (encrypted in Redis, TTL ceiling, a disclosure record for every audited hit,
written durably before the value is returned — no record, no data). This module only does I/O:

* backends: :class:`~wxdata.cache.backends.aio.AsyncMemoryCache`,
  :class:`~wxdata.cache.backends.aio.AsyncRedisCache` (``redis.asyncio``; one server, Cluster,
  Sentinel) and :class:`~wxdata.cache.backends.aio.AsyncTieredCache`, built from settings by
  :func:`build_async_cache`;
* single flight across tasks: concurrent misses of one key make one call, the others await its
  value (each still audited);
* a hit on the memory tier completes without suspending the task.

Transactions: inside an async unit of work (:func:`wxdata.aio.unit_of_work`) the rules are the
sync ones (READ COMMITTED and nothing the value depends on written: else bypass); inside a
transaction wxdata did not open, always bypass (fail closed). A hit's disclosure record goes
where the sync shell's goes (:func:`wxdata.aio.audit.write_disclosure`: one INSERT outside a unit of
work; in the transaction inside one, replayed on lane 2 if it rolls back; lane 2 in a read-only
one). Invalidation: committed writes of either shell arrive as write events, delivered after
COMMIT by the unit of work's after-commit hooks (nothing on rollback), and invalidate the sync
backend every async backend wraps before the write's call returns; the writes of an async unit
of work do it through the registered async cache (:func:`async_faces`), Redis through its
``redis.asyncio`` client, without blocking the event loop. Hand-written async writes queue
theirs with :func:`invalidate_after_commit`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import types
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from time import perf_counter
from typing import Any, Concatenate, ParamSpec, TypeVar

import psycopg
from psycopg.pq import TransactionStatus
from returns.result import Failure, Result, Success

from wxdata import telemetry
from wxdata._connstate import peek
from wxdata.aio.audit import write_disclosure
from wxdata.cache.backends.aio import (
    AsyncCache,
    AsyncMemoryCache,
    AsyncRedisCache,
    AsyncTieredCache,
)
from wxdata.cache.backends.base import Miss
from wxdata.cache.backends.clients import make_async_client
from wxdata.cache.backends.memory import MemoryCache
from wxdata.cache.backends.redis import RedisCache
from wxdata.cache.backends.tiered import TieredCache
from wxdata.cache.core import (
    FOLLOW_TIMEOUT,
    UNKEYABLE,
    Plan,
    check_options,
    follower_value,
    leader_share,
    plan,
    scope_of,
)
from wxdata.cache.costs import Costs
from wxdata.cache.invalidation import tags_for
from wxdata.cache.keys import KeyShape, UncacheableArgument, fast_signature
from wxdata.config import Settings, settings
from wxdata.context import ExecutionContext
from wxdata.core.drive import arun
from wxdata.errors import DataError, from_db_error
from wxdata.schema.spec import Entity
from wxdata.tx.events import WriteEvent, foreign_writes, settle_foreign
from wxdata.tx.scope import refusal_plan, role_refusal

log = logging.getLogger("wxdata.cache")

P = ParamSpec("P")
T = TypeVar("T")
AConn = psycopg.AsyncConnection[Any]
AFn = Callable[Concatenate[AConn, ExecutionContext, P], Awaitable[Result[T, DataError]]]
AsyncSource = AsyncCache | Callable[[], AsyncCache | None] | None
_CORO = types.CoroutineType
_IDLE = TransactionStatus.IDLE

__all__ = [
    "AsyncCache",
    "AsyncMemoryCache",
    "AsyncRedisCache",
    "AsyncTieredCache",
    "async_faces",
    "build_async_cache",
    "cached",
    "configure_async_cache",
    "default_async_cache",
    "invalidate_after_commit",
    "invalidate_event",
    "reset_async_cache",
    "using_async_cache",
]


# --- the connection: privilege, transaction, disclosure record -------------------------------

def _may_use(p: Plan, conn: AConn) -> bool:
    """Whether this call may read or fill the cache given the connection's transaction: the
    unit of work's rules inside one, and never inside a transaction wxdata did not open."""
    scope = scope_of(conn)
    if scope is not None:
        return p.usable(scope)
    return conn.pgconn.transaction_status == _IDLE


async def _recorded(p: Plan, c: Any, conn: AConn, ctx: ExecutionContext,
                    value: Any) -> Failure[DataError] | None:
    """Write the disclosure a hit owes; a Failure (and no data) when it could not be written."""
    due = p.hit_record(ctx, value)
    if due is None:
        return None
    written = await write_disclosure(conn, ctx, due)
    if isinstance(written, Failure):
        return Failure(written.failure())
    c.counters.add(p.label, "audited_hits")
    return None


# --- the decorator ---------------------------------------------------------------------------


def cached(
    entity: Entity[Any] | None = None,
    *,
    ttl: float | None = None,
    tags: Callable[..., Iterable[str]] | None = None,
    key: Callable[..., KeyShape] | None = None,
    depends: Sequence[Entity[Any]] = (),
    cache: AsyncSource = None,
    partition: Callable[[ExecutionContext], str] | None = None,
    name: str | None = None,
    unkeyed: Iterable[str] = (),
) -> Callable[[AFn[P, T]], AFn[P, T]]:
    """Cache the Success values of an ``async def (conn, ctx, ...) -> Result`` read.

    The arguments are those of the sync :func:`wxdata.cache.cached`; ``cache`` is an async
    backend or a provider of one (default: :func:`default_async_cache`). Refused at decoration
    time exactly as there (unprovable identity, unstorable value type, nothing to invalidate).
    """
    check_options(entity, ttl, tags, depends)
    exempt = frozenset(unkeyed)
    if cache is None:
        fixed: Any = None
        resolve: Callable[[], Any] = default_async_cache
    elif hasattr(cache, "lookup"):
        fixed = cache
        resolve = lambda: fixed  # noqa: E731
    else:
        fixed, resolve = None, cache

    def decorate(fn: AFn[P, T]) -> AFn[P, T]:
        p = plan(fn, entity=entity, ttl=ttl, tags=tags, key=key, depends=depends,
                 partition=partition, name=name, unkeyed=exempt)
        label, sensitive = p.label, p.sensitive
        ident, partitioned, part_of = p.ident, p.partitioned, p.part_of
        row_read = p.row_read

        async def call(costs: Costs | None, conn: AConn, ctx: ExecutionContext, args: Any,
                       kwargs: Any) -> Result[T, DataError]:
            """The function itself, its time reported to ``costs`` (when weighed)."""
            if costs is None:
                return await fn(conn, ctx, *args, **kwargs)
            started = perf_counter()
            result = await fn(conn, ctx, *args, **kwargs)
            costs.saw_call(perf_counter() - started)
            return result

        async def miss(c: Any, conn: AConn, ctx: ExecutionContext, k: str, token: Any,
                       costs: Costs | None, args: Any, kwargs: Any) -> Result[T, DataError]:
            flight, leader = c.flights.join(k)
            if flight is not None and not leader:
                try:
                    await asyncio.wait_for(asyncio.shield(flight.event), FOLLOW_TIMEOUT)
                except TimeoutError:
                    return await fn(conn, ctx, *args, **kwargs)
                if not flight.ok:
                    return await fn(conn, ctx, *args, **kwargs)
                c.counters.add(label, "coalesced")
                value = follower_value(flight)
                if p.may_owe(ctx):
                    refused = await _recorded(p, c, conn, ctx, value)
                    if refused is not None:
                        return refused
                return Success(value)
            ok = False
            shared: Any = None
            try:
                result = await call(costs, conn, ctx, args, kwargs)
                match result:
                    case Success(value) if _may_use(p, conn):
                        how = p.fill_plan(c, scope_of(conn), conn, ctx, value, args, kwargs)
                        ok = how is not None and await c.fill(
                            k, value, ttl=how.ttl, tag_ids=how.tag_ids, token=token, entity=label,
                            sensitive=sensitive)
                        if ok and flight is not None:
                            ok, shared = leader_share(value)
                return result
            finally:
                if flight is not None:
                    c.flights.land(k, flight, shared, ok)

        @functools.wraps(fn)
        async def wrapper(
            conn: AConn, ctx: ExecutionContext, /, *args: P.args, **kwargs: P.kwargs
        ) -> Result[T, DataError]:
            c = fixed if fixed is not None else resolve()
            if c is None:
                return await fn(conn, ctx, *args, **kwargs)
            if row_read and p.hit_costs_more(c.local, ctx, args):
                # wxdata's own by-id read, neither looked up nor filled: it checks the connection
                # and the context itself, so the cache checks nothing before handing it over
                c.counters.add(label, "bypasses")
                return await fn(conn, ctx, *args, **kwargs)
            state = peek(conn)
            facts = state.role if state is not None else None
            try:
                refusal = (role_refusal(facts, ctx) if facts is not None
                           else await arun(conn, refusal_plan(conn, ctx)))
            except psycopg.Error as exc:
                return Failure(from_db_error(exc))
            if refusal is not None:  # a cache hit must not serve a connection wxdata refuses
                return Failure(refusal)
            if foreign_writes:  # writes of transactions wxdata did not open, not yet seen ended
                settle_foreign()
            if not _may_use(p, conn) or (sensitive and p.refuses_backend(c.accepts_sensitive)):
                c.counters.add(label, "bypasses")
                return await fn(conn, ctx, *args, **kwargs)
            owes = p.may_owe(ctx)  # read once for the call
            # a hit owing a record is served only while cheaper (p.weighed)
            costs = p.weighed(c, ctx) if owes else None
            started = 0.0
            if costs is not None:
                if not costs.look_up():
                    c.counters.add(label, "calls_instead")
                    return await call(costs, conn, ctx, args, kwargs)
                started = perf_counter()
            keys = c.keys
            k = None
            identity = ident.identity  # the memoised key of a simple call, when still provable
            if identity is not None and identity.holds():
                sig = fast_signature(args, kwargs)
                if sig is not None:
                    k = keys.memo.get((ident.fp, part_of(ctx) if partitioned else "", sig))
            if k is None:
                try:
                    k = p.key(keys, conn, ctx, args, kwargs)
                except UncacheableArgument:
                    return UNKEYABLE
                if k is None:
                    c.counters.add(label, "bypasses")
                    return await fn(conn, ctx, *args, **kwargs)
            got = c.lookup(k, label, sensitive)
            if type(got) is _CORO:
                got = await got
            hit = type(got) is not Miss
            telemetry.cache_request(label, hit)
            if hit:
                if owes:
                    refused = await _recorded(p, c, conn, ctx, got.unwrap())
                    if refused is not None:
                        return refused
                    if costs is not None:
                        costs.saw_hit(perf_counter() - started)
                return got  # type: ignore[no-any-return]
            if got.token is None:
                return await call(costs, conn, ctx, args, kwargs)
            return await miss(c, conn, ctx, k, got.token, costs, args, kwargs)

        wrapper.__wxdata_cached__ = True  # type: ignore[attr-defined]
        wrapper.__wxdata_plan__ = p  # type: ignore[attr-defined]
        return wrapper

    return decorate


# --- invalidation ----------------------------------------------------------------------------

_ASYNC_CACHES: list[AsyncCache] = []


async def invalidate_event(event: WriteEvent, caches: Iterable[AsyncCache] | None = None) -> int:
    """Invalidate a committed write's tags in the async caches (default: the process's).

    Errors are logged and never fail the write (it has committed); a Redis backend then owes a
    flush (see the Redis backend), so no stale entry outlives the fault.
    """
    tags = tags_for(event)
    removed = 0
    for c in list(caches if caches is not None else _ASYNC_CACHES):
        try:
            removed += await c.invalidate([c.keys.tag_id(t) for t in tags])
        except Exception as exc:  # noqa: BLE001 - never fail a committed write; logged PHI-safely
            log.error("cache invalidation failed for %s (%s)", event.entity, type(exc).__name__)
    return removed


def async_faces() -> list[AsyncCache]:
    """The registered async caches: committed writes of async units of work invalidate their
    backends through them (:func:`wxdata.cache.invalidation.on_write_async`)."""
    return list(_ASYNC_CACHES)


def invalidate_after_commit(register: Callable[[Callable[[], Awaitable[Any]]], Any],
                            event: WriteEvent) -> None:
    """Queue the invalidation of ``event`` on a unit of work's after-commit hooks
    (``register``); dropped with the hooks if the unit of work rolls back."""
    register(lambda: invalidate_event(event))


# --- building --------------------------------------------------------------------------------

_default: list[AsyncCache | None] = []


def build_async_cache(config: Settings | None = None, *, phi: str = "encrypt",
                      subscribe_writes: bool = True, **options: Any) -> AsyncCache | None:
    """An async cache for the settings (None when caching is off), refused like the sync one.

    The sync backend it wraps is built by :func:`wxdata.cache.factory.build_cache` (same
    namespace, key-hashing key, envelope and topology) and receives sync writes' invalidations;
    the async cache is registered for async writes' (:func:`invalidate_event`). ``options``
    go to :func:`~wxdata.cache.factory.build_cache` (``prefix``, ``publish_stats_every``...).
    Refused (``CachePolicyError``) exactly as the sync cache is.
    """
    from wxdata.cache.factory import build_cache

    config = config or settings()
    sync = build_cache(config, phi=phi, subscribe_writes=subscribe_writes, **options)
    if sync is None:
        return None
    made: AsyncCache
    url = config.redis_url or ""  # set whenever the backend uses Redis (build_cache checked it)
    if isinstance(sync, MemoryCache):
        made = AsyncMemoryCache(sync)
    elif isinstance(sync, RedisCache):
        made = AsyncRedisCache(sync, make_async_client(url))
    elif isinstance(sync, TieredCache):
        made = AsyncTieredCache(sync, AsyncRedisCache(sync.redis, make_async_client(url)))
    else:
        raise TypeError(f"no async face for a {type(sync).__name__}")
    if subscribe_writes:
        _ASYNC_CACHES.append(made)
    return made


def default_async_cache() -> AsyncCache | None:
    """The process's async cache, built from settings on first use (None when caching is off)."""
    if not _default:
        _default.append(build_async_cache())
    return _default[0]


def reset_async_cache() -> None:
    """Forget the process's async cache: the next use builds it from settings again (tests, and
    applications that reload their settings). ``configure_async_cache(None)`` turns caching off."""
    previous = _default[0] if _default else None
    _default.clear()
    if previous is not None and previous in _ASYNC_CACHES:
        _ASYNC_CACHES.remove(previous)


@contextlib.contextmanager
def using_async_cache(cache: AsyncCache | None) -> Iterator[AsyncCache | None]:
    """The async shell's :func:`wxdata.cache.using_cache`: ``cache`` is the process's async cache
    inside the block (None: caching off); on leaving, exactly what was there is back: the cache
    it replaced, caching off, or none built yet (the next use builds one from the settings)."""
    before = list(_default)
    configure_async_cache(cache)
    try:
        yield cache
    finally:
        if before:
            configure_async_cache(before[0])
        else:
            reset_async_cache()
        restored = before[0] if before else None
        if cache is not None and cache is not restored and cache in _ASYNC_CACHES:
            _ASYNC_CACHES.remove(cache)  # also when the block replaced it with another


def configure_async_cache(cache: AsyncCache | None) -> AsyncCache | None:
    """Replace the process's async cache (tests, embedding applications); returns the previous:
    None both when caching was off and when none had been built (put one back for a while with
    :func:`using_async_cache`, which tells them apart)."""
    previous = _default[0] if _default else None
    _default[:] = [cache]
    if previous is not None and previous in _ASYNC_CACHES:
        _ASYNC_CACHES.remove(previous)
    if cache is not None and cache not in _ASYNC_CACHES:
        _ASYNC_CACHES.append(cache)
    return previous
