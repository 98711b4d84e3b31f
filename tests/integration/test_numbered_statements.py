"""Statements too long for psycopg to cache its parse of them are sent numbered, and mean the same.

An audited update of several columns carries each column's before, after and change in its record,
which takes its statement past the length psycopg caches its placeholder parse for; wxdata sends
such a statement with PostgreSQL's numbered placeholders through a raw cursor instead
(:mod:`wxdata.core.numbered`). The row returned and the record written are the same as for any
update, through both shells; a long hand-written read still records the columns it returned
(the description is read from the cursor that ran it); a short statement goes as written.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

import psycopg
import pytest

from tests.shells import parametrise
from wxdata import ExecutionContext, _connstate, crud
from wxdata.core.numbered import PARSED_EACH_TIME_BYTES
from wxdata.db import connect_kwargs
from wxdata.domains import students

Conn = psycopg.Connection[Any]

parametrise(globals())

#: Seven columns, each changed: an update statement past the length psycopg caches (no validator
#: reads them, so the update is its one statement).
CHANGES = {"first_name": "Grace", "last_name": "Hopper", "grade": "6", "gender": "OTHER",
           "photo": "p.png", "is_active": False, "enrollment_date": date(2021, 9, 1)}


def _record(admin_conn: Conn, ctx: ExecutionContext) -> tuple[Any, ...]:
    found = admin_conn.execute(
        "SELECT entity_id, changes, previous_values, new_values FROM audit_log"
        " WHERE request_id = %s AND action = 'UPDATE'", (ctx.request_id,)).fetchall()
    assert len(found) == 1
    return tuple(found[0])


def test_an_update_of_many_columns_returns_its_row_and_records_every_column(
        conn: Conn, admin_conn: Conn, ctx: ExecutionContext,
        make_student: Callable[..., Any]) -> None:
    before = make_student()
    after = students.update(conn, ctx, before.id, CHANGES).unwrap()
    for name, value in CHANGES.items():
        assert getattr(after, name) == value
    assert after.version == before.version + 1
    assert after.date_of_birth == before.date_of_birth
    entity_id, changes, previous, new = _record(admin_conn, ctx)
    assert entity_id == before.id
    shown = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in CHANGES.items()}
    was = {k: getattr(before, k) for k in CHANGES}
    was = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in was.items()}
    assert set(changes) == set(CHANGES)
    assert changes == {k: {"before": was[k], "after": shown[k]} for k in CHANGES}
    assert previous == was and new == shown


def test_a_long_hand_written_read_records_the_columns_it_returned(
        conn: Conn, admin_conn: Conn, ctx: ExecutionContext,
        make_student: Callable[..., Any]) -> None:
    s = make_student()
    students.find_by_id(conn, ctx, s.id).unwrap()  # the data cursor's last result: whole rows
    padding = "x" * (PARSED_EACH_TIME_BYTES + 1)
    rows = crud.fetch(conn, ctx, "SELECT s.id, s.last_name FROM students s"
                      f" WHERE s.id = %(s)s AND %(pad)s = '{padding}'",
                      {"s": s.id, "pad": padding}).unwrap()
    assert rows == [(s.id, s.last_name)]
    fields = admin_conn.execute(
        "SELECT fields_disclosed FROM audit_log WHERE request_id = %s AND action = 'READ'"
        " ORDER BY seq", (ctx.request_id,)).fetchall()
    assert fields == [(["*"],), (["id", "last_name"],)]


@pytest.mark.sync_only
def test_a_long_statement_goes_numbered_and_a_short_one_as_written(
        conn: Conn, ctx: ExecutionContext, make_student: Callable[..., Any]) -> None:
    s = make_student()
    state = _connstate.of(conn)
    students.update(conn, ctx, s.id, CHANGES).unwrap()
    assert "data" in state.raw_last and "data" in state.raw_cursors
    students.find_by_id(conn, ctx, s.id).unwrap()
    assert "data" not in state.raw_last


class _Named(psycopg.Cursor[Any]):
    """psycopg's cursor under another name: wxdata leaves every statement on it to psycopg."""


@pytest.mark.sync_only
def test_the_server_receives_the_statement_psycopg_would_have_sent(
        conn: Conn, db_url: str, ctx: ExecutionContext,
        make_student: Callable[..., Any]) -> None:
    """The same update, numbered by wxdata on one connection and parsed by psycopg on another:
    each session's prepared statement holds the same text and parameter types."""
    s = make_student()
    again = {**CHANGES, "first_name": "Mary", "last_name": "Somerville", "grade": "7",
             "gender": "MALE", "photo": "q.png", "is_active": True,
             "enrollment_date": date(2022, 9, 1)}
    prepared = ("SELECT statement, parameter_types::text[] FROM pg_prepared_statements"
                " WHERE statement LIKE 'WITH s AS (UPDATE %%'")
    students.update(conn, ctx, s.id, CHANGES).unwrap()
    assert "data" in _connstate.of(conn).raw_last
    ours = conn.execute(prepared).fetchall()
    with psycopg.connect(db_url, autocommit=True, cursor_factory=_Named,
                         **connect_kwargs()) as named:
        students.update(named, ctx, s.id, again).unwrap()
        assert not _connstate.of(named).raw_cursors
        theirs = named.execute(prepared).fetchall()
    assert len(ours) == 1 and len(ours[0][0]) > PARSED_EACH_TIME_BYTES
    assert ours == theirs
