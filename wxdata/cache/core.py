"""The cache's decisions, shared by the sync and the async ``cached`` (no I/O here).

A decorated function's :class:`Plan` is built once, when it is decorated: its identity (refused
if unprovable), its sensitivity, TTL class, tags, partition rule and audit duty. Per call the
shells ask the plan, in order:

1. :meth:`Plan.usable` — may this unit of work read or fill the cache (isolation, own writes)?
2. :meth:`Plan.key` — the entry key (memoised for simple arguments); ``None`` means *bypass*
   (the function's identity can no longer be proven, or the call does not fit its signature);
   an argument with no canonical form is a typed ``Failure`` (:data:`UNKEYABLE`), never a key
   that could collide;
3. on a hit, :meth:`Plan.hit_record` — the disclosure record due for the value (or none);
4. on a miss, :meth:`Plan.fill_plan` — whether and how to store the value (secret check, tag ids,
   TTL with the PHI ceiling).

The shells only do I/O: the sync shell (:mod:`wxdata.cache.decorator`) with psycopg's
``Connection`` and the backends' sync faces, the async shell (:mod:`wxdata.cache.aio`) with
``AsyncConnection`` and the async backends. Single-flight bookkeeping (:class:`Flights`) is one
implementation with a thread flavour and a task flavour.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from uuid import UUID

from returns.result import Failure

from wxdata import _connstate
from wxdata._operations import ROW_READ
from wxdata.audit.decorator import RowReads, extract, rows_in
from wxdata.audit.log import DueRecord, due_read
from wxdata.audit.ownership import reads_owned, reads_recorded
from wxdata.cache.costs import Costs
from wxdata.cache.identity import Identity, UnprovableIdentity, identity_of
from wxdata.cache.invalidation import held_by_foreign
from wxdata.cache.keys import (
    LIST,
    KeyBuilder,
    KeyShape,
    UncacheableArgument,
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
from wxdata.errors import DataError, InvalidQuery
from wxdata.schema.spec import Entity, registered
from wxdata.tx.events import foreign_writes
from wxdata.tx.scope import Isolation, current_scope, role_refusal

log = logging.getLogger("wxdata.cache")

#: How long a caller waits for another caller's computation of the same key.
FOLLOW_TIMEOUT = 30.0
#: The Failure of a call whose arguments have no canonical key text (no key, no collision).
UNKEYABLE = Failure(InvalidQuery(field="arguments", rule="have no canonical cache-key form"))
_RC = (None, Isolation.READ_COMMITTED)
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_WARNED: set[str] = set()


def label_of(fn: Callable[..., Any]) -> str:
    """``module.qualname`` of a function, bound method or ``functools.partial``."""
    target: Any = fn
    while isinstance(target, functools.partial):
        target = target.func
    module = getattr(target, "__module__", None) or type(target).__module__
    return f"{module}.{getattr(target, '__qualname__', type(target).__qualname__)}"


def normal_tag(tag: str) -> str:
    """Spell any UUID inside a tag canonically (``student:ABC...`` == ``student:abc-...``)."""
    parts = tag.split(":")
    for i, part in enumerate(parts):
        if 32 <= len(part) <= 36:
            with contextlib.suppress(ValueError):
                parts[i] = str(UUID(part))
    return ":".join(parts)


def entity_of_value(value: Any) -> Entity[Any] | None:
    """The registered entity of the first row found in ``value`` (None: no known row)."""
    by_type = {e.row_type: e for e in registered()}
    for row in rows_in(value):
        spec = by_type.get(type(row))
        if spec is not None:
            return spec
    return None


def hit_record(ctx: ExecutionContext, entity: Entity[Any] | None, value: Any,
               label: str) -> DueRecord | None:
    """The READ record a cache hit on ``value`` owes (None when none is due): the record the read
    itself would have written (:func:`~wxdata.audit.ownership.reads_recorded`)."""
    spec = entity if entity is not None else entity_of_value(value)
    if spec is None or not reads_recorded(spec, ctx):
        return None
    found = extract(spec, value)
    if not found.anything:
        return None
    return due_read(ctx, spec, found.ids, found.subjects, found.fields, _hit_metadata(label))


def _hit_metadata(label: str) -> tuple[tuple[str, str], ...]:
    """What a hit's record says of itself: a cache hit, of the operation ``label``."""
    return (("cache", "hit"), ("operation", label))


