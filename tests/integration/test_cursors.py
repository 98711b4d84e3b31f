"""Keyset cursors: encrypted (no sort value readable), shared by every process holding the key,
bound to the entity, filter, sort and user they were made for, and rotated without a cutover.

Every test runs through both shells: a cursor the async shell made continues in a sync child
process and the other way round (one format, one key).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from returns.result import Failure, Success

from tests.shells import parametrise
from wxdata import crud
from wxdata.config import configure
from wxdata.config import settings as current_settings
from wxdata.context import ExecutionContext
from wxdata.domains import students
from wxdata.errors import InvalidQuery
from wxdata.query import paging
from wxdata.schema.spec import lookup

KEY_A, KEY_B, KEY_C = (bytes([n]) * 32 for n in (1, 2, 3))
BAD = Failure(InvalidQuery("after", "is not a valid cursor for this query"))
ORDER = ["last_name", "date_of_birth"]
ROOT = Path(__file__).resolve().parents[2]

parametrise(globals())

#: Run in a separate interpreter: one keyset page, printed as JSON (ids and the next cursor).
CHILD = """
import json, sys, uuid
import psycopg
from wxdata.context import ExecutionContext, Role
from wxdata.domains import students
url, school, after = sys.argv[1], sys.argv[2], sys.argv[3] or None
ctx = ExecutionContext(user_id="u-cursor", role=Role.NURSE, school_ids={uuid.UUID(school)})
with psycopg.connect(url, autocommit=True) as conn:
    result = students.find_after(conn, ctx, {"school_id": uuid.UUID(school)},
                                 order_by=["last_name", "date_of_birth"], after=after, limit=2)
