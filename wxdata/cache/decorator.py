"""``cached``: cache the ``Success`` values of any ``(conn, ctx, ...) -> Result`` read.

Order contract (tested): ``@audited`` (outermost) -> ``@cached`` -> ``@transactional`` -> the query.
A hit returns without opening a transaction; a miss runs the function (and its transaction) and
stores the value if nothing it depends on was invalidated meanwhile.

Per call:

1. *Bypass* (neither read nor fill) when the cache is off; inside a unit of work that has written
   the entity (or a ``depends`` entity; any entity when none is declared); inside a REPEATABLE READ
   or SERIALIZABLE unit of work (its snapshot may predate a commit, and its predicate locks must
   see the read); for sensitive data when the backend refuses it (Redis without encryption).
2. *Key*: a full hash of the canonical call, with the row-security partition of the context
   (:mod:`wxdata.cache.keys`).
3. *Hit*: ``Success(value)``. When the entity's reads are audited and no ``audited`` decorator owns
   the call's reads, one READ record (ids and subjects from the value, ``{"cache": "hit"}``) is
   written like any disclosure: a plain INSERT outside a unit of work, in the transaction inside
   one (replayed on lane 2 if it rolls back), on lane 2 in a read-only one. If it cannot be
   written the call fails — no record, no data.
4. *Miss*: one caller per key computes (single flight); the others wait for its value (each still
   audited as a hit). ``Failure`` is never cached; a value holding a secret column is refused. The
   fill is guarded by the token of the miss, so a value read before a writer's commit is dropped
   if the writer's invalidation came first.

Invalidation is not done here: committed writes arrive as :class:`~wxdata.tx.events.WriteEvent`
after COMMIT (:mod:`wxdata.cache.invalidation`). Writes made with hand-written SQL must be
announced with :func:`wxdata.tx.events.announce_write` (which also marks the unit of work).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar, cast
from uuid import UUID

import psycopg
from returns.result import Failure, Result, Success

from wxdata import telemetry
from wxdata.audit.decorator import extract, rows_in
from wxdata.audit.log import build_record, write_record
from wxdata.audit.ownership import reads_owned
from wxdata.audit.record import AuditAction
from wxdata.cache.backends.base import CacheManager, Miss
from wxdata.cache.identity import Identity, UnprovableIdentity, identity_of
from wxdata.cache.keys import (
    LIST,
    KeyShape,
    call_text,
    entity_tag,
    fast_signature,
    fingerprint,
    needs_partition,
    partition_of,
    row_tag,
)
from wxdata.cache.policy import is_sensitive, ttl_for
from wxdata.cache.returns import check_return_type
from wxdata.cache.serde import Unserialisable, find_secret, is_frozen, register_entity, thaw
from wxdata.config import settings
from wxdata.context import ExecutionContext
from wxdata.errors import DataError, from_db_error
from wxdata.schema.spec import Entity, registered
from wxdata.tx.scope import Isolation, Scope, context_refusal, current_scope

log = logging.getLogger("wxdata.cache")

P = ParamSpec("P")
T = TypeVar("T")
Conn = psycopg.Connection[Any]
Fn = Callable[Concatenate[Conn, ExecutionContext, P], Result[T, DataError]]
CacheSource = CacheManager | Callable[[], CacheManager | None] | None

#: How long a caller waits for another caller's computation of the same key.
FOLLOW_TIMEOUT = 30.0
_RC = (None, Isolation.READ_COMMITTED)
_WARNED: set[str] = set()
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _default() -> CacheManager | None:
    from wxdata.cache.factory import default_cache

    return default_cache()


def _resolver(cache: CacheSource) -> tuple[CacheManager | None, Callable[[], CacheManager | None]]:
    """(the cache if fixed at decoration time, else None; a resolver for the other cases)."""
    if cache is None:
        return None, _default
    if hasattr(cache, "lookup"):
        fixed = cast(CacheManager, cache)
        return fixed, lambda: fixed
    return None, cache


def _entity_of_value(value: Any) -> Entity[Any] | None:
    by_type = {e.row_type: e for e in registered()}
    for row in rows_in(value):
        spec = by_type.get(type(row))
        if spec is not None:
            return spec
    return None


def _normal_tag(tag: str) -> str:
    """Spell any UUID inside a tag canonically (``student:ABC...`` == ``student:abc-...``)."""
    parts = tag.split(":")
    for i, part in enumerate(parts):
        if 32 <= len(part) <= 36:
            with contextlib.suppress(ValueError):
                parts[i] = str(UUID(part))
    return ":".join(parts)


def audit_hit(conn: Conn, ctx: ExecutionContext, entity: Entity[Any] | None, value: Any,
              label: str) -> Failure[DataError] | bool:
    """Record a cache hit as a disclosure if due: True if recorded, a Failure if it could not be."""
    config = settings()
    if not (config.audit_enabled and config.audit_phi_access) or reads_owned():
        return False
    spec = entity if entity is not None else _entity_of_value(value)
    if spec is None or not spec.audit_reads:
        return False
    found = extract(spec, value)
    if not found.anything:
        return False
    record = build_record(ctx, spec, AuditAction.READ, ids=found.ids, subjects=found.subjects,
                          fields=found.fields, metadata={"cache": "hit", "operation": label})
    written = write_record(conn, ctx, record, disclosure=True)
    if isinstance(written, Failure):
        return Failure(written.failure())
    return True


def _label(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of a function, bound method or ``functools.partial``."""
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    module = getattr(target, "__module__", None) or type(target).__module__
    return f"{module}.{getattr(target, '__qualname__', type(target).__qualname__)}"


