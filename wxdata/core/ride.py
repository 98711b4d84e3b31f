"""The one place the data functions call :mod:`wxdata.audit.sql`: a record riding in a statement.

Reads and writes wrap their statement here so that the audit SQL's signatures can change in one
place.
"""

from __future__ import annotations

from typing import Any

from wxdata.audit import sql as audit_sql
from wxdata.schema.spec import Entity


def read(entity: Entity[Any], sql: str, out_columns: tuple[str, ...], hit: str | None,
         shape: audit_sql.RecordShape, one_row: bool = False, relaxed: bool = False) -> str:
    """``sql`` (a SELECT) with one READ record of the rows it returns riding in it; ``one_row``
    when the SELECT returns at most one row; ``relaxed`` when the record's commit need not wait
    for the WAL flush (:func:`wxdata.audit.sql.relaxed_commit`)."""
    return audit_sql.ride_read(entity, sql, out_columns, hit, shape, one_row, relaxed)


def write(
    entity: Entity[Any], sql: str, out_columns: tuple[str, ...],
    shape: audit_sql.RecordShape, *, new_columns: tuple[str, ...] = (),
    old_columns: tuple[str, ...] = (), diff_columns: tuple[str, ...] = (),
) -> str:
    """``sql`` (a write ... RETURNING) with its record riding in it (snapshot, previous or diff)."""
    return audit_sql.ride_write(entity, sql, out_columns, new_columns=new_columns,
                                old_columns=old_columns, diff_columns=diff_columns,
                                shape=shape)


def bulk(entity: Entity[Any], sql: str) -> str:
    """``sql`` (a multi-row write ... RETURNING id) with one BULK record of every id riding in it."""
    return audit_sql.ride_bulk(entity, sql)
