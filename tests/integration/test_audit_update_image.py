"""An audited update records the version of the row it replaced, even when it had to wait for it.

Before PostgreSQL 18 the before-image comes from the same statement's self-join: first read
without a lock and joined by the row's address (``ctid``), which updates nothing once another
transaction has moved the row to a new version, then, only then, the locking form (``FROM
(SELECT ... FOR UPDATE) o``); from 18 on, from ``RETURNING old.<column>``, which names exactly the
version the UPDATE replaced and takes no separate row lock. Either way, an update that waits for
another transaction's update of the same row diffs against that transaction's result, never
against the version it saw before waiting, and writes one record. The waiting statement is read
from ``pg_stat_activity`` to check which form the server was sent.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import psycopg
from returns.result import Result

from wxdata import ExecutionContext
from wxdata.db import connect_kwargs
from wxdata.domains import students
from wxdata.errors import DataError
from wxdata.tx import unit_of_work

Conn = psycopg.Connection[Any]


def _waiting_update(admin: Conn, timeout: float = 10.0) -> str:
    """The text of the UPDATE of ``students`` waiting for a lock (polled until it waits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = admin.execute(
            "SELECT query FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE '%%UPDATE \"students\"%%'").fetchone()
        if row is not None:
            return str(row[0])
        time.sleep(0.02)
    raise AssertionError("the second update never waited for the first")


def test_an_update_that_waited_records_the_version_it_replaced(
    db_url: str, admin_conn: Conn, ctx: ExecutionContext, make_student: Callable[..., Any],
) -> None:
    sid = make_student(grade="5").id
    second = attrs.evolve(ctx, request_id=f"req-{uuid.uuid4().hex[:12]}")
    outcome: list[Result[Any, DataError]] = []
    with psycopg.connect(db_url, autocommit=True, **connect_kwargs()) as first_conn, \
            psycopg.connect(db_url, autocommit=True, **connect_kwargs()) as second_conn:
        with unit_of_work(first_conn, ctx):
            students.update(first_conn, ctx, sid, {"grade": "6"}).unwrap()
            waiter = threading.Thread(target=lambda: outcome.append(
                students.update(second_conn, second, sid, {"grade": "7"})))
            waiter.start()
            text = _waiting_update(admin_conn)
        waiter.join(10)
    assert outcome and outcome[0].unwrap().grade == "7"
    version = admin_conn.info.server_version
    assert ('old."grade"' in text) == (version >= 180000)
    assert ('"ctid"' in text) == (version < 180000)  # the optimistic form waited, unlocked
    assert "FOR UPDATE" not in text
    rows = admin_conn.execute(
        "SELECT previous_values, new_values, changes FROM audit_log "
        "WHERE request_id = %s AND action = 'UPDATE'", (second.request_id,)).fetchall()
    assert len(rows) == 1  # the optimistic attempt that updated nothing recorded nothing
    previous, new, changes = rows[0]
    assert previous == {"grade": "6"} and new == {"grade": "7"}
    assert changes["grade"]["before"] == "6" and changes["grade"]["after"] == "7"


class _Recording(psycopg.Cursor[Any]):
    """A cursor that keeps the text of every statement it executes."""

    sent: list[str] = []

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        _Recording.sent.append(query if isinstance(query, str) else str(query))
        return super().execute(query, params, **kwargs)


def test_an_audited_update_reads_the_old_values_of_the_columns_it_sets_only(
    db_url: str, admin_conn: Conn, ctx: ExecutionContext, make_student: Callable[..., Any],
) -> None:
    """The statement carries the old value of each column the update sets and nothing else of
    the old row (every other old value is sent back unread: 20 columns of a student), and the
    record's diff still names exactly the columns whose value changed."""
    student = make_student(grade="5")
    caller = attrs.evolve(ctx, request_id=f"req-{uuid.uuid4().hex[:12]}")
    _Recording.sent = []
    with psycopg.connect(db_url, autocommit=True, cursor_factory=_Recording,
                         **connect_kwargs()) as conn:
        updated = students.update(conn, caller, student.id,
                                  {"grade": "6", "last_name": student.last_name}).unwrap()
    assert updated.grade == "6" and updated.last_name == student.last_name
    (text,) = [q for q in _Recording.sent if 'UPDATE "students"' in q]
    assert set(re.findall(r'"_o_(\w+)"', text)) == {"grade", "last_name"}
    if admin_conn.info.server_version < 180000:  # the old row read in the statement: its key,
        # its address and the two columns, not the whole row
        read = text[text.index("FROM (SELECT ") + len("FROM (SELECT "):text.index(" FROM \"students\"")]
        assert set(re.findall(r'"(\w+)"', read)) == {"id", "grade", "last_name", "ctid", "_ctid"}
    rows = admin_conn.execute(
        "SELECT previous_values, new_values, changes FROM audit_log "
        "WHERE request_id = %s AND action = 'UPDATE'", (caller.request_id,)).fetchall()
    assert rows == [({"grade": "5"}, {"grade": "6"},
                     {"grade": {"before": "5", "after": "6"}})]
