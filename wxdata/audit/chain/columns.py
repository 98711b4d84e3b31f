"""How the chain reads ``audit_log``: the pinned session settings and the text-stable select list.

Every chain transaction pins the settings that shape text forms, so a hash never depends on the
session. The select list is read from the catalogue, one text-stable expression per column, so a
column added to ``audit_log`` is covered without touching the chain.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from returns.result import Failure, Result, Success

from wxdata.errors import DataError, InvalidQuery
from wxdata.tx.scope import current_scope

Conn = psycopg.Connection[Any]

#: Advisory lock held by a sealing run (and a retention purge) for its transaction.
SEAL_LOCK = 0x7778617564697421  # "wxaudit!"
SEAL_BATCH = 2000
VERIFY_BATCH = 5000

#: Settings pinned for every chain transaction, so text forms never depend on the session
#: (and cursors are planned for reading everything, not for a fast first row; no JIT, whose
#: compile time dwarfs a small sealing run).
PIN_SQL = sql.SQL(
    "SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true), "
    "set_config('IntervalStyle', 'postgres', true), set_config('extra_float_digits', '1', true), "
    "set_config('bytea_output', 'hex', true), set_config('cursor_tuple_fraction', '1', true), "
    "set_config('jit', 'off', true)"
)

#: The newest seal, if any: ``(position, hash)``.
LAST_SEAL_SQL = sql.SQL("SELECT position, hash FROM audit_seal ORDER BY position DESC LIMIT 1")

_COLUMNS_SQL = sql.SQL(
    "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
    "WHERE a.attrelid = 'audit_log'::regclass AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY a.attnum"
)
_RAW_TYPES = frozenset({"bool", "int2", "int4", "int8", "text", "varchar"})
_UTC_TEXT = sql.SQL("to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
_AS_TEXT = sql.SQL("{}::text")


def column_expr(alias: str, name: str, typ: str) -> sql.Composable:
    """The text-stable expression of column ``name`` (of type ``typ``) of row ``alias``."""
    ref = sql.Identifier(alias, name)
    if typ in _RAW_TYPES:
        return ref
    if typ == "timestamptz":
        return _UTC_TEXT.format(ref)
    return _AS_TEXT.format(ref)


def select_list(conn: Conn, alias: str = "a") -> tuple[tuple[str, ...], sql.Composed]:
    """Every audit_log column, each as a text-stable expression: ``(names, select list)``."""
    rows = conn.execute(_COLUMNS_SQL).fetchall()
    names = tuple(name for name, _typ in rows)
    return names, sql.SQL(",").join(column_expr(alias, name, typ) for name, typ in rows)


def outside_scope(conn: Conn, what: str) -> Result[None, DataError]:
    """``Success(None)`` when ``conn`` has no open unit of work (a chain run owns its transaction)."""
    if current_scope(conn) is not None:
        return Failure(InvalidQuery(field="conn", rule=f"{what} needs a connection outside a "
                                                        "unit of work"))
    return Success(None)


__all__ = [
    "LAST_SEAL_SQL",
    "PIN_SQL",
    "SEAL_BATCH",
    "SEAL_LOCK",
    "VERIFY_BATCH",
    "column_expr",
    "outside_scope",
    "select_list",
]