UNKNOWN: Any = object()  # the connection's role has not been asked yet (the shell asks, once)


def known_refusal(conn: Any, ctx: ExecutionContext) -> DataError | Any | None:
    """The connection refusal (:func:`~wxdata.tx.scope.context_refusal`'s rule) decided from
    what wxdata already knows of the connection's role, without driving a plan; :data:`UNKNOWN`
    when the role must first be asked (one statement, sent by the shell)."""
    state = _connstate.peek(conn)
    facts = state.role if state is not None else None
    if facts is None:
        return UNKNOWN
    return role_refusal(facts, ctx)


def scope_of(conn: Any) -> Any:
    """The unit of work open on ``conn`` (sync or async; owner-thread checked), else None."""
    state = _connstate.peek(conn)
    if state is None or state.scope is None:
        return None
    return current_scope(conn)


def shareable(value: Any) -> Any:
    """``value`` as it may be handed to another caller (raises Unserialisable)."""
    return value if is_frozen(value) else thaw(value)


class Ident:
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


class FillPlan:
    """What a miss may store: the tag ids and the lifetime (built only for storable values)."""

    __slots__ = ("tag_ids", "ttl")

    def __init__(self, tag_ids: list[str], ttl: float) -> None:
        self.tag_ids = tag_ids
        self.ttl = ttl


