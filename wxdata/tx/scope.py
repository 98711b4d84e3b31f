"""Transactional scope (unit of work) on one psycopg connection.

The outermost scope issues ``BEGIN`` with the requested isolation / read-only / deferrable mode and
applies the execution context with ``set_config(name, value, true)`` inside the transaction (both in
one pipelined round trip), then commits or rolls back. A scope opened while another is active on
the same connection is a ``SAVEPOINT`` with a name unique within the transaction.

Outcomes:

- leaving a level normally commits it (outermost ``COMMIT``) or releases it (``RELEASE SAVEPOINT``);
- an exception, or :class:`RollbackScope`, rolls back *that level only* (``ROLLBACK TO SAVEPOINT``
  for a nested one) and runs the level's rollback hooks;
- a transaction that an earlier error left aborted is never reported as committed: PostgreSQL would
  answer ``COMMIT`` with a silent ``ROLLBACK``, so the scope rolls back and raises
  ``InFailedSqlTransaction`` instead (likewise for a savepoint);
- a ``COMMIT`` that fails (serialization failure, deferred constraint, lost connection) raises the
  database error after running the rollback hooks; :func:`wxdata.tx.run_in_scope` turns it into a
  ``Failure`` and retries it when it is a serialization failure or deadlock.

A disclosure record that rode in a transaction which then rolls back is re-written on audit lane 2
by a rollback hook (:meth:`Scope.replay_on_rollback`). When that fails, nothing read inside the unit
of work may leave it: the outermost level raises :class:`DisclosureNotRecorded` instead of ending
quietly or committing (``run_in_scope`` answers ``Failure(Unavailable)``).

After-commit hooks (cache invalidation, notifications) run only once the outermost ``COMMIT`` has
returned; hooks registered inside a savepoint that rolls back are dropped with it. Rollback hooks
(e.g. replaying disclosure records on audit lane 2) run when their level or an enclosing one rolls
back, or when the ``COMMIT`` fails. The scope registry entry of a connection is removed whatever
happens, including a connection killed mid-transaction.

A connection belongs to one thread at a time: a scope remembers its owner and any use from another
thread raises :class:`ConcurrentUseError` (a programming error, never a Result).

Every decision is a plan (:mod:`wxdata.core`): :func:`scope_plan` opens and closes a level,
suspending while the caller's block runs; :func:`unit_of_work` drives it on a sync connection and
:func:`wxdata.aio.unit_of_work` on an async one. The scope lives in the connection's state
(:mod:`wxdata._connstate`).
"""

from __future__ import annotations

import enum
import inspect
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache, lru_cache
from typing import Any, NamedTuple

import attrs
import psycopg
from psycopg import errors as pg_errors
from psycopg import sql
from returns.result import Result, Success

from wxdata import _connstate, telemetry
from wxdata._connstate import RoleFacts
from wxdata.config import Settings, settings
from wxdata.context import (
    OTHER_PRINCIPAL,
    ExecutionContext,
    context_age_error,
    context_items,
    same_principal,
)
from wxdata.core.drive import run
from wxdata.core.effects import (
    Command,
    ConnFacts,
    Execute,
    FetchOne,
    Hooks,
    Pipeline,
    Plan,
    Probe,
    Suspend,
)
from wxdata.core.steps import enter, leave
from wxdata.errors import ContextRefused, DataError, Forbidden, Unavailable
from wxdata.tx.token import fingerprint, scope_key, scope_token

log = logging.getLogger("wxdata.tx")

#: A hook: a callable; under the async API it may return an awaitable (awaited).
Hook = Callable[[], Any]
Conn = psycopg.Connection[Any]
AnyConn = psycopg.Connection[Any] | psycopg.AsyncConnection[Any]


class Isolation(enum.StrEnum):
    """Transaction isolation levels PostgreSQL implements."""

    READ_COMMITTED = "READ COMMITTED"
    REPEATABLE_READ = "REPEATABLE READ"
    SERIALIZABLE = "SERIALIZABLE"


_RANK = {None: 0, Isolation.READ_COMMITTED: 0, Isolation.REPEATABLE_READ: 1,
         Isolation.SERIALIZABLE: 2}
