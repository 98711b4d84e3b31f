"""``cached``: cache the ``Success`` values of any ``(conn, ctx, ...) -> Result`` read.

Order contract (tested): ``@audited`` (outermost) -> ``@cached`` -> ``@transactional`` -> the query.
A hit returns without opening a transaction; a miss runs the function (and its transaction) and
stores the value if nothing it depends on was invalidated meanwhile.

Per call:

1. *Bypass* (neither read nor fill) when the cache is off; inside a unit of work that has written
   the entity (or a ``depends`` entity; any entity when none is declared); inside a REPEATABLE READ
   or SERIALIZABLE unit of work (its snapshot may predate a commit, and its predicate locks must
   see the read); inside a transaction wxdata did not open (no unit of work, the connection not
   idle: its snapshot may predate a commit, its own uncommitted writes are in it); for sensitive
   data when the backend refuses it (Redis without encryption); for
   wxdata's own by-id read with its disclosure due, on a backend outside the process (a hit there
   would cost more than the read: :meth:`~wxdata.cache.core.Plan.hit_costs_more`); for any
   other call whose hit owes a disclosure record, while the hit (lookup and record) has been
   measured dearer than the call itself (:mod:`wxdata.cache.costs`; the function runs, as on a
   miss, and nothing is stored; counted in ``calls_instead``).
2. *Key*: a full hash of the canonical call, with the row-security partition of the context
   (:mod:`wxdata.cache.keys`).
3. *Hit*: ``Success(value)``. When the read would have recorded itself (the entity's reads are
   audited, or the context breaks the glass: :func:`~wxdata.audit.ownership.reads_recorded`) and
   no ``audited`` decorator owns the call's reads, one READ record (ids and subjects from the
   value, ``{"cache": "hit"}``) is written like any disclosure: a plain INSERT outside a unit of
   work, in the transaction inside one (replayed on lane 2 if it rolls back), on lane 2 in a
   read-only one. If it cannot be written the call fails — no record, no data.
4. *Miss*: one caller per key computes (single flight); the others wait for its value (each still
   audited as a hit). ``Failure`` is never cached; a value holding a secret column is refused. The
   fill is guarded by the token of the miss, so a value read before a writer's commit is dropped
   if the writer's invalidation came first.

The decisions (key, bypass, fill, audit duty) live in :mod:`wxdata.cache.core`, shared with the
async shell (:mod:`wxdata.cache.aio`); this module only does the sync I/O. A call whose arguments
have no canonical key form fails with :data:`~wxdata.cache.core.UNKEYABLE` (never a key that
could collide).

Invalidation is not done here: committed writes arrive as :class:`~wxdata.tx.events.WriteEvent`
after COMMIT (:mod:`wxdata.cache.invalidation`). A hand-written change under ``audited`` is
announced by the decorator (the rows and students its value names); other writes made with
hand-written SQL must be announced with :func:`wxdata.tx.events.announce_write` (which also marks
the unit of work).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Sequence
from time import perf_counter
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

import psycopg
from returns.result import Failure, Result, Success

from wxdata import telemetry
from wxdata._connstate import peek
from wxdata.audit.log import write_disclosure
from wxdata.cache.backends.base import CacheManager, Miss
from wxdata.cache.core import (
    FOLLOW_TIMEOUT,
    UNKEYABLE,
    Plan,
    check_options,
    follower_value,
    hit_record,
    label_of,
    leader_share,
    plan,
    scope_of,
)
from wxdata.cache.costs import Costs
from wxdata.cache.factory import default_cache
from wxdata.cache.keys import KeyShape, UncacheableArgument, fast_signature
from wxdata.context import ExecutionContext
from wxdata.errors import DataError, from_db_error
from wxdata.schema.spec import Entity
from wxdata.tx.events import foreign_writes, settle_foreign
from wxdata.tx.scope import context_refusal, current_scope, role_refusal

log = logging.getLogger("wxdata.cache")

P = ParamSpec("P")
T = TypeVar("T")
Conn = psycopg.Connection[Any]
Fn = Callable[Concatenate[Conn, ExecutionContext, P], Result[T, DataError]]
CacheSource = CacheManager | Callable[[], CacheManager | None] | None
_IDLE = psycopg.pq.TransactionStatus.IDLE

__all__ = ["FOLLOW_TIMEOUT", "audit_hit", "cached", "label_of"]


def _resolver(cache: Any,
              default: Callable[[], Any] = default_cache) -> tuple[Any, Callable[[], Any]]:
    """(the cache if fixed at decoration time, else None; a resolver for the other cases)."""
    if cache is None:
        return None, default
    if hasattr(cache, "lookup"):
        fixed = cache
        return fixed, lambda: fixed
    return None, cast(Callable[[], Any], cache)


def audit_hit(conn: Conn, ctx: ExecutionContext, entity: Entity[Any] | None, value: Any,
              label: str) -> Failure[DataError] | bool:
    """Record a cache hit as a disclosure if due: True if recorded, a Failure if it could not be."""
    due = hit_record(ctx, entity, value, label)
    if due is None:
        return False
    written = write_disclosure(conn, ctx, due)
    if isinstance(written, Failure):
        return Failure(written.failure())
    return True


def _recorded(p: Plan, c: CacheManager, conn: Conn, ctx: ExecutionContext,
              value: Any) -> Failure[DataError] | None:
    """Write the disclosure a hit owes (None when written or none due)."""
    due = p.hit_record(ctx, value)
    if due is None:
        return None
    written = write_disclosure(conn, ctx, due)
    if isinstance(written, Failure):
        return Failure(written.failure())
    c.counters.add(p.label, "audited_hits")
    return None


def cached(
    entity: Entity[Any] | None = None,
    *,
    ttl: float | None = None,
    tags: Callable[..., Iterable[str]] | None = None,
    key: Callable[..., KeyShape] | None = None,
    depends: Sequence[Entity[Any]] = (),
    cache: CacheSource = None,
    partition: Callable[[ExecutionContext], str] | None = None,
    name: str | None = None,
    unkeyed: Iterable[str] = (),
) -> Callable[[Fn[P, T]], Fn[P, T]]:
    """Cache the Success values of a ``(conn, ctx, ...) -> Result`` read (module docstring).

    ``entity``: what the function returns (TTL class, sensitivity, audit, default tags).
    ``ttl``: seconds (PHI capped, see :mod:`wxdata.cache.policy`). ``tags(conn, ctx, *args,
    **kwargs)``: the tags the value depends on (``entity:``/``row:``/``student:`` tags); default:
    the row tag for a by-id ``key`` shape, else the entity tag. ``key(conn, ctx, *args, **kwargs)``:
    the readable key shape (:func:`wxdata.cache.keys.by_id`, ``summary``, ``search``; default
    list). ``depends``: other entities whose writes invalidate the value. ``cache``: a backend or
    a provider (default: the one built from settings). ``partition``: what of the context can
    change the rows (default: the row-security scope). ``name``: stable function name in keys.
    ``unkeyed``: closure variables or globals declared not to change any result (counters,
    events, loggers), left out of the function's identity.

    Refused at decoration time (``docs/cache-keys.md``): a function whose identity cannot be
    proven (:class:`~wxdata.cache.identity.UnprovableIdentity`: a closure, default, partial or
    bound instance holding mutable state) and one whose declared value type the cache cannot
    store (:class:`~wxdata.cache.returns.UnserialisableReturn`).
    """
    check_options(entity, ttl, tags, depends)
    fixed, resolve = _resolver(cache)
    exempt = frozenset(unkeyed)

    def decorate(fn: Fn[P, T]) -> Fn[P, T]:
        p = plan(fn, entity=entity, ttl=ttl, tags=tags, key=key, depends=depends,
                 partition=partition, name=name, unkeyed=exempt)
        label, sensitive = p.label, p.sensitive
        usable, make_key = p.usable, p.key
        ident, partitioned, part_of = p.ident, p.partitioned, p.part_of
        row_read = p.row_read

        def call(costs: Costs | None, conn: Conn, ctx: ExecutionContext, args: Any,
                 kwargs: Any) -> Result[T, DataError]:
            """The function itself, its time reported to ``costs`` (when weighed)."""
            if costs is None:
                return fn(conn, ctx, *args, **kwargs)
            started = perf_counter()
            result = fn(conn, ctx, *args, **kwargs)
            costs.saw_call(perf_counter() - started)
            return result

        def miss(c: CacheManager, conn: Conn, ctx: ExecutionContext, k: str, token: Any,
                 costs: Costs | None, args: Any, kwargs: Any) -> Result[T, DataError]:
            flight, leader = c.flights.join(k)
            if flight is not None and not leader:
                if flight.event.wait(FOLLOW_TIMEOUT) and flight.ok:
                    c.counters.add(label, "coalesced")
                    value = follower_value(flight)
                    if p.may_owe(ctx):
                        refused = _recorded(p, c, conn, ctx, value)
                        if refused is not None:
                            return refused
                    return Success(value)
                return fn(conn, ctx, *args, **kwargs)
            ok = False
            shared: Any = None
            try:
                result = call(costs, conn, ctx, args, kwargs)
                match result:
                    case Success(value):
                        how = p.fill_plan(c, scope_of(conn), conn, ctx, value, args, kwargs)
                        ok = how is not None and c.fill(
                            k, value, ttl=how.ttl, tag_ids=how.tag_ids, token=token, entity=label,
                            sensitive=sensitive)
                        if ok and flight is not None:
                            ok, shared = leader_share(value)
                return result
            finally:
                if flight is not None:
                    c.flights.land(k, flight, shared, ok)

        @functools.wraps(fn)
        def wrapper(
            conn: Conn, ctx: ExecutionContext, /, *args: P.args, **kwargs: P.kwargs
        ) -> Result[T, DataError]:
            c = fixed if fixed is not None else resolve()
            if c is None:
                return fn(conn, ctx, *args, **kwargs)
            if row_read and p.hit_costs_more(c.local, ctx, args):
                # wxdata's own by-id read, neither looked up nor filled: it checks the connection
                # and the context itself, so the cache checks nothing before handing it over
                c.counters.add(label, "bypasses")
                return fn(conn, ctx, *args, **kwargs)
            state = peek(conn)  # the connection's role and unit of work, read once
            facts = state.role if state is not None else None
            try:
                refusal = (role_refusal(facts, ctx) if facts is not None
                           else context_refusal(conn, ctx))
            except psycopg.Error as exc:
                return Failure(from_db_error(exc))
            scope = current_scope(conn) if state is not None and state.scope is not None else None
            if refusal is not None:  # a cache hit must not serve a connection wxdata refuses
                return Failure(refusal)
            if foreign_writes:  # writes of transactions wxdata did not open, not yet seen ended
                settle_foreign()
            if (scope is not None and not usable(scope)) or (
                    scope is None and conn.pgconn.transaction_status != _IDLE) or (
                    sensitive and p.refuses_backend(c.accepts_sensitive)):
                c.counters.add(label, "bypasses")
                return fn(conn, ctx, *args, **kwargs)
            owes = p.may_owe(ctx)  # read once for the call
            # a hit owing a record is served only while cheaper (p.weighed)
            costs = p.weighed(c, ctx) if owes else None
            started = 0.0
            if costs is not None:
                if not costs.look_up():
                    c.counters.add(label, "calls_instead")
                    return call(costs, conn, ctx, args, kwargs)
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
                    k = make_key(keys, conn, ctx, args, kwargs)
                except UncacheableArgument:
                    return UNKEYABLE
                if k is None:
                    c.counters.add(label, "bypasses")
                    return fn(conn, ctx, *args, **kwargs)
            got = c.lookup(k, label, sensitive)
            hit = type(got) is not Miss
            telemetry.cache_request(label, hit)
            if hit:
                if owes:
                    refused = _recorded(p, c, conn, ctx, got.unwrap())
                    if refused is not None:
                        return refused
                    if costs is not None:
                        costs.saw_hit(perf_counter() - started)
                return got  # type: ignore[no-any-return]
            if got.token is None:
                return call(costs, conn, ctx, args, kwargs)
            return miss(c, conn, ctx, k, got.token, costs, args, kwargs)

        wrapper.__wxdata_cached__ = True  # type: ignore[attr-defined]
        wrapper.__wxdata_plan__ = p  # type: ignore[attr-defined]
        return wrapper

    return decorate