class Plan:
    """Everything decided about a cached function at decoration time, and its per-call rules."""

    __slots__ = ("_costs", "_rows", "audits", "depend_tags", "entity", "fixed_ttl", "ident", "key_fn",
                 "label", "part_of", "partitioned", "qual", "row_entity", "row_read", "sensitive",
                 "signature", "tags_fn", "watched")

    def __init__(self, fn: Callable[..., Any], *, entity: Entity[Any] | None, ttl: float | None,
                 tags: Callable[..., Iterable[str]] | None, key: Callable[..., KeyShape] | None,
                 depends: Sequence[Entity[Any]], partition: Callable[[ExecutionContext], str] | None,
                 name: str | None, unkeyed: frozenset[str], want: str = "function") -> None:
        self.entity = entity
        self.sensitive = is_sensitive(entity) or any(is_sensitive(d) for d in depends)
        self.watched = tuple(dict.fromkeys(e.name for e in (entity, *depends) if e is not None))
        self.depend_tags = [entity_tag(d) for d in depends]
        self.partitioned = partition is not None or any(
            needs_partition(e) for e in (entity, *depends))
        self.part_of = partition or partition_of
        self.label = entity.name if entity is not None else "_"
        self.audits = entity is None or entity.audit_reads
        # wxdata's own by-id read: its entity is the binding's (or the first argument's, per call)
        self.row_read = bool(getattr(fn, ROW_READ, False))
        bound = getattr(getattr(fn, "__self__", None), "entity", None)
        self.row_entity = entity or (bound if isinstance(bound, Entity) else None)
        self.fixed_ttl = ttl
        self.key_fn = key
        self.tags_fn = tags
        self.qual = name or label_of(fn)
        self.signature = inspect.signature(fn)
        params = list(self.signature.parameters.values())[:2]
        if len(params) < 2 or any(p.kind not in _POSITIONAL for p in params):
            raise TypeError(f"cannot cache {self.qual}: it must take (conn, ctx, ...) positionally")
        check_return_type(fn, self.qual)
        schema = "|".join(fingerprint(e) for e in (entity, *depends))
        # raises UnprovableIdentity: refused at decoration
        self.ident = Ident(schema, fn, self.qual, unkeyed)
        self._costs: weakref.WeakKeyDictionary[Any, Costs] = weakref.WeakKeyDictionary()
        # the record a hit on one row of the entity owes, its template found once
        self._rows = None if entity is None else RowReads(entity, _hit_metadata(self.qual))

    # --- per call -------------------------------------------------------------------------

    def usable(self, scope: Any) -> bool:
        """Whether a unit of work may read or fill the cache (READ COMMITTED, none of its writes).

        ``scope`` is any unit of work exposing ``isolation``, ``frames`` (with ``written``) and
        ``has_written(entity name)`` — the sync and the async ones alike.
        """
        if scope.isolation not in _RC:
            return False
        if self.entity is None:
            return not any(f.written for f in scope.frames) and not any(
                scope.has_written(w) for w in self.watched)
        return not any(scope.has_written(w) for w in self.watched)

    def refuses_backend(self, accepts_sensitive: bool) -> bool:
        """True (warned once) when the backend may not hold this function's sensitive values."""
        if self.sensitive and not accepts_sensitive:
            if self.qual not in _WARNED:
                _WARNED.add(self.qual)
                log.warning("cache: %s reads sensitive data; this backend does not store it",
                            self.qual)
            return True
        return False

    def hit_costs_more(self, local: bool, ctx: ExecutionContext, args: tuple[Any, ...]) -> bool:
        """True when a hit from this backend would cost more than the read it replaces.

        That is the case of wxdata's own by-id read (``find_by_id``) whose disclosure is recorded,
        served from outside the process: the read is one statement, an index lookup with its
        record riding in it; a hit owes the same durable record, in a statement of its own, after
        a round trip to Redis. Such a call goes to the database, neither looked up nor filled. A
        memory hit saves the lookup and is served; so is any hit when an ``audited`` decorator
        records the call (the cache then writes no record of its own).
        """
        if local or not self.row_read:
            return False
        entity = self.row_entity
        if entity is None:  # the unbound generic read: find_by_id(conn, ctx, entity, id)
            entity = args[0] if args and isinstance(args[0], Entity) else None
        return reads_recorded(entity, ctx)

    def key(self, keys: KeyBuilder, conn: Any, ctx: ExecutionContext, args: tuple[Any, ...],
            kwargs: dict[str, Any]) -> str | None:
        """The entry key; None: bypass. Raises UncacheableArgument (the shells fail the call)."""
        fp = self.ident.current()
        if fp is None:  # a closure cell or default was rebound to something unprovable
            return None
        part = self.part_of(ctx) if self.partitioned else ""
        sig = fast_signature(args, kwargs)
        memo_key = (fp, part, sig) if sig is not None else None
        if memo_key is not None:
            found = keys.memo.get(memo_key)
            if found is not None:
                return found
        try:
            bound = self.signature.bind(conn, ctx, *args, **kwargs)
        except TypeError:  # the call does not fit the signature: let the function say so
            return None
        bound.apply_defaults()  # f(x) and f(x, page=1) are one call; defaults are keyed
        named = dict(list(bound.arguments.items())[2:])
        try:
            shape = self.shape(conn, ctx, args, kwargs)
            k = keys.key(self.entity, self.sensitive, shape, call_text(self.qual, fp, part, (),
                                                                       named))
        except UncacheableArgument:
            raise
        except ValueError:  # an id no key can show (the read itself will say why)
            return None
        if memo_key is not None:
            keys.remember(memo_key, k)
        return k

    def shape(self, conn: Any, ctx: ExecutionContext, args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> KeyShape:
        """The readable key shape of the call."""
        return LIST if self.key_fn is None else self.key_fn(conn, ctx, *args, **kwargs)

    def tag_list(self, conn: Any, ctx: ExecutionContext, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> list[str]:
        """The tags (text) the call's value depends on."""
        entity = self.entity
        if self.tags_fn is not None:
            chosen = [normal_tag(str(t)) for t in self.tags_fn(conn, ctx, *args, **kwargs)]
        elif entity is not None:
            shape = self.shape(conn, ctx, args, kwargs)
            if shape.kind == "id" and shape.id is not None:
                chosen = [row_tag(entity, shape.id)]
            else:
                chosen = [entity_tag(entity)]
        else:
            chosen = []
        return list(dict.fromkeys([*chosen, *self.depend_tags]))

    def fill_plan(self, cache: Any, scope: Any, conn: Any, ctx: ExecutionContext, value: Any,
                  args: tuple[Any, ...], kwargs: dict[str, Any]) -> FillPlan | None:
        """How to store a freshly read value, or None when it must not be stored."""
        if find_secret(value) is not None:
            cache.counters.add(self.label, "not_cacheable")
            log.error("cache: %s returned a secret column; value not cached", self.qual)
            return None
        if scope is not None and not self.usable(scope):
            return None
        if self.audits and self._unnamed(value):
            cache.counters.add(self.label, "not_cacheable")
            return None
        try:
            tags = self.tag_list(conn, ctx, args, kwargs)
        except ValueError:
            return None
        if foreign_writes and held_by_foreign(tags):
            return None  # a write in a transaction wxdata did not open may yet commit
        keys = cache.keys
        life = ttl_for(self.entity, self.fixed_ttl,
                       getattr(cache, "default_ttl", settings().cache_default_ttl))
        return FillPlan([keys.tag_id(t) for t in tags], life)

    def _unnamed(self, value: Any) -> bool:
        """Whether a hit on ``value`` would disclose something of an audited entity without
        naming a row or a student in its record: a fact derived from the rows (a count, a rate, a
        yes or no), which the call itself records with the student it asked about. Such a value
        is not stored, so every call reads and records it."""
        entity = self.entity
        if entity is not None and type(value) is entity.row_type:
            return False  # one row of the entity: its record names it
        spec = entity if entity is not None else entity_of_value(value)
        if spec is None:
            return False
        found = extract(spec, value)
        return found.anything and not found.ids and not found.subjects

    def may_owe(self, ctx: ExecutionContext) -> bool:
        """Whether a hit may owe a disclosure record (:meth:`hit_record` decides): its entity's
        reads are audited, or the context breaks the glass (recorded whatever the entity)."""
        return self.audits or ctx.is_break_glass

    def weighed(self, cache: Any, ctx: ExecutionContext) -> Costs | None:
        """The measured costs of a hit and of the call on ``cache``, when a hit of this call may
        owe a disclosure record and ``cache`` is outside the process (:mod:`wxdata.cache.costs`:
        the cheaper way is taken); None when it owes none, from process memory (a lookup without
        a round trip: the hit costs its record, which the call owes too), or with
        ``CACHE_WEIGH_RECORDED_HITS=false`` (a hit is then always served)."""
        if cache.local or not self.may_owe(ctx):
            return None
        config = settings()
        if not config.cache_weigh_recorded_hits:
            return None
        entity = self.row_entity
        if entity is not None:
            owed = reads_recorded(entity, ctx)
        else:  # the entity is known from the value only: a hit may owe whenever the trail is on
            owed = not reads_owned() and config.audit_enabled
        if not owed:
            return None
        costs = self._costs.get(cache)
        if costs is None:
            costs = self._costs.setdefault(cache, Costs())
        return costs

    def hit_record(self, ctx: ExecutionContext, value: Any) -> DueRecord | None:
        """The disclosure record a hit on ``value`` owes (None: not audited or nothing due)."""
        if not self.may_owe(ctx):
            return None
        rows, entity = self._rows, self.entity
        if rows is not None:
            if not reads_recorded(entity, ctx):
                return None
            due = rows.due(ctx, value)
            if due is not None:
                return due
        return hit_record(ctx, entity, value, self.qual)


def plan(fn: Callable[..., Any], *, entity: Entity[Any] | None, ttl: float | None,
         tags: Callable[..., Iterable[str]] | None, key: Callable[..., KeyShape] | None,
         depends: Sequence[Entity[Any]], partition: Callable[[ExecutionContext], str] | None,
         name: str | None, unkeyed: Iterable[str]) -> Plan:
    """The :class:`Plan` of a function (raises what decoration refuses)."""
    return Plan(fn, entity=entity, ttl=ttl, tags=tags, key=key, depends=depends,
                partition=partition, name=name, unkeyed=frozenset(unkeyed))


def check_options(entity: Entity[Any] | None, ttl: float | None,
                  tags: Callable[..., Iterable[str]] | None,
                  depends: Sequence[Entity[Any]]) -> None:
    """The ``cached(...)`` arguments every shell refuses; registers the entities' row types."""
    if entity is None and tags is None and not depends:
        raise ValueError("cached() needs an entity, depends= or tags=: something must invalidate it")
    if ttl is not None and ttl <= 0:
        raise ValueError("cache TTL must be positive")
    for e in (entity, *depends):
        if e is not None:
            register_entity(e)


def follower_value(flight: Any) -> Any:
    """The value a follower receives from a successful flight (a private copy if mutable)."""
    value = flight.value
    return value if is_frozen(value) else thaw(value)


def leader_share(value: Any) -> tuple[bool, Any]:
    """(ok, value to share with followers) after a stored fill."""
    try:
        return True, shareable(value)
    except Unserialisable:
        return False, None


__all__ = ["FOLLOW_TIMEOUT", "UNKEYABLE", "UNKNOWN", "FillPlan", "Ident", "Plan", "check_options",
           "entity_of_value", "follower_value", "hit_record", "known_refusal", "label_of",
           "leader_share", "normal_tag", "plan", "scope_of", "shareable"]