_ISOLATION = {level: sql.SQL("ISOLATION LEVEL ") + sql.SQL(level.value) for level in Isolation}


class ConcurrentUseError(RuntimeError):
    """A connection with an open unit of work was used from a second thread."""


class ScopeError(RuntimeError):
    """A scope was misused (exited out of order, stronger isolation nested, not autocommit...)."""


class RollbackScope(Exception):
    """Raise inside ``unit_of_work`` to roll the current scope back without an error."""


class DisclosureNotRecorded(Exception):
    """Data was read in a unit of work whose disclosure record could not be committed.

    Raised by the outermost ``unit_of_work`` instead of letting it end quietly (a rollback
    requested with :class:`RollbackScope`, or a commit): what was read inside must not be used.
    :func:`wxdata.tx.run_in_scope` turns it into ``Failure(Unavailable)``.
    """


@attrs.define(slots=True, eq=False)
class _Frame:
    savepoint: str | None
    hooks: list[Hook] = attrs.field(factory=list)
    rollback_hooks: list[Hook] = attrs.field(factory=list)
    written: set[str] = attrs.field(factory=set)
    adopt: object | None = None  # token of the one nested run_in_scope that may run in this level


@attrs.define(slots=True, eq=False)
class Scope:
    """The live unit of work of a connection: its frames, owner thread, context and options."""

    conn: AnyConn
    ctx: ExecutionContext
    owner: int
    read_only: bool = False
    isolation: Isolation | None = None
    audit: bool = False
    frames: list[_Frame] = attrs.field(factory=list)
    doomed: Any = None  # the Retryable error that condemned this transaction, if any
    unit_id: uuid.UUID | None = None
    span: telemetry.TransactionSpan | None = None
    unrecorded: int = 0  # disclosure records lost at a rollback (see replay_on_rollback)
    _names: Iterator[int] = attrs.field(factory=lambda: itertools.count(1))

    @property
    def depth(self) -> int:
        """1 for the outermost transaction, +1 per savepoint."""
        return len(self.frames)

    def after_commit(self, hook: Hook) -> None:
        """Run ``hook`` after the outermost COMMIT; dropped if this scope level rolls back."""
        self.frames[-1].hooks.append(hook)

    def on_rollback(self, hook: Hook) -> None:
        """Run ``hook`` after this scope level (or an enclosing one) rolls back."""
        self.frames[-1].rollback_hooks.append(hook)

    def replay_on_rollback(self, write: Callable[[], Any]) -> None:
        """At rollback, re-write a disclosure record that rode in this level.

        ``write()`` answers whether the record was kept: a bool, or a plan answering one (run by
        the connection's driver, sync or async). When it answers False (or raises) the disclosure
        has no record: the unit of work can no longer succeed, and its outermost level raises
        :class:`DisclosureNotRecorded` instead of ending quietly or committing.
        """

        def hook() -> Plan[None]:
            kept: Any = False
            try:
                kept = write()
                if inspect.isgenerator(kept):
                    kept = yield from kept
            finally:
                if not kept:
                    self.unrecorded += 1

        self.on_rollback(hook)

    def mark_written(self, entity: str) -> None:
        """Record that this transaction wrote ``entity`` (its reads then bypass the cache)."""
        self.frames[-1].written.add(entity)

    def has_written(self, entity: str) -> bool:
        """Whether any live level of this transaction wrote ``entity``."""
        return any(entity in f.written for f in self.frames)

    def doom(self, error: Any) -> None:
        """Condemn the whole transaction (a nested level met a serialization failure/deadlock)."""
        if self.doomed is None:
            self.doomed = error


def current_scope(conn: AnyConn) -> Scope | None:
    """The open unit of work on ``conn``, checking it is used from its owner thread."""
    state = _connstate.peek(conn)
    if state is None:
        return None
    scope: Scope | None = state.scope
    if scope is not None and scope.owner != threading.get_ident():
        raise ConcurrentUseError("connection used by two threads at once")
    return scope


_IDLE = psycopg.pq.TransactionStatus.IDLE


