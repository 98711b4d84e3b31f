"""audit_log partitioned by month: routing, retention by the month, verify across partitions, and
the in-place upgrade of an unpartitioned log. Real PostgreSQL, throw-away databases."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from returns.result import Failure

from tests.conftest import student_values
from tests.upgrades import migrated_before
from wxdata import ExecutionContext, Purpose, Role, system_context
from wxdata.audit.chain import BreakReason, seal, verify
from wxdata.audit.partitions import (
    DEFAULT_PARTITION,
    drop_expired_partitions,
    ensure_partitions,
    list_partitions,
)
from wxdata.audit.retention import RetentionPolicy, place_hold
from wxdata.cli import main
from wxdata.domains import students
from wxdata.errors import Forbidden, InvalidQuery

Conn = psycopg.Connection[Any]
KEY = b"test-audit-partitions-key-0123456789ab"
SETTLE = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_INSERT = (
    "INSERT INTO audit_log (action, entity_type, user_id, user_name, subject_student_id, "
    "subject_ids, legal_hold, compliance_type, created_at) VALUES (%(action)s, 'Probe', "
    "%(user)s, %(label)s, %(sid)s, CASE WHEN %(sid)s::uuid IS NULL THEN '{}' "
    "ELSE ARRAY[%(sid)s::uuid] END, %(hold)s, 'GENERAL', %(at)s)"
)


def _record(conn: Conn, at: datetime, label: str, *, action: str = "CREATE",
            user: str = "u-part", sid: uuid.UUID | None = None, hold: bool = False) -> None:
    conn.execute(_INSERT, {"action": action, "user": user, "label": label, "sid": sid,
                           "hold": hold, "at": at})


@pytest.fixture
def owner(fresh_database: Callable[[], str]) -> Iterator[Conn]:
    """A superuser connection to a throw-away migrated database."""
    with psycopg.connect(fresh_database(), autocommit=True) as conn:
        yield conn


def _month(conn: Conn, at: datetime) -> str | None:
    row = conn.execute("SELECT audit_log_create_month(%s)", (at,)).fetchone()
    assert row is not None
    return row[0]


def _bounds(conn: Conn) -> dict[str, tuple[datetime | None, datetime | None]]:
    return {p.name: (p.lower, p.upper) for p in list_partitions(conn).unwrap()}


# --- routing ----------------------------------------------------------------------------------------


@settings(max_examples=60, **SETTLE)
@given(at=st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2040, 12, 31),
                       timezones=st.just(UTC)),
       create=st.booleans())
def test_every_record_lands_in_the_month_that_holds_it(owner: Conn, at: datetime,
                                                       create: bool) -> None:
    if create:
        _month(owner, at)
    label = uuid.uuid4().hex
    _record(owner, at, label)
    row = owner.execute("SELECT tableoid::regclass::text, created_at FROM audit_log "
                        "WHERE user_name = %s", (label,)).fetchone()
    assert row is not None
    part, stored = row
    assert stored == at
    bounds = _bounds(owner)
    covering = [n for n, (lo, hi) in bounds.items()
                if lo is not None and hi is not None and lo <= at < hi]
    if part == DEFAULT_PARTITION:
        assert covering == []  # the default only holds what no month holds
    else:
        assert covering == [part]
        lo, hi = bounds[part]
        assert lo is not None and hi is not None
        assert lo.day == 1 and lo.hour == 0 and hi == _next_month(lo)


def _next_month(lo: datetime) -> datetime:
    return (lo.replace(day=28) + timedelta(days=4)).replace(day=1)


def test_a_month_is_not_created_over_records_in_the_default_partition(owner: Conn) -> None:
    at = datetime(1993, 6, 15, 12, tzinfo=UTC)
    _record(owner, at, "early")
    assert _month(owner, at) is None  # the record stays findable where it is
    assert owner.execute("SELECT tableoid::regclass::text FROM audit_log WHERE user_name = "
                         "'early'").fetchone() == (DEFAULT_PARTITION,)
    assert _month(owner, datetime(1993, 7, 1, tzinfo=UTC)) == "audit_log_p199307"
    assert _month(owner, datetime(1993, 7, 31, tzinfo=UTC)) is None  # exists


def test_partitions_are_append_only_too(owner: Conn) -> None:
    name = _month(owner, datetime(1994, 2, 1, tzinfo=UTC))
    assert name is not None
    _record(owner, datetime(1994, 2, 3, tzinfo=UTC), "kept")
    for statement in (f"TRUNCATE {name}", f"DELETE FROM {name}",
                      f"UPDATE {name} SET user_id = 'x'", f"TRUNCATE {DEFAULT_PARTITION}"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            owner.execute(statement)


def test_ensure_partitions_creates_months_ahead_and_is_recorded(owner: Conn) -> None:
    officer = system_context("partitions")
    created = ensure_partitions(owner, officer, 7).unwrap()
    now = datetime.now(UTC)
    bounds = _bounds(owner)
    month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    for _ in range(8):
        assert f"audit_log_p{month:%Y%m}" in bounds
        month = _next_month(month)
    assert set(created) <= set(bounds)
    assert ensure_partitions(owner, officer, 7).unwrap() == ()  # idempotent
    assert isinstance(ensure_partitions(owner, officer, -1).failure(), InvalidQuery)
    assert isinstance(ensure_partitions(owner, officer, 121).failure(), InvalidQuery)
    nurse = ExecutionContext(user_id="u-nurse", role=Role.NURSE, purpose=Purpose.TREATMENT)
    assert isinstance(ensure_partitions(owner, nurse, 1).failure(), Forbidden)
    logged = owner.execute("SELECT count(*) FROM audit_log WHERE entity_type = 'AuditLog' "
                           "AND metadata->>'operation' = 'partitions'").fetchone()
    assert logged == (2,)


def test_cli_creates_and_lists(fresh_database: Callable[[], str], capsys: Any) -> None:
    url = fresh_database()
    assert main(["audit", "--database-url", url, "partitions", "--ahead", "4", "--list"]) == 0
    out = capsys.readouterr().out
    ahead = _next_month(_next_month(_next_month(_next_month(
        datetime.now(UTC).replace(day=1)))))
    assert f"audit_log_p{ahead:%Y%m}" in out and DEFAULT_PARTITION in out


# --- retention by the month ---------------------------------------------------------------------


@pytest.fixture
def aged_months(owner: Conn) -> dict[str, Any]:
    """Five months of 1998, sealed: one holds nothing kept, the others one kept record each."""
    officer = system_context("retention")
    month = {m: datetime(1998, m, 10, tzinfo=UTC) for m in range(1, 6)}
    for at in month.values():
        assert _month(owner, at) is not None
    student = students.create(owner, officer, student_values(_school(owner))).unwrap()
    for i in range(3):
        _record(owner, month[1] + timedelta(hours=i), "jan")
    _record(owner, month[2], "feb")
    _record(owner, month[2], "feb-flag-held", hold=True)  # its own legal-hold flag
    _record(owner, month[3], "mar")
    _record(owner, month[3], "mar-ferpa", action="READ", sid=student.id)  # disclosure, kept
    _record(owner, month[5], "may")
    _record(owner, month[5], "may-user-held", user="u-held")
    place_hold(owner, officer, case_ref="case-p", user_id="u-held").unwrap()
    seal(owner, KEY).unwrap()
    _record(owner, month[4], "apr-unsealed")  # not sealed yet: its month is kept
    return {"officer": officer}


def _school(conn: Conn) -> dict[str, uuid.UUID]:
    tag = uuid.uuid4().hex[:8]
    d = conn.execute("INSERT INTO districts (name, code) VALUES ('D', %s) RETURNING id",
                     (f"PD-{tag}",)).fetchone()
    s = conn.execute("INSERT INTO schools (name, code, district_id) VALUES ('S', %s, %s) "
                     "RETURNING id", (f"PS-{tag}", d[0] if d else None)).fetchone()
    assert d is not None and s is not None
    return {"school_id": s[0], "district_id": d[0]}


def _labels(conn: Conn) -> dict[str, int]:
    return dict(conn.execute("SELECT user_name, count(*) FROM audit_log WHERE user_name IS NOT "
                             "NULL AND entity_type = 'Probe' GROUP BY user_name").fetchall())


def test_drop_keeps_every_month_holding_a_held_kept_or_unsealed_record(
    owner: Conn, aged_months: dict[str, Any],
) -> None:
    officer = aged_months["officer"]
    before = _labels(owner)
    dry = drop_expired_partitions(owner, officer, RetentionPolicy(other_years=1)).unwrap()
    assert [m.name for m in dry.dropped] == ["audit_log_p199801"]
    assert dry.purged == 3
    assert {m.name: (m.held, m.unsealed) for m in dry.kept} == {
        "audit_log_p199802": (1, 0), "audit_log_p199803": (1, 0),
        "audit_log_p199804": (0, 1), "audit_log_p199805": (1, 0)}
    assert _labels(owner) == before  # a dry run changes nothing
    assert isinstance(drop_expired_partitions(owner, officer, dry_run=False), Failure)  # no key
    nurse = ExecutionContext(user_id="u-nurse", role=Role.NURSE, purpose=Purpose.TREATMENT)
    assert isinstance(drop_expired_partitions(owner, nurse, dry_run=False, key=KEY).failure(),
                      Forbidden)

    done = drop_expired_partitions(owner, officer, RetentionPolicy(other_years=1),
                                   dry_run=False, key=KEY).unwrap()
    assert [m.name for m in done.dropped] == ["audit_log_p199801"] and done.purge_id is not None
    bounds = _bounds(owner)
    assert "audit_log_p199801" not in bounds
    assert {"audit_log_p199802", "audit_log_p199803", "audit_log_p199804",
            "audit_log_p199805"} <= set(bounds)
    after = _labels(owner)
    assert "jan" not in after
    assert after == {k: v for k, v in before.items() if k != "jan"}  # every kept record remains
    seal(owner, KEY).unwrap()
    report = verify(owner, KEY).unwrap()
    assert report.ok and report.purged == 3, report.broken


def test_verify_across_partitions_still_names_a_deletion(
    owner: Conn, aged_months: dict[str, Any],
) -> None:
    drop_expired_partitions(owner, aged_months["officer"], RetentionPolicy(other_years=1),
                            dry_run=False, key=KEY).unwrap()
    seal(owner, KEY).unwrap()
    assert verify(owner, KEY).unwrap().ok
    victim = owner.execute("SELECT a.seq FROM audit_log a WHERE a.user_name = 'mar'").fetchone()
    assert victim is not None
    owner.execute("SET session_replication_role = replica")
    owner.execute("DELETE FROM audit_log_p199803 WHERE user_name = 'mar'")
    owner.execute("SET session_replication_role = origin")
    broken = verify(owner, KEY).unwrap().broken
    assert broken is not None and broken.reason is BreakReason.DELETED
    assert broken.seq == victim[0]


def test_a_hold_on_a_dropped_month_record_is_impossible_after_the_check(
    owner: Conn, aged_months: dict[str, Any],
) -> None:
    """A month that becomes held before the drop is kept (the check runs under the lock)."""
    officer = aged_months["officer"]
    place_hold(owner, officer, case_ref="case-late", user_id="u-part").unwrap()
    done = drop_expired_partitions(owner, officer, RetentionPolicy(other_years=1),
                                   dry_run=False, key=KEY).unwrap()
    assert done.dropped == ()
    assert _labels(owner)["jan"] == 3


# --- upgrade in place -----------------------------------------------------------------------------


def test_upgrade_converts_an_unpartitioned_log_and_the_chain_still_verifies(
    server_url: str, tmp_path: Path,
) -> None:
    with migrated_before(server_url, tmp_path / "sql", "0212_") as (conn, upgrade):
        assert conn.execute("SELECT relkind FROM pg_class WHERE relname = 'audit_log'"
                            ).fetchone() == ("r",)
        now = datetime.now(UTC)
        for days in (0, 40, 400, 3000):
            _record(conn, now - timedelta(days=days), f"old-{days}")
        seal(conn, KEY).unwrap()
        rows = conn.execute("SELECT seq, id, user_name FROM audit_log ORDER BY seq").fetchall()
        upgrade()
        assert conn.execute("SELECT relkind FROM pg_class WHERE relname = 'audit_log'"
                            ).fetchone() == ("p",)
        assert conn.execute("SELECT seq, id, user_name FROM audit_log ORDER BY seq"
                            ).fetchall() == rows
        report = verify(conn, KEY).unwrap()
        assert report.ok and report.verified == len(rows), report.broken
        _record(conn, now, "after")
        new = conn.execute("SELECT seq FROM audit_log WHERE user_name = 'after'").fetchone()
        assert new is not None and new[0] > max(r[0] for r in rows)
        parts = {p.name for p in list_partitions(conn).unwrap()}
        oldest = now - timedelta(days=3000)
        assert f"audit_log_p{oldest:%Y%m}" in parts and DEFAULT_PARTITION in parts


def test_a_duplicate_id_in_another_month_breaks_verification(owner: Conn) -> None:
    """The primary key is (id, created_at): a copy of a sealed record with the same id in another
    month is not refused by a constraint, so verify must catch it."""
    _record(owner, datetime.now(UTC), "original")
    seal(owner, KEY).unwrap()
    assert verify(owner, KEY).unwrap().ok
    assert _month(owner, datetime(1996, 3, 1, tzinfo=UTC)) is not None
    owner.execute(
        "INSERT INTO audit_log OVERRIDING SYSTEM VALUE SELECT seq, id, action, entity_type, "
        "entity_id, entity_ids, subject_student_id, subject_ids, user_id, 'copy', user_role, "
        "changes, previous_values, new_values, fields_disclosed, ip_address, user_agent, "
        "request_id, session_id, correlation_id, purpose, break_glass_reason, is_phi, "
        "compliance_type, severity, success, error_message, metadata, tags, transaction_id, "
        "legal_hold, '1996-03-02T00:00:00Z' FROM audit_log WHERE user_name = 'original'")
    assert verify(owner, KEY).unwrap().broken is not None
