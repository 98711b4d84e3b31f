"""Transactional scope (unit of work) on one psycopg connection.

The outermost scope issues ``BEGIN`` with the requested isolation, applies the execution context
with ``set_config(name, value, true)`` inside the transaction, and commits or rolls back. A scope
opened while another is active on the same connection is a ``SAVEPOINT`` with a unique name.
After-commit hooks (cache invalidation, notifications) run only once the outermost ``COMMIT`` has
returned; hooks registered inside a savepoint that rolls back are dropped with it.

A connection belongs to one thread at a time: a scope remembers its owner and any use from another
thread raises :class:`ConcurrentUseError` (a programming error, never a Result).
"""

from __future__ import annotations

import enum
import itertools
import logging
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import psycopg

from wxdata.context import ExecutionContext, context_settings

log = logging.getLogger("wxdata.tx")

Hook = Callable[[], None]


class Isolation(enum.StrEnum):
    """Transaction isolation levels PostgreSQL implements."""

    READ_COMMITTED = "READ COMMITTED"
    REPEATABLE_READ = "REPEATABLE READ"
    SERIALIZABLE = "SERIALIZABLE"


class ConcurrentUseError(RuntimeError):
    """A connection with an open unit of work was used from a second thread."""


class ScopeError(RuntimeError):
    """A scope was misused (exited out of order, or its connection is not in autocommit mode)."""


class RollbackScope(Exception):
    """Raise inside ``unit_of_work`` to roll the current scope back without an error."""


@attrs.define(slots=True, eq=False)
class _Frame:
    savepoint: str | None
    hooks: list[Hook] = attrs.field(factory=list)
    rollback_hooks: list[Hook] = attrs.field(factory=list)
    written: set[str] = attrs.field(factory=set)


@attrs.define(slots=True, eq=False)
class Scope:
    """The live unit of work of a connection: its frames, owner thread and context."""

    conn: psycopg.Connection[Any]
    ctx: ExecutionContext
    owner: int
    read_only: bool = False
    frames: list[_Frame] = attrs.field(factory=list)
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

    def mark_written(self, entity: str) -> None:
        """Record that this transaction wrote ``entity`` (its reads then bypass the cache)."""
        self.frames[-1].written.add(entity)

    def has_written(self, entity: str) -> bool:
        """Whether any live level of this transaction wrote ``entity``."""
        return any(entity in f.written for f in self.frames)


_SCOPES: weakref.WeakKeyDictionary[psycopg.Connection[Any], Scope] = weakref.WeakKeyDictionary()


def current_scope(conn: psycopg.Connection[Any]) -> Scope | None:
    """The open unit of work on ``conn``, checking it is used from its owner thread."""
    scope = _SCOPES.get(conn)
    if scope is not None and scope.owner != threading.get_ident():
        raise ConcurrentUseError("connection used by two threads at once")
    return scope


def in_scope(conn: psycopg.Connection[Any]) -> bool:
    """True while a unit of work is open on ``conn``."""
    return current_scope(conn) is not None


def context_statement(ctx: ExecutionContext) -> tuple[str, dict[str, str]]:
    """``SELECT set_config(name, value, true), ...`` applying the context to this transaction."""
    settings = context_settings(ctx)
    calls = ",".join(f"set_config(%(k{i})s, %(v{i})s, true)" for i in range(len(settings)))
    params: dict[str, str] = {}
    for i, (k, v) in enumerate(settings.items()):
        params[f"k{i}"] = k
        params[f"v{i}"] = v
    return f"SELECT {calls}", params


_BYPASS: weakref.WeakKeyDictionary[psycopg.Connection[Any], bool] = weakref.WeakKeyDictionary()