def disclosed_on_lane_two(conn: AnyConn, scope: Scope | None) -> bool:
    """Whether a disclosure record must be committed on lane 2 rather than ride ``conn``.

    A record on ``conn`` is kept whatever the caller does next only in a unit of work that can
    write (a rollback replays it on lane 2) or, outside one, on an autocommit connection between
    transactions (the statement is its own transaction). In a read-only unit of work it cannot be
    inserted; in a transaction wxdata did not open (a connection not in autocommit, or a
    ``conn.transaction()`` block) the caller could roll it back after the data was handed out.
    """
    if scope is not None:
        return scope.read_only
    return not conn.autocommit or conn.pgconn.transaction_status != _IDLE


def in_scope(conn: AnyConn) -> bool:
    """True while a unit of work is open on ``conn``."""
    return current_scope(conn) is not None


def transaction_timeouts(config: Settings | None = None) -> dict[str, str]:
    """The timeouts each transaction sets itself: none direct (they are startup ``options``),
    statement and idle-in-transaction timeouts behind a transaction pooler (no session state).

    A timeout configured as 0 is not sent, in either mode: the role's or server's default holds.
    """
    config = config or settings()
    if not config.transaction_pooled:
        return {}
    out = {}
    if config.statement_timeout_ms:  # 0: the role's or server's default, as direct
        out["statement_timeout"] = str(config.statement_timeout_ms)
    if config.idle_in_transaction_timeout_ms:
        out["idle_in_transaction_session_timeout"] = str(config.idle_in_transaction_timeout_ms)
    return out


def context_statement(
    ctx: ExecutionContext, key: bytes | None = None, now: float | None = None
) -> tuple[str, tuple[str, ...]]:
    """``SELECT set_config('app.user_id', %s, true), ...`` applying the context to this
    transaction, and the values of its placeholders.

    With ``key`` the signed ``app.scope_token`` (the only scope row-level security trusts) rides in
    the same statement; the plain ``app.*`` settings are informational. Behind a transaction
    pooler it also sets the transaction's timeouts (:func:`transaction_timeouts`), so they hold
    without any session setting. The names are wxdata's own constants, written into the statement;
    only the values are parameters. The token names its issue time in whole seconds, so the
    statement and its values are built once per context, key, timeouts and second, then shared
    (the values are a tuple: nothing can change them).
    """
    issued = int(time.time() if now is None else now) if key is not None else 0
    timeouts = tuple(transaction_timeouts().items())
    return _context_statement(ctx, ctx.is_system, key, issued, timeouts)


@lru_cache(maxsize=256)
def _context_statement(
    ctx: ExecutionContext, system: bool, key: bytes | None, issued: int,
    timeouts: tuple[tuple[str, str], ...],
) -> tuple[str, tuple[str, ...]]:
    token = scope_token(ctx, key, issued) if key is not None else ""
    pairs = (*context_items(ctx), *timeouts, ("app.scope_token", token))
    return _set_configs(tuple(name for name, _ in pairs)), tuple(value for _, value in pairs)


_SET_CONFIG = sql.SQL("set_config({}, %s, true)")


@lru_cache(maxsize=16)
def _set_configs(names: tuple[str, ...]) -> str:
    """``SELECT set_config('name', %s, true), ...`` for ``names`` (built once per set of names)."""
    calls = sql.SQL(",").join(_SET_CONFIG.format(sql.Literal(name)) for name in names)
    return sql.SQL("SELECT {}").format(calls).as_string()


_PRIVILEGED_SQL = (
    "SELECT r.rolsuper OR r.rolbypassrls OR EXISTS ("
    " SELECT 1 FROM pg_catalog.pg_class c WHERE c.relrowsecurity AND NOT c.relforcerowsecurity"
    " AND pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')),"
    " pg_catalog.to_regprocedure('public.wxdata_scope_key_fingerprint()') IS NOT NULL"
    " FROM pg_catalog.pg_roles r WHERE r.rolname = current_user"
)
_FINGERPRINT_SQL = "SELECT public.wxdata_scope_key_fingerprint()"

PRIVILEGED_REASON = (
    "the database role bypasses row-level security (superuser, BYPASSRLS, or owner of a table "
    "whose policy is not forced); connect as the application role (a LOGIN member of wxdata_app, "
    "which `wxdata migrate` creates from DATABASE_URL while WXDATA_MIGRATION_URL names the owner), "
    "or set WXDATA_ALLOW_PRIVILEGED_CONNECTION=true to accept unscoped access"
)


