"""Write events: every committed write reaches the listeners subscribed when it is delivered, in
both shells, and a write nobody hears builds nothing that a later listener could receive.

Outside a unit of work a write is delivered when its statement returns; inside one it is marked
written at once and delivered after COMMIT, so a listener subscribed before the COMMIT hears it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.conftest import student_values
from tests.shells import parametrise
from wxdata import ExecutionContext
from wxdata.domains import students
from wxdata.tx import current_scope, unit_of_work
from wxdata.tx import events as events_module
from wxdata.tx.events import WriteEvent, add_write_listener, remove_write_listener, unheard

pytestmark = pytest.mark.integration

parametrise(globals())

Conn = psycopg.Connection[Any]


@pytest.fixture
def heard() -> Iterator[list[WriteEvent]]:
    """The events a listener subscribed for the test receives (unsubscribed after it). The
    listeners other tests left subscribed (a process cache, a replica router) are set aside for the
    test and put back after it, so that a write here is heard by this test's listener or by no
    one."""
    saved, twins = list(events_module._LISTENERS), dict(events_module._TWINS)
    for listener in saved:
        remove_write_listener(listener)
    events: list[WriteEvent] = []
    try:
        yield events
    finally:
        remove_write_listener(events.append)
        for listener in saved:
            add_write_listener(listener, async_twin=twins.get(listener))


def test_a_listener_hears_each_write_with_its_row_and_subject(
        conn: Conn, sys_ctx: ExecutionContext, school: dict[str, Any],
        heard: list[WriteEvent]) -> None:
    add_write_listener(heard.append)
    row = students.create(conn, sys_ctx, student_values(school)).unwrap()
    students.update(conn, sys_ctx, row.id, {"grade": "6"}).unwrap()
    students.delete(conn, sys_ctx, row.id).unwrap()
    assert [(e.entity, e.action, e.ids, e.subjects) for e in heard] == [
        ("Student", action, (row.id,), (row.id,)) for action in ("CREATE", "UPDATE", "DELETE")]


def test_a_write_nobody_hears_is_never_delivered_later(
        conn: Conn, sys_ctx: ExecutionContext, school: dict[str, Any],
        heard: list[WriteEvent]) -> None:
    unheard_row = students.create(conn, sys_ctx, student_values(school)).unwrap()
    add_write_listener(heard.append)
    row = students.create(conn, sys_ctx, student_values(school)).unwrap()
    assert [e.ids for e in heard] == [(row.id,)]
    assert unheard_row.id != row.id


def test_a_unit_of_work_marks_its_writes_and_delivers_them_to_a_listener_added_before_commit(
        conn: Conn, sys_ctx: ExecutionContext, school: dict[str, Any],
        heard: list[WriteEvent]) -> None:
    with unit_of_work(conn, sys_ctx):
        row = students.create(conn, sys_ctx, student_values(school)).unwrap()
        add_write_listener(heard.append)  # nobody listened when the write was made
        assert heard == []  # not before COMMIT
    assert [(e.action, e.ids) for e in heard] == [("CREATE", (row.id,))]


@pytest.mark.sync_only
def test_unheard_only_with_no_listener_and_no_unit_of_work(
        conn: Conn, sys_ctx: ExecutionContext, heard: list[WriteEvent]) -> None:
    assert unheard(conn)
    with unit_of_work(conn, sys_ctx):
        assert current_scope(conn) is not None
        assert not unheard(conn)
    add_write_listener(heard.append)
    assert not unheard(conn)
