"""Every successful write leaves exactly one audit record of its action naming the rows written.

Checked for each write function (create, update, delete, restore, bulk_create, update_where),
outside and inside a unit of work, on a PHI entity that soft-deletes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from returns.result import Success

from wxdata import crud
from wxdata.context import ExecutionContext
from wxdata.schema import HEALTH_RECORDS
from wxdata.tx import unit_of_work


@pytest.fixture
def admin(server_url: str, db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A privileged connection to the test database, to read the whole audit trail."""
    url = make_conninfo(server_url, dbname=conninfo_to_dict(db_url)["dbname"])
    with psycopg.connect(url, autocommit=True) as c:
        yield c


def _values(student_id: uuid.UUID, title: str) -> dict[str, Any]:
    return {"student_id": student_id, "record_type": "ILLNESS", "title": title,
            "description": "seen", "record_date": date(2024, 3, 1)}


def _records(admin: psycopg.Connection[Any], request_id: str) -> list[tuple[str, list[Any]]]:
    """(action, ids written) of each successful write record of one request, in order."""
    rows = admin.execute(
        "SELECT action, CASE WHEN entity_id IS NULL THEN entity_ids ELSE ARRAY[entity_id] END "
        "FROM audit_log WHERE request_id = %s AND entity_type = 'HealthRecord' AND success "
        "AND action <> 'READ' ORDER BY seq", (request_id,)).fetchall()
    return [(a, sorted(ids)) for a, ids in rows]


WRITES = ["create", "update", "delete", "restore", "bulk_create", "update_where"]


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(order=st.lists(st.sampled_from(WRITES), min_size=1, max_size=8),
       in_unit=st.booleans())
def test_each_write_leaves_one_record_of_its_action(
    conn: psycopg.Connection[Any], sys_ctx: ExecutionContext, admin: psycopg.Connection[Any],
    make_student: Callable[..., Any], order: list[str], in_unit: bool,
) -> None:
    ctx = attrs.evolve(sys_ctx, request_id=f"req-w-{uuid.uuid4().hex[:12]}")
    student = make_student()
    base = crud.create(conn, ctx, HEALTH_RECORDS, _values(student.id, "base")).unwrap()
    expected: list[tuple[str, list[Any]]] = [("CREATE", [base.id])]
    deleted = False

    def step(kind: str) -> None:
        nonlocal deleted
        if kind == "create":
            row = crud.create(conn, ctx, HEALTH_RECORDS, _values(student.id, "c")).unwrap()
            expected.append(("CREATE", [row.id]))
        elif kind == "update" and not deleted:
            assert isinstance(crud.update(conn, ctx, HEALTH_RECORDS, base.id,
                                          {"title": uuid.uuid4().hex[:8]}), Success)
            expected.append(("UPDATE", [base.id]))
        elif kind == "delete" and not deleted:
            assert crud.delete(conn, ctx, HEALTH_RECORDS, base.id) == Success(None)
            expected.append(("DELETE", [base.id]))
            deleted = True
        elif kind == "restore" and deleted:
            assert isinstance(crud.restore(conn, ctx, HEALTH_RECORDS, base.id), Success)
            expected.append(("RESTORE", [base.id]))
            deleted = False
        elif kind == "bulk_create":
            ids = crud.bulk_create(conn, ctx, HEALTH_RECORDS,
                                   [_values(student.id, "b1"), _values(student.id, "b2")]).unwrap()
            expected.append(("BULK_CREATE", sorted(ids)))
        elif kind == "update_where" and not deleted:
            ids = crud.update_where(conn, ctx, HEALTH_RECORDS, {"id": base.id},
                                    {"title": "bulk"}, max_rows=1).unwrap()
            expected.append(("BULK_UPDATE", sorted(ids)))

    for kind in order:
        if in_unit:
            with unit_of_work(conn, ctx):
                step(kind)
        else:
            step(kind)
    if deleted:  # always end with a restore: the write most easily forgotten
        assert isinstance(crud.restore(conn, ctx, HEALTH_RECORDS, base.id), Success)
        expected.append(("RESTORE", [base.id]))
    assert _records(admin, ctx.request_id or "") == expected


def test_restore_is_recorded(conn: psycopg.Connection[Any], sys_ctx: ExecutionContext,
                             admin: psycopg.Connection[Any],
                             make_student: Callable[..., Any]) -> None:
    row = crud.create(conn, sys_ctx, HEALTH_RECORDS,
                      _values(make_student().id, "r")).unwrap()
    assert crud.delete(conn, sys_ctx, HEALTH_RECORDS, row.id) == Success(None)
    assert isinstance(crud.restore(conn, sys_ctx, HEALTH_RECORDS, row.id), Success)
    actions = [a for (a,) in admin.execute(
        "SELECT action FROM audit_log WHERE entity_id = %s AND action <> 'READ' ORDER BY seq",
        (row.id,)).fetchall()]
    assert actions == ["CREATE", "DELETE", "RESTORE"]


@pytest.mark.parametrize("in_unit", [False, True], ids=["alone", "in a unit of work"])
def test_a_creates_record_names_the_key_the_server_made(
    conn: psycopg.Connection[Any], sys_ctx: ExecutionContext, admin: psycopg.Connection[Any],
    make_student: Callable[..., Any], in_unit: bool,
) -> None:
    """A create sends no id; its record names the row's own, in its columns and its snapshot."""
    ctx = attrs.evolve(sys_ctx, request_id=f"req-k-{uuid.uuid4().hex[:12]}")
    student = make_student()
    if in_unit:
        with unit_of_work(conn, ctx):
            rows = [crud.create(conn, ctx, HEALTH_RECORDS, _values(student.id, t)).unwrap()
                    for t in ("k1", "k2")]
    else:
        rows = [crud.create(conn, ctx, HEALTH_RECORDS, _values(student.id, t)).unwrap()
                for t in ("k1", "k2")]
    assert rows[0].id != rows[1].id
    found = admin.execute(
        "SELECT entity_id, entity_ids, subject_student_id, new_values->>'id',"
        " new_values->>'title' FROM audit_log WHERE request_id = %s AND action = 'CREATE'"
        " ORDER BY seq", (ctx.request_id,)).fetchall()
    assert found == [(r.id, [r.id], student.id, str(r.id), r.title) for r in rows]