#: A prepared statement answering the name the server knows it by: psycopg's own name (``_pg3_``
#: and a number) unless a pooler in between renamed it to keep it (PgBouncer: ``PGBOUNCER_``...).
_RENAMED_SQL = (
    "SELECT name FROM pg_catalog.pg_prepared_statements"
    " WHERE statement = pg_catalog.current_query()"
)

POOLER_KEEPS_NOTHING = (
    "DB_POOLER=transaction-prepared, but the connection's prepared statements reach PostgreSQL "
    "under psycopg's own names: no pooler in between keeps them (PgBouncer before 1.21, "
    "max_prepared_statements = 0, or no pooler at all); set DB_POOLER=transaction (or none when "
    "connecting directly)"
)


def pooler_keeps_statements(conn: AnyConn) -> Plan[bool]:
    """Whether the connection's prepared statements are kept by a pooler (one prepared probe).

    Behind a pooler that keeps prepared statements the server knows the probe by the pooler's
    name; direct, or behind a pooler that passes names through, by psycopg's own (``_pg3_``...),
    and a later transaction could run on a server connection where that name is missing or is
    another client's statement. That is also what a name already taken, or missing, on the
    server connection proves (as does any statement of the probe's text under psycopg's name:
    another client's probe through the same pooler). A connection that names nothing
    (``prepare_threshold=None``) is safe behind any pooler: nothing is sent for it.
    """
    if conn.prepare_threshold is None:
        return True
    try:
        rows = yield Execute(_RENAMED_SQL, None, True)
    except (pg_errors.DuplicatePreparedStatement, pg_errors.InvalidSqlStatementName):
        return False
    return not any(str(name).startswith("_pg3_") for name, in rows)


def role_facts(conn: AnyConn, config: Settings | None = None) -> Plan[RoleFacts]:
    """What the connection's role may do, asked once per connection (two statements at most, three
    behind a pooler that keeps prepared statements).

    With ``DB_POOLER=transaction-prepared`` it also proves that a pooler keeps the connection's
    prepared statements (:func:`pooler_keeps_statements`); otherwise it raises
    :class:`~wxdata.errors.ContextRefused` (``Unavailable``) before any statement is named, and
    asks again on the next use. ``config`` (default: the settings) is the one the connection was
    opened with.
    """
    state = _connstate.of(conn)
    known = state.role
    if known is None:
        keeps = (config or settings()).pooler_keeps_statements
        if keeps and not (yield from pooler_keeps_statements(conn)):
            raise ContextRefused(Unavailable(reason=POOLER_KEEPS_NOTHING))
        row = yield FetchOne(_PRIVILEGED_SQL)
        privileged = bool(row and row[0])
        migrated = bool(row and row[1])
        fingerprint_ = None
        if migrated and not privileged:
            found = yield FetchOne(_FINGERPRINT_SQL)
            fingerprint_ = found[0] if found else None
        known = RoleFacts(privileged=privileged, fingerprint=fingerprint_, migrated=migrated)
        state.role = known
    return known


def bypasses_row_security(conn: Conn) -> bool:
    """Whether the connection's role ignores row-level security: superuser, BYPASSRLS, or owner of
    a row-secured table that does not FORCE it. Cached per connection."""
    return run(conn, role_facts(conn)).privileged


def _allow_privileged() -> bool:
    return settings().allow_privileged_connection


def _key_for(state: RoleFacts) -> bytes:
    """The scope key, checked against the database's; ContextRefused (Unavailable) otherwise."""
    key = scope_key()
    if not state.migrated:
        raise ContextRefused(Unavailable(
            reason="the database lacks the signed school scope: run `wxdata migrate`"))
    if key is None:
        raise ContextRefused(Unavailable(
            reason="no scope key configured: set WXDATA_SCOPE_KEY or WXDATA_MASTER_KEY"))
    if state.fingerprint is None:
        raise ContextRefused(Unavailable(
            reason="the database has no scope key installed: run `wxdata migrate` with "
                   "WXDATA_SCOPE_KEY or WXDATA_MASTER_KEY set"))
    if fingerprint(key) != state.fingerprint:
        raise ContextRefused(Unavailable(
            reason="the scope key (WXDATA_SCOPE_KEY, or derived from WXDATA_MASTER_KEY) differs "
                   "from the database's: run `wxdata migrate` with it or correct the variable"))
    return key