class _Ident:
    """The function's key fingerprint, recomputed if a pinned closure cell or default moved."""

    __slots__ = ("_fn", "_lock", "_qual", "_schema", "_unkeyed", "fp", "identity")

    def __init__(self, schema: str, fn: Callable[..., Any], qual: str,
                 unkeyed: frozenset[str]) -> None:
        self._schema, self._fn, self._qual, self._unkeyed = schema, fn, qual, unkeyed
        self._lock = threading.Lock()
        self.identity: Identity | None = None
        self.fp: str | None = None
        self._compute()

    def _compute(self) -> None:
        identity = identity_of(self._fn, self._qual, self._unkeyed)
        self.identity = identity
        self.fp = hashlib.sha256(f"{self._schema}|{identity.digest}".encode()).hexdigest()

    def current(self) -> str | None:
        """The fingerprint for this call; None when the function can no longer be keyed."""
        identity = self.identity
        if identity is not None and identity.holds():
            return self.fp
        with self._lock:
            try:
                self._compute()
            except UnprovableIdentity as exc:
                self.identity, self.fp = None, None
                log.error("cache: %s bypassed: %s %s", self._qual, exc.part, exc.reason)
        return self.fp


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
    if entity is None and tags is None and not depends:
        raise ValueError("cached() needs an entity, depends= or tags=: something must invalidate it")
    if ttl is not None and ttl <= 0:
        raise ValueError("cache TTL must be positive")
    sensitive = is_sensitive(entity) or any(is_sensitive(d) for d in depends)
    watched = tuple(dict.fromkeys(e.name for e in (entity, *depends) if e is not None))
    depend_tags = [entity_tag(d) for d in depends]
    partitioned = partition is not None or any(needs_partition(e) for e in (entity, *depends))
    part_of = partition or partition_of
    schema = "|".join(fingerprint(e) for e in (entity, *depends))
    label = entity.name if entity is not None else "_"
    audits = entity is None or entity.audit_reads
    for e in (entity, *depends):
        if e is not None:
            register_entity(e)
    fixed, resolve = _resolver(cache)
    exempt = frozenset(unkeyed)

    def decorate(fn: Fn[P, T]) -> Fn[P, T]:
        qual = name or _label(fn)
        signature = inspect.signature(fn)
        params = list(signature.parameters.values())[:2]
        if len(params) < 2 or any(p.kind not in _POSITIONAL for p in params):
            raise TypeError(f"cannot cache {qual}: it must take (conn, ctx, ...) positionally")
        check_return_type(fn, qual)
        ident = _Ident(schema, fn, qual, exempt)  # raises UnprovableIdentity: refused at decoration

        def usable(scope: Scope) -> bool:
            if scope.isolation not in _RC:
                return False
            if entity is None:
                return not any(f.written for f in scope.frames) and not any(
                    scope.has_written(w) for w in watched)
            return not any(scope.has_written(w) for w in watched)

        def tag_list(conn: Conn, ctx: ExecutionContext, shape: KeyShape, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> list[str]:
            if tags is not None:
                chosen = [_normal_tag(str(t)) for t in tags(conn, ctx, *args, **kwargs)]
            elif entity is not None and shape.kind == "id" and shape.id is not None:
                chosen = [row_tag(entity, shape.id)]
            elif entity is not None:
                chosen = [entity_tag(entity)]
            else:
                chosen = []
            return list(dict.fromkeys([*chosen, *depend_tags]))

        def store(c: CacheManager, conn: Conn, ctx: ExecutionContext, k: str, shape: KeyShape,
                  token: Any, value: Any, args: tuple[Any, ...],
                  kwargs: dict[str, Any]) -> bool:
            secret = find_secret(value)
            if secret is not None:
                c.counters.add(label, "not_cacheable")
                log.error("cache: %s returned a secret column; value not cached", qual)
                return False
            scope = current_scope(conn)
            if scope is not None and not usable(scope):
                return False
            ids = [c.keys.tag_id(t) for t in tag_list(conn, ctx, shape, args, kwargs)]
            life = ttl_for(entity, ttl, getattr(c, "default_ttl", settings().cache_default_ttl))
            return c.fill(k, value, ttl=life, tag_ids=ids, token=token, entity=label,
                          sensitive=sensitive)

        @functools.wraps(fn)
        def wrapper(
            conn: Conn, ctx: ExecutionContext, /, *args: P.args, **kwargs: P.kwargs
        ) -> Result[T, DataError]:
            c = fixed if fixed is not None else resolve()
            if c is None:
                return fn(conn, ctx, *args, **kwargs)
            try:
                refusal = context_refusal(conn, ctx)
            except psycopg.Error as exc:
                return Failure(from_db_error(exc))
            if refusal is not None:  # a cache hit must not serve a connection wxdata refuses
                return Failure(refusal)
            scope = current_scope(conn)
            if (scope is not None and not usable(scope)) or (
                    sensitive and not c.accepts_sensitive):
                if sensitive and not c.accepts_sensitive and qual not in _WARNED:
                    _WARNED.add(qual)
                    log.warning("cache: %s reads sensitive data; this backend does not store it",
                                qual)
                c.counters.add(label, "bypasses")
                return fn(conn, ctx, *args, **kwargs)
            fp = ident.current()
            if fp is None:  # a closure cell or default was rebound to something unprovable
                c.counters.add(label, "bypasses")
                return fn(conn, ctx, *args, **kwargs)
            part = part_of(ctx) if partitioned else ""
            sig = fast_signature(args, kwargs)
            memo_key = (fp, part, sig) if sig is not None else None
            k = c.keys.memo.get(memo_key) if memo_key is not None else None
            shape = None
            if k is None:
                try:
                    bound = signature.bind(conn, ctx, *args, **kwargs)
                except TypeError:  # the call does not fit the signature: let the function say so
                    c.counters.add(label, "bypasses")
                    return fn(conn, ctx, *args, **kwargs)
                bound.apply_defaults()  # f(x) and f(x, page=1) are one call; defaults are keyed
                named = dict(list(bound.arguments.items())[2:])
                try:
                    shape = LIST if key is None else key(conn, ctx, *args, **kwargs)
                    text = call_text(qual, fp, part, (), named)
                    k = c.keys.key(entity, sensitive, shape, text)
                except ValueError:  # an id no key can show (the read itself will say why)
                    c.counters.add(label, "bypasses")
                    return fn(conn, ctx, *args, **kwargs)
                if memo_key is not None:
                    c.keys.remember(memo_key, k)
            got = c.lookup(k, label, sensitive)
            telemetry.cache_request(label, type(got) is not Miss)
            if type(got) is not Miss:
                if audits:
                    recorded = audit_hit(conn, ctx, entity, got.unwrap(), qual)
                    if isinstance(recorded, Failure):
                        return recorded
                    if recorded:
                        c.counters.add(label, "audited_hits")
                return cast(Result[T, DataError], got)
            token = got.token
            if token is None:
                return fn(conn, ctx, *args, **kwargs)
            if shape is None:
                shape = LIST if key is None else key(conn, ctx, *args, **kwargs)
            flight, leader = c.flights.join(k)
            if flight is not None and not leader:
                if flight.event.wait(FOLLOW_TIMEOUT) and flight.ok:
                    c.counters.add(label, "coalesced")
                    value = flight.value
                    if not is_frozen(value):
                        value = thaw(value)
                    if audits:
                        recorded = audit_hit(conn, ctx, entity, value, qual)
                        if isinstance(recorded, Failure):
                            return recorded
                        if recorded:
                            c.counters.add(label, "audited_hits")
                    return Success(value)
                return fn(conn, ctx, *args, **kwargs)
            ok = False
            shared: Any = None
            try:
                result = fn(conn, ctx, *args, **kwargs)
                if isinstance(result, Success):
                    value = result.unwrap()
                    ok = store(c, conn, ctx, k, shape, token, value, args, kwargs)
                    if ok and flight is not None:
                        try:
                            shared = value if is_frozen(value) else thaw(value)
                        except Unserialisable:
                            ok = False
                return result
            finally:
                if flight is not None:
                    c.flights.land(k, flight, shared, ok)

        wrapper.__wxdata_cached__ = True  # type: ignore[attr-defined]
        return wrapper

    return decorate