page = result.map(lambda p: {"ids": [str(r.id) for r in p.data], "next": p.next_cursor})
print(json.dumps(page.value_or({"error": repr(result)})))
"""


@pytest.fixture
def keyed() -> Iterator[Callable[..., None]]:
    """Switch the process settings to given cursor keys; restored afterwards."""
    original = current_settings()

    def use(key: bytes | None, previous: bytes | None = None, master: bytes | None = None) -> None:
        configure(attrs.evolve(original, cursor_key=key, cursor_key_previous=previous,
                               master_key=master))

    use(KEY_A)
    yield use
    configure(original)


@pytest.fixture
def seeded(make_student: Callable[..., Any], school: dict[str, uuid.UUID]) -> list[Any]:
    """Five students with distinctive names and birth dates in one school."""
    tag = uuid.uuid4().hex[:6]
    return [make_student(last_name=f"Zyx{tag}{n}", first_name=f"Qwv{tag}",
                         date_of_birth=date(2013, 1 + n, 11 + n)) for n in range(5)]


@pytest.fixture
def reader(ctx: ExecutionContext, school: dict[str, uuid.UUID]) -> ExecutionContext:
    """A nurse of that school."""
    return attrs.evolve(ctx, user_id="u-cursor", school_ids={school["school_id"]})


def _where(school: dict[str, uuid.UUID]) -> dict[str, Any]:
    return {"school_id": school["school_id"]}


def _first_cursor(conn: psycopg.Connection[Any], reader: ExecutionContext,
                  school: dict[str, uuid.UUID], limit: int = 2) -> str:
    page = students.find_after(conn, reader, _where(school), order_by=ORDER, limit=limit).unwrap()
    assert page.next_cursor is not None
    return page.next_cursor


def _raw(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _child(db_url: str, school: dict[str, uuid.UUID], after: str | None,
           env: dict[str, str]) -> dict[str, Any]:
    full = {k: v for k, v in os.environ.items()  # the cursor keys are the test's to choose
            if not k.startswith("WXDATA_CURSOR") and k != "WXDATA_MASTER_KEY"}
    full.update(env, PYTHONPATH=str(ROOT), WXDATA_ENV="test")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, db_url, str(school["school_id"]), after or ""],
        env=full, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_cursor_made_by_one_process_continues_in_another(
    conn: psycopg.Connection[Any], db_url: str, keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    everything = students.find_after(conn, reader, _where(school), order_by=ORDER, limit=10)
    expected = [str(r.id) for r in everything.unwrap().data]
    env = {"WXDATA_CURSOR_KEY": base64.b64encode(KEY_A).decode()}
    first = _child(db_url, school, None, env)
    assert first["ids"] == expected[:2] and first["next"]
    second = _child(db_url, school, first["next"], env)  # another interpreter, same key
    assert second["ids"] == expected[2:4]
    here = students.find_after(conn, reader, _where(school), order_by=ORDER,
                               after=second["next"], limit=2).unwrap()
    assert [str(r.id) for r in here.data] == expected[4:5]


def test_cursor_from_a_process_without_a_key_is_refused_elsewhere(
    conn: psycopg.Connection[Any], db_url: str, keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID], caplog: pytest.LogCaptureFixture,
) -> None:
    keyed(None)
    paging._process_key.cache_clear()  # a fresh process: no key made yet, none cached
    paging._keys_of.cache_clear()
    with caplog.at_level(logging.WARNING, logger="wxdata.query"):
        token = _first_cursor(conn, reader, school)
    assert any("no cursor key configured" in r.getMessage() for r in caplog.records)
    same_process = students.find_after(conn, reader, _where(school), order_by=ORDER, after=token,
                                       limit=2)
    assert isinstance(same_process, Success) and len(same_process.unwrap().data) == 2
    other = _child(db_url, school, token, {})  # another worker, its own per-process key
    assert "InvalidQuery(field='after'" in other.get("error", ""), other


def test_cursor_holds_no_sort_value(
    conn: psycopg.Connection[Any], keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    page = students.find_after(conn, reader, _where(school), order_by=ORDER, limit=1).unwrap()
    row = page.data[0]
    assert page.next_cursor is not None
    raw = _raw(page.next_cursor)
    for secret in (row.last_name, row.last_name[3:], row.date_of_birth.isoformat(),
                   str(row.id), row.id.hex, "last_name", "date_of_birth"):
        assert secret.encode() not in raw and secret.encode() not in page.next_cursor.encode()
    longer = students.find_after(conn, reader, _where(school), order_by=ORDER, limit=2).unwrap()
    assert longer.next_cursor is not None and len(longer.next_cursor) == len(page.next_cursor)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_tampered_cursor_is_refused(
    conn: psycopg.Connection[Any], keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID], data: st.DataObject,
) -> None:
    raw = bytearray(_raw(_first_cursor(conn, reader, school)))
    index = data.draw(st.integers(0, len(raw) - 1), label="byte")
    raw[index] ^= data.draw(st.integers(1, 255), label="mask")
    result = students.find_after(conn, reader, _where(school), order_by=ORDER,
                                 after=_token(bytes(raw)), limit=2)
    assert result == BAD


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_truncated_or_extended_cursor_is_refused(
    conn: psycopg.Connection[Any], keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID], data: st.DataObject,
) -> None:
    token = _first_cursor(conn, reader, school)
    raw = _raw(token)
    cut = data.draw(st.integers(0, len(raw) - 1), label="keep")
    extra = data.draw(st.binary(max_size=8), label="extra")
    for bad in (_token(raw[:cut]), token[:cut], _token(raw + extra) if extra else "",
                token + "=" * 3, token.replace("-", "+")):
        if bad != token:
            result = students.find_after(conn, reader, _where(school), order_by=ORDER,
                                         after=bad, limit=2)
            assert result == BAD, bad


def test_cursor_replayed_by_another_user_is_refused(
    conn: psycopg.Connection[Any], keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    token = _first_cursor(conn, reader, school)
    other = attrs.evolve(reader, user_id="u-someone-else")
    assert students.find_after(conn, other, _where(school), order_by=ORDER, after=token,
                               limit=2) == BAD
    assert isinstance(students.find_after(conn, reader, _where(school), order_by=ORDER,
                                          after=token, limit=2), Success)


def test_cursor_replayed_with_another_filter_or_sort_is_refused(
    conn: psycopg.Connection[Any], keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    token = _first_cursor(conn, reader, school)
    sid = school["school_id"]
    for where, order in (
        ({"school_id": sid, "grade": "5"}, ORDER),  # another filter shape
        ({"school_id": uuid.uuid4()}, ORDER),  # same shape, another value
        ({"school_id": {"in": [sid]}}, ORDER),  # same rows, another filter
        (_where(school), ["last_name", "-date_of_birth"]),  # another direction
        (_where(school), ["date_of_birth", "last_name"]),  # another order
    ):
        assert students.find_after(conn, reader, where, order_by=order, after=token,
                                   limit=2) == BAD, (where, order)


def test_cursor_for_another_entity_is_refused(
    conn: psycopg.Connection[Any], keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    token = _first_cursor(conn, reader, school)
    vitals = lookup("vital_signs")
    assert vitals is not None
    result = crud.find_after(conn, reader, vitals, None, order_by=["measurement_date"],
                             after=token, limit=2)
    assert result == BAD


def test_rotation_accepts_the_previous_key(
    conn: psycopg.Connection[Any], keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    keyed(KEY_A)
    old = _first_cursor(conn, reader, school)
    keyed(KEY_B, previous=KEY_A)  # rotation: new cursors under B, A's still read
    rotated = students.find_after(conn, reader, _where(school), order_by=ORDER, after=old,
                                  limit=2)
    assert isinstance(rotated, Success) and len(rotated.unwrap().data) == 2
    new = _first_cursor(conn, reader, school)
    keyed(KEY_B)  # rotation finished: A retired
    assert students.find_after(conn, reader, _where(school), order_by=ORDER, after=old,
                               limit=2) == BAD
    assert isinstance(students.find_after(conn, reader, _where(school), order_by=ORDER,
                                          after=new, limit=2), Success)
    keyed(KEY_C, previous=KEY_A)  # a key that never made it is no use
    assert students.find_after(conn, reader, _where(school), order_by=ORDER, after=new,
                               limit=2) == BAD


def test_master_key_derives_the_cursor_key(
    conn: psycopg.Connection[Any], keyed: Callable[..., None], seeded: list[Any],
    reader: ExecutionContext, school: dict[str, uuid.UUID],
) -> None:
    keyed(None, master=KEY_C)
    token = _first_cursor(conn, reader, school)
    keyed(None, master=KEY_C)
    assert isinstance(students.find_after(conn, reader, _where(school), order_by=ORDER,
                                          after=token, limit=2), Success)
    keyed(None, master=KEY_B)
    assert students.find_after(conn, reader, _where(school), order_by=ORDER, after=token,
                               limit=2) == BAD