class PreparedContext(NamedTuple):
    """The context statement for one transaction, and whether the role escapes row security
    (an immutable named tuple: one is made for every statement the application role sends outside
    a unit of work)."""

    privileged: bool
    sql: str
    params: tuple[str, ...]


def role_refusal(
    facts: RoleFacts, ctx: ExecutionContext, config: Settings | None = None,
) -> DataError | None:
    """``Forbidden`` when a connection whose role is ``facts`` may not act for ``ctx`` (see
    :func:`context_refusal`), decided from what is already known of the role: no statement.
    ``config``: the settings the caller has already read (the process settings otherwise)."""
    if (facts.privileged and not ctx.is_system
            and not (config or settings()).allow_privileged_connection):
        return Forbidden(entity="connection", reason=PRIVILEGED_REASON)
    return None


def prepare_plan(conn: AnyConn, ctx: ExecutionContext) -> Plan[PreparedContext]:
    """The one place a context meets a connection: refuse or build its ``set_config`` statement.

    Raises :class:`~wxdata.errors.ContextRefused` (a ``psycopg.Error`` carrying the DataError):

    - what :func:`check_context` refuses (a context older than ``WXDATA_CONTEXT_MAX_AGE``);
    - ``Forbidden`` when the connection's role bypasses row-level security and the context is not
      SYSTEM (unless ``WXDATA_ALLOW_PRIVILEGED_CONNECTION=true``);
    - ``Unavailable`` when wxdata has no scope key or its key is not the database's.
    """
    check_context(ctx)
    return context_for((yield from role_facts(conn)), ctx)


def context_for(facts: RoleFacts, ctx: ExecutionContext) -> PreparedContext:
    """:func:`prepare_plan` once the context is checked and the role's ``facts`` are known (no
    statement): refuse (:class:`~wxdata.errors.ContextRefused`) or build the context statement."""
    if facts.privileged:
        refusal = role_refusal(facts, ctx)
        if refusal is not None:
            raise ContextRefused(refusal)
        sql_text, params = context_statement(ctx, None)
        return PreparedContext(True, sql_text, params)
    sql_text, params = context_statement(ctx, _key_for(facts))
    return PreparedContext(False, sql_text, params)


def prepare_context(conn: Conn, ctx: ExecutionContext) -> PreparedContext:
    """:func:`prepare_plan` on a sync connection."""
    return run(conn, prepare_plan(conn, ctx))


def refusal_plan(conn: AnyConn, ctx: ExecutionContext) -> Plan[DataError | None]:
    """``Forbidden`` when ``ctx`` may not act on ``conn`` (see :func:`context_refusal`)."""
    facts = yield from role_facts(conn)
    return role_refusal(facts, ctx)


def context_refusal(conn: Conn, ctx: ExecutionContext) -> DataError | None:
    """``Forbidden`` when ``ctx`` may not act on ``conn`` (a role that bypasses row security and
    a non-SYSTEM context, without WXDATA_ALLOW_PRIVILEGED_CONNECTION); None when it may.

    Every statement and unit of work applies it (:func:`context_for`, or :func:`role_refusal` for
    a single statement on a privileged connection); reads served from the cache (no statement at
    all) ask it directly.
    """
    return run(conn, refusal_plan(conn, ctx))


def check_plan(conn: AnyConn, config: Settings | None = None) -> Plan[bool]:
    """Learn the connection's role (cached) and log a WARNING when it bypasses row security;
    ``config`` (default: the settings) is the one the connection was opened with."""
    facts = yield from role_facts(conn, config)
    if not facts.privileged:
        return False
    if _allow_privileged():
        log.warning(
            "connected as a role that bypasses row-level security (superuser/BYPASSRLS/table "
            "owner) with WXDATA_ALLOW_PRIVILEGED_CONNECTION=true: school scoping is NOT enforced"
        )
    else:
        log.warning(
            "connected as a role that bypasses row-level security: every non-SYSTEM context will "
            "be refused; connect as the application role (a LOGIN member of wxdata_app)"
        )
    return True