def bypasses_row_security(conn: psycopg.Connection[Any]) -> bool:
    """Whether the connection's role ignores row-level security (superuser or BYPASSRLS).

    Such a connection does not need the context applied outside a unit of work (nothing would be
    filtered anyway); an application role does. Cached per connection.
    """
    known = _BYPASS.get(conn)
    if known is None:
        row = conn.execute(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        known = bool(row and row[0])
        _BYPASS[conn] = known
    return known


def begin_statement(isolation: Isolation | None, read_only: bool, deferrable: bool) -> str:
    """The BEGIN text for the options (constant strings only)."""
    parts = ["BEGIN"]
    if isolation is not None:
        parts.append(f"ISOLATION LEVEL {isolation.value}")
    if read_only:
        parts.append("READ ONLY")
    if deferrable:
        parts.append("DEFERRABLE")
    return " ".join(parts)


def _run_hooks(hooks: list[Hook]) -> None:
    for hook in hooks:
        try:
            hook()
        except Exception:  # a hook failing must not undo or hide the transaction's outcome
            log.exception("transaction hook failed (the transaction outcome stands)")


@contextmanager
def unit_of_work(
    conn: psycopg.Connection[Any],
    ctx: ExecutionContext,
    *,
    isolation: Isolation | None = None,
    read_only: bool = False,
    deferrable: bool = False,
) -> Iterator[Scope]:
    """Open a transaction (or a savepoint inside one); commit on exit, roll back on exception.

    Raise :class:`RollbackScope` to roll back this level quietly. Isolation, read-only and
    deferrable apply to the outermost level only (PostgreSQL fixes them at BEGIN).
    """
    scope = current_scope(conn)
    if scope is None:
        if not conn.autocommit:
            raise ScopeError("wxdata units of work need an autocommit connection")
        scope = Scope(conn=conn, ctx=ctx, owner=threading.get_ident(), read_only=read_only)
        frame = _Frame(savepoint=None)
        sql, params = context_statement(ctx)
        conn.execute(begin_statement(isolation, read_only, deferrable))
        scope.frames.append(frame)
        _SCOPES[conn] = scope
        try:
            conn.execute(sql, params, prepare=True)
            yield scope
        except RollbackScope:
            _finish_outer(conn, scope, commit=False)
            return
        except BaseException:
            _finish_outer(conn, scope, commit=False)
            raise
        _finish_outer(conn, scope, commit=True)
        return

    name = f"wx_sp_{next(scope._names)}"
    frame = _Frame(savepoint=name)
    conn.execute(f'SAVEPOINT "{name}"')
    scope.frames.append(frame)
    try:
        yield scope
    except RollbackScope:
        _rollback_savepoint(conn, scope, frame)
        return
    except BaseException:
        _rollback_savepoint(conn, scope, frame)
        raise
    if scope.frames[-1] is not frame:
        raise ScopeError("scopes exited out of order")
    conn.execute(f'RELEASE SAVEPOINT "{name}"')
    scope.frames.pop()
    parent = scope.frames[-1]
    parent.hooks.extend(frame.hooks)
    parent.rollback_hooks.extend(frame.rollback_hooks)
    parent.written.update(frame.written)


def _rollback_savepoint(conn: psycopg.Connection[Any], scope: Scope, frame: _Frame) -> None:
    try:
        if not conn.closed and frame.savepoint is not None:
            conn.execute(f'ROLLBACK TO SAVEPOINT "{frame.savepoint}"')
            conn.execute(f'RELEASE SAVEPOINT "{frame.savepoint}"')
    finally:
        if scope.frames and scope.frames[-1] is frame:
            scope.frames.pop()
    _run_hooks(frame.rollback_hooks)


def _finish_outer(conn: psycopg.Connection[Any], scope: Scope, *, commit: bool) -> None:
    hooks = [h for f in scope.frames for h in (f.hooks if commit else f.rollback_hooks)]
    try:
        if commit:
            conn.execute("COMMIT")
        elif not conn.closed:
            try:
                conn.execute("ROLLBACK")
            except psycopg.OperationalError:
                log.warning("rollback failed: connection lost (server discards the transaction)")
    finally:
        scope.frames.clear()
        _SCOPES.pop(conn, None)
    _run_hooks(hooks)


def after_commit(conn: psycopg.Connection[Any], hook: Hook) -> None:
    """Run ``hook`` after the open unit of work commits, or now if none is open."""
    scope = current_scope(conn)
    if scope is None:
        _run_hooks([hook])
    else:
        scope.after_commit(hook)