def check_connection(conn: Conn, config: Settings | None = None) -> bool:
    """Learn the connection's role (cached) and log a WARNING when it bypasses row security.

    Called on every connect and pooled connection open, with the settings it was opened with
    (default: the settings); returns whether the role is privileged.
    """
    return run(conn, check_plan(conn, config))


@lru_cache(maxsize=32)
def begin_statement(isolation: Isolation | None, read_only: bool, deferrable: bool) -> str:
    """The BEGIN text for the options (constant keywords only; built once per combination)."""
    parts: list[sql.Composable] = [sql.SQL("BEGIN")]
    if isolation is not None:
        parts.append(_ISOLATION[Isolation(isolation)])
    if read_only:
        parts.append(sql.SQL("READ ONLY"))
    if deferrable:
        parts.append(sql.SQL("DEFERRABLE"))
    return sql.SQL(" ").join(parts).as_string()


def check_context(ctx: ExecutionContext, config: Settings | None = None) -> None:
    """Raise :class:`~wxdata.errors.ContextRefused` (a psycopg error, SQLSTATE 42501, carrying
    :class:`~wxdata.errors.ContextExpired`) when ``ctx`` is older than ``WXDATA_CONTEXT_MAX_AGE``.

    Called wherever a context reaches the database: the BEGIN of a unit of work and every
    single statement wxdata runs. One settings lookup when no maximum age is configured, none
    when the caller passes the ``config`` it has already read.
    """
    error = context_age_error(ctx, config=config)
    if error is not None:
        raise ContextRefused(error)


POOLER_UNSAFE = (
    "behind a transaction pooler (DB_POOLER=transaction) wxdata needs connections that never "
    "name a prepared statement: open them with wxdata.db.connect_kwargs()"
)


def may_name_statements(conn: AnyConn, config: Settings | None = None) -> bool:
    """True when ``conn`` must be refused: behind a transaction pooler, it may prepare statements.

    psycopg names any statement run ``prepare_threshold`` times (BEGIN and COMMIT included); the
    next transaction may run on another server connection, where that name is missing or is
    another client's statement. Only ``prepare_threshold=None`` rules this out, unless the pooler
    keeps prepared statements (``DB_POOLER=transaction-prepared``, checked by :func:`role_facts`).
    """
    return not (config or settings()).prepare and conn.prepare_threshold is not None


def _begin(conn: AnyConn, ctx: ExecutionContext, statement: str) -> Plan[None]:
    """BEGIN and the context's set_config in one pipelined round trip (after the checks: the
    context and the role, and behind a transaction pooler that the connection names no statement)."""
    prepared = yield from prepare_plan(conn, ctx)
    if may_name_statements(conn):
        raise ScopeError(POOLER_UNSAFE)
    yield Pipeline((Execute(statement),
                    Execute(prepared.sql, prepared.params, settings().prepare, "context")))


def _savepoint(verb: str, name: str) -> Command:
    return Command(sql.SQL(verb + " {}").format(sql.Identifier(name)))


def scope_plan(
    conn: AnyConn,
    ctx: ExecutionContext,
    *,
    isolation: Isolation | None = None,
    read_only: bool = False,
    deferrable: bool = False,
    audit: bool = False,
) -> Plan[None]:
    """One level of a unit of work: opens it, suspends with the :class:`Scope` while the caller's
    block runs, then commits/releases (resumed with None) or rolls back (resumed with the block's
    exception; :class:`RollbackScope` is swallowed). See :func:`unit_of_work`."""
    scope = current_scope(conn)
    if scope is None:
        facts: ConnFacts = yield Probe()
        if not facts.autocommit:
            raise ScopeError("wxdata units of work need an autocommit connection")
        if not facts.idle:
            raise ScopeError("the connection is already inside a transaction wxdata did not open")
        scope = Scope(conn=conn, ctx=ctx, owner=threading.get_ident(), read_only=read_only,
                      isolation=isolation, audit=audit)
        if audit:
            scope.unit_id = uuid.uuid4()
        scope.span = telemetry.begin_transaction(isolation, read_only)
        try:
            yield from _begin(conn, ctx, begin_statement(isolation, read_only, deferrable))
        except BaseException:
            _unregister(conn, scope)
            raise
        scope.frames.append(_Frame(savepoint=None))
        _connstate.of(conn).scope = scope
        try:
            yield Suspend(scope)
        except RollbackScope:
            yield from _finish_outer(conn, scope, commit=False)
            if scope.unrecorded:
                raise DisclosureNotRecorded("a disclosure record could not be kept") from None
            return
        except BaseException:
            yield from _finish_outer(conn, scope, commit=False)
            raise
        yield from _finish_outer(conn, scope, commit=True)
        return

    if not same_principal(scope.ctx, ctx):
        raise ContextRefused(Forbidden(reason=OTHER_PRINCIPAL))
    if _RANK[isolation] > _RANK[scope.isolation]:
        raise ScopeError(
            f"a nested scope cannot raise the isolation to {isolation}: declare it on the "
            "outermost unit of work"
        )
    name = f"wx_sp_{next(scope._names)}"
    yield _savepoint("SAVEPOINT", name)
    frame = _Frame(savepoint=name)
    scope.frames.append(frame)
    try:
        yield Suspend(scope)
    except RollbackScope:
        yield from _rollback_savepoint(scope, frame)
        return
    except BaseException:
        yield from _rollback_savepoint(scope, frame)
        raise
    yield from _release_savepoint(scope, frame)


def _release_savepoint(scope: Scope, frame: _Frame) -> Plan[None]:
    if not scope.frames or scope.frames[-1] is not frame or frame.savepoint is None:
        raise ScopeError("scopes exited out of order")
    facts: ConnFacts = yield Probe()
    if facts.in_error:
        yield from _rollback_savepoint(scope, frame)
        raise pg_errors.InFailedSqlTransaction(
            "an error inside the savepoint aborted it; rolled back to the savepoint"
        )
    try:
        yield _savepoint("RELEASE SAVEPOINT", frame.savepoint)
    except BaseException:
        yield from _rollback_savepoint(scope, frame)
        raise
    scope.frames.pop()
    parent = scope.frames[-1]
    parent.hooks.extend(frame.hooks)
    parent.rollback_hooks.extend(frame.rollback_hooks)
    parent.written.update(frame.written)


def _rollback_savepoint(scope: Scope, frame: _Frame) -> Plan[None]:
    """Roll back to the frame's savepoint; its rollback hooks run now, or with the enclosing
    rollback when the savepoint could not be rolled back (lost connection)."""
    done = False
    try:
        facts: ConnFacts = yield Probe()
        if not facts.closed and frame.savepoint is not None:
            yield _savepoint("ROLLBACK TO SAVEPOINT", frame.savepoint)
            yield _savepoint("RELEASE SAVEPOINT", frame.savepoint)
            done = True
    finally:
        if scope.frames and scope.frames[-1] is frame:
            scope.frames.pop()
        if not done and scope.frames:
            scope.frames[-1].rollback_hooks.extend(frame.rollback_hooks)
    if done or not scope.frames:
        yield Hooks(tuple(frame.rollback_hooks))


def _unregister(conn: AnyConn, scope: Scope, outcome: str = "rollback") -> None:
    if scope.span is not None:
        scope.span.end(outcome)
        scope.span = None
    scope.frames.clear()
    state = _connstate.peek(conn)
    if state is not None and state.scope is scope:
        state.scope = None


def _finish_outer(conn: AnyConn, scope: Scope, *, commit: bool) -> Plan[None]:
    rollback_hooks = tuple(h for f in scope.frames for h in f.rollback_hooks)
    if commit:
        commit_hooks = tuple(h for f in scope.frames for h in f.hooks)
        try:
            if scope.unrecorded:  # a rolled-back savepoint lost a disclosure record
                raise DisclosureNotRecorded("a disclosure record could not be kept")
            if scope.audit and not scope.read_only:
                yield from _audit_outcome(conn, scope, committed=True)
            facts: ConnFacts = yield Probe()
            if facts.in_error:
                raise pg_errors.InFailedSqlTransaction(
                    "the transaction was aborted by an earlier error; rolled back, not committed"
                )
            status = yield Command("COMMIT")
            if status != "COMMIT":  # pragma: no cover - PostgreSQL answered COMMIT with ROLLBACK
                raise pg_errors.InFailedSqlTransaction("COMMIT was answered with ROLLBACK")
        except BaseException:
            yield from _rollback_quietly()
            _unregister(conn, scope)
            yield Hooks(rollback_hooks)
            if scope.audit:
                yield from _audit_outcome(conn, scope, committed=False)
            raise
        _unregister(conn, scope, "commit")
        yield Hooks(commit_hooks)
        if scope.audit and scope.read_only:
            yield from _audit_outcome(conn, scope, committed=True)
        return
    try:
        yield from _rollback_quietly()
    finally:
        _unregister(conn, scope)
    yield Hooks(rollback_hooks)
    if scope.audit:
        yield from _audit_outcome(conn, scope, committed=False)


def _rollback_quietly() -> Plan[None]:
    facts: ConnFacts = yield Probe()
    if facts.closed or facts.idle:
        return
    try:
        yield Command("ROLLBACK")
    except psycopg.Error:
        log.warning("rollback failed: connection lost (the server discards the transaction)")


@cache
def _transaction_plan() -> Callable[..., Plan[Result[None, DataError]]]:
    """:func:`wxdata.audit.log.transaction_plan`, imported on first need (audit builds on tx)
    and then held: no import statement runs per unit of work."""
    from wxdata.audit.log import transaction_plan

    return transaction_plan


def _audit_outcome(conn: AnyConn, scope: Scope, *, committed: bool) -> Plan[None]:
    """TRANSACTION_COMMIT in the transaction (lane 1), TRANSACTION_ROLLBACK on lane 2."""
    result = yield from _transaction_plan()(conn, scope.ctx, committed=committed,
                                            unit_id=scope.unit_id)
    if committed and not scope.read_only and not isinstance(result, Success):
        raise pg_errors.InFailedSqlTransaction("the TRANSACTION_COMMIT record could not be written")


@contextmanager
def unit_of_work(
    conn: Conn,
    ctx: ExecutionContext,
    *,
    isolation: Isolation | None = None,
    read_only: bool = False,
    deferrable: bool = False,
    audit: bool = False,
) -> Iterator[Scope]:
    """Open a transaction (or a savepoint inside one); commit on exit, roll back on exception.

    Raise :class:`RollbackScope` to roll back this level quietly. Isolation, read-only and
    deferrable apply to the outermost level only (PostgreSQL fixes them at BEGIN); a nested level
    asking for a *stronger* isolation than the transaction has is a :class:`ScopeError`.
    ``audit=True`` on the outermost level records TRANSACTION_COMMIT (in the transaction) or
    TRANSACTION_ROLLBACK (on audit lane 2).
    """
    plan = scope_plan(conn, ctx, isolation=isolation, read_only=read_only,
                      deferrable=deferrable, audit=audit)
    scope: Scope = run(conn, enter(plan))
    try:
        yield scope
    except BaseException as exc:  # noqa: BLE001 - handed to the level, which re-raises or not
        run(conn, leave(plan, exc))  # raises unless the level swallowed it (RollbackScope)
    else:
        run(conn, leave(plan, None))


def hooks_now(conn: AnyConn, hook: Hook) -> Plan[None]:
    """Run ``hook`` after the open unit of work commits, or now if none is open."""
    scope = current_scope(conn)
    if scope is None:
        yield Hooks((hook,))
    else:
        scope.after_commit(hook)


def after_commit(conn: Conn, hook: Hook) -> None:
    """Run ``hook`` after the open unit of work commits, or now if none is open."""
    run(conn, hooks_now(conn, hook))


def on_rollback(conn: AnyConn, hook: Hook) -> None:
    """Run ``hook`` if the current scope level rolls back (never, when no unit of work is open)."""
    scope = current_scope(conn)
    if scope is not None:
        scope.on_rollback(hook)
