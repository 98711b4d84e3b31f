"""Audit reports, exports and retention against the real PostgreSQL.

Reports read the shared test database and filter by the students/users each test creates; tests
that need exact global counts (statistics, retention) use a throw-away clone whose audit trail is
emptied first (``audit_url``).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from returns.result import Failure, Success

from tests.conftest import student_values
from tests.integration import test_audit_chain as _chain_tests
from wxdata import ExecutionContext, Purpose, Role, system_context
from wxdata.audit import reports
from wxdata.audit.chain import seal, verify
from wxdata.audit.export import FORMULA_START, export, safe_cell
from wxdata.audit.retention import (
    RetentionPolicy,
    active_holds,
    apply_retention,
    place_hold,
    policy,
    release_hold,
)
from wxdata.config import configure
from wxdata.config import settings as wx_settings
from wxdata.domains import health_records, students
from wxdata.errors import Forbidden, InvalidQuery, Unavailable, ValidationFailed

KEY = b"test-audit-report-key-0123456789abcdef"

# The throw-away database fixtures of the chain tests (one clone per module, audit trail emptied).
audit_db = _chain_tests.audit_db
audit_url = _chain_tests.audit_url


def _nurse(user: str, purpose: Purpose = Purpose.TREATMENT, **kw: Any) -> ExecutionContext:
    return ExecutionContext(user_id=user, role=Role.NURSE, purpose=purpose,
                            ip_address="10.2.3.4", request_id=f"req-{uuid.uuid4().hex[:8]}", **kw)


@pytest.fixture
def officer() -> ExecutionContext:
    """A privacy officer reading the audit trail."""
    return ExecutionContext(user_id=f"u-officer-{uuid.uuid4().hex[:6]}", role=Role.ADMIN,
                            purpose=Purpose.COMPLIANCE, request_id="req-officer")


def _health_record(conn: psycopg.Connection[Any], ctx: ExecutionContext, sid: uuid.UUID) -> Any:
    return health_records.create(conn, ctx, {
        "student_id": sid, "record_type": "ILLNESS", "title": "Fever", "description": "38.5 C",
        "record_date": date(2024, 3, 1)}).unwrap()


@pytest.fixture
def seeded(conn: psycopg.Connection[Any], make_student: Callable[..., Any],
           school: dict[str, uuid.UUID]) -> dict[str, Any]:
    """Two students, two nurses of their school; reads, a list read, an update, a health record."""
    s1, s2 = make_student(), make_student()
    here = {school["school_id"]}
    n1 = _nurse(f"u-n1-{uuid.uuid4().hex[:6]}", school_ids=here)
    n2 = _nurse(f"u-n2-{uuid.uuid4().hex[:6]}", Purpose.EMERGENCY, school_ids=here)
    students.find_by_id(conn, n1, s1.id).unwrap()
    students.find_by_id(conn, n1, s1.id).unwrap()
    students.find_by_id(conn, n2, s1.id).unwrap()
    students.find_by_id(conn, n1, s2.id).unwrap()
    students.update(conn, n1, s1.id, {"grade": "6"}).unwrap()
    record = _health_record(conn, n1, s1.id)
    listed = students.find_many(conn, n1, {"id": {"in": [s1.id, s2.id]}}).unwrap()
    assert listed.total == 2
    return {"s1": s1, "s2": s2, "n1": n1, "n2": n2, "record": record}


# --- accounting of disclosures -----------------------------------------------------------------------


def test_accounting_lists_exactly_the_students_reads_and_writes(
    conn: psycopg.Connection[Any], seeded: dict[str, Any], officer: ExecutionContext,
) -> None:
    s1, n1, n2 = seeded["s1"], seeded["n1"].user_id, seeded["n2"].user_id
    page = reports.accounting_of_disclosures(conn, officer, s1.id, None, None).unwrap()
    rows = list(page)
    assert page.next_cursor is None and len(rows) == 7
    assert Counter((r.user_id, r.action, r.entity_type) for r in rows) == Counter({
        ("system", "CREATE", "Student"): 1,
        (n1, "READ", "Student"): 3,  # two by id, one list naming both students
        (n2, "READ", "Student"): 1,
        (n1, "UPDATE", "Student"): 1,
        (n1, "CREATE", "HealthRecord"): 1,
    })
    assert {r.purpose for r in rows if r.user_id == n2} == {"EMERGENCY"}
    assert {r.purpose for r in rows if r.user_id == n1} == {"TREATMENT"}
    update = next(r for r in rows if r.action == "UPDATE")
    assert update.fields == ("grade",)
    reads = [r for r in rows if r.action == "READ" and r.user_id == n2]
    assert "date_of_birth" in reads[0].fields and all(r.success for r in rows)
    assert [r.seq for r in rows] == sorted(r.seq for r in rows)

    # Reading the accounting is itself a disclosure: it appears in the next accounting.
    again = list(reports.accounting_of_disclosures(conn, officer, s1.id).unwrap())
    assert len(again) == 8
    last = again[-1]
    assert (last.user_id, last.action, last.entity_type, last.purpose) == (
        officer.user_id, "READ", "AuditLog", "COMPLIANCE")

    other = list(reports.accounting_of_disclosures(conn, officer, seeded["s2"].id).unwrap())
    assert Counter(r.action for r in other) == Counter({"CREATE": 1, "READ": 2})


def test_accounting_window_and_pages(conn: psycopg.Connection[Any], seeded: dict[str, Any],
                                     officer: ExecutionContext) -> None:
    s1 = seeded["s1"]
    full = list(reports.accounting_of_disclosures(conn, officer, s1.id).unwrap())
    middle = full[3].created_at
    windowed = list(reports.accounting_of_disclosures(conn, officer, s1.id, since=middle,
                                                      until=full[6].created_at).unwrap())
    assert [r.seq for r in windowed] == [r.seq for r in full[3:6]]
    seen: list[int] = []
    cursor = None
    while True:
        page = reports.accounting_of_disclosures(conn, officer, s1.id, cursor=cursor,
                                                 limit=2).unwrap()
        assert len(page) <= 2
        seen.extend(r.seq for r in page)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen[: len(full)] == [r.seq for r in full]
    assert len(seen) == len(set(seen))


def test_reports_refuse_bad_input(conn: psycopg.Connection[Any], officer: ExecutionContext) -> None:
    sid = uuid.uuid4()
    bad = [
        reports.accounting_of_disclosures(conn, officer, sid, cursor="not-a-cursor"),
        reports.accounting_of_disclosures(conn, officer, sid, limit=0),
        reports.accounting_of_disclosures(conn, officer, sid, limit=reports.MAX_LIMIT + 1),
        reports.accounting_of_disclosures(conn, officer, sid, since=datetime(2024, 1, 1)),
        reports.accounting_of_disclosures(conn, officer, "1' OR '1'='1"),
        reports.user_activity(conn, officer, ""),
    ]
    for result in bad:
        assert isinstance(result, Failure) and isinstance(result.failure(), InvalidQuery)


def test_a_nurse_may_not_read_the_audit_trail_and_the_refusal_is_recorded(
    conn: psycopg.Connection[Any], seeded: dict[str, Any],
) -> None:
    nurse = _nurse(f"u-curious-{uuid.uuid4().hex[:6]}")
    result = reports.accounting_of_disclosures(conn, nurse, seeded["s1"].id)
    assert isinstance(result, Failure) and isinstance(result.failure(), Forbidden)
    denied = conn.execute(
        "SELECT action, success, entity_type FROM audit_log WHERE user_id = %s",
        (nurse.user_id,)).fetchall()
    assert denied == [("ACCESS_DENIED", False, "AuditLog")]


def test_entity_history_and_user_activity(conn: psycopg.Connection[Any], seeded: dict[str, Any],
                                          officer: ExecutionContext) -> None:
    record, n1 = seeded["record"], seeded["n1"]
    health_records.update(conn, n1, record.id, {"title": "Fever, resolved"}).unwrap()
    health_records.find_by_id(conn, n1, record.id).unwrap()
    history = list(reports.entity_history(conn, officer, "HealthRecord", record.id).unwrap())
    assert [e.action for e in history] == ["CREATE", "UPDATE", "READ"]
    assert history[1].changes["title"] == {"before": "Fever", "after": "Fever, resolved"}
    assert history[0].changes["description"] == "[MASKED]"  # clinical text never stored
    activity = list(reports.user_activity(conn, officer, n1.user_id).unwrap())
    assert [e.action for e in activity] == ["READ", "READ", "READ", "UPDATE", "CREATE", "READ",
                                            "UPDATE", "READ"]
    assert {e.user_id for e in activity} == {n1.user_id}


def test_statistics_count_by_action_entity_user_and_severity(audit_url: str) -> None:
    officer = system_context("stats")
    with psycopg.connect(audit_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO audit_log (action, entity_type, user_id, severity, success, is_phi) "
            "SELECT a, e, u, s, ok, true FROM (VALUES "
            " ('READ', 'Student', 'u1', 'MEDIUM', true), ('READ', 'Student', 'u1', 'MEDIUM', true),"
            " ('UPDATE', 'Student', 'u2', 'MEDIUM', true),"
            " ('READ', 'HealthRecord', 'u2', 'MEDIUM', true),"
            " ('ACCESS_DENIED', 'HealthRecord', 'u3', 'HIGH', false)) v(a, e, u, s, ok)")
        stats = reports.statistics(conn, officer).unwrap()
        assert (stats.total, stats.failures, stats.phi, stats.users) == (5, 1, 5, 3)
        assert stats.by_action == (("READ", 3), ("ACCESS_DENIED", 1), ("UPDATE", 1))
        assert stats.by_entity == (("HealthRecord", 2), ("Student", 3))[::-1]
        assert stats.by_severity == (("MEDIUM", 4), ("HIGH", 1))
        assert stats.by_user == (("u1", 2), ("u2", 2), ("u3", 1))
        assert reports.statistics(conn, officer).unwrap().total == 6  # the first one, recorded
        top = reports.statistics(conn, officer, top_users=1).unwrap()
        assert top.by_user == (("system", 2),)  # its own two READs tie u1, u2; then by name


# --- exports ---------------------------------------------------------------------------------------


_NASTY = ("=HYPERLINK(\"http://x\")", "+SUM(1,2)", "-2+3", "@cmd", "\tTAB", "\rCR")


@pytest.fixture
def exported_student(conn: psycopg.Connection[Any], school: dict[str, uuid.UUID]) -> Any:
    """A student read by contexts whose recorded fields start with formula characters."""
    student = students.create(conn, system_context("export"),
                              student_values(school, first_name="=1+1")).unwrap()
    for i, text in enumerate(_NASTY):
        ctx = _nurse(f"u-x{i}-{uuid.uuid4().hex[:4]}", user_agent=text, user_name=text,
                     school_ids={school["school_id"]})
        students.find_by_id(conn, ctx, student.id).unwrap()
    return student


def _count(conn: psycopg.Connection[Any], sid: uuid.UUID) -> int:
    row = conn.execute("SELECT count(*) FROM audit_log WHERE subject_ids @> ARRAY[%s]::uuid[]",
                       (sid,)).fetchone()
    assert row is not None
    return int(row[0])


def test_csv_export_is_injection_safe_exact_and_audited(
    conn: psycopg.Connection[Any], exported_student: Any, officer: ExecutionContext,
) -> None:
    sid = exported_student.id
    expected = _count(conn, sid)
    out = io.StringIO()
    report = export(conn, officer, out, "csv", student_id=sid, batch_size=2).unwrap()
    rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    header, body = rows[0], rows[1:]
    assert report.rows == len(body) == expected == 1 + len(_NASTY)
    assert "transaction_id" in header and "legal_hold" in header
    for row in body:
        for cell in row:
            assert not cell.startswith(FORMULA_START), cell
    agents = {r[header.index("user_agent")] for r in body}
    assert {safe_cell(t) for t in _NASTY} <= agents
    assert "'=HYPERLINK(\"http://x\")" in agents
    record = conn.execute(
        "SELECT user_id, success, metadata->>'rows', metadata->>'format', subject_ids "
        "FROM audit_log WHERE action = 'EXPORT' AND entity_type = 'AuditLog' AND user_id = %s",
        (officer.user_id,)).fetchall()
    assert record == [(officer.user_id, True, str(expected), "csv", [sid])]
    assert _count(conn, sid) == expected + 1  # the export is in the student's accounting


def test_json_exports_lines_and_array(conn: psycopg.Connection[Any], exported_student: Any,
                                      officer: ExecutionContext) -> None:
    sid = exported_student.id
    expected = _count(conn, sid)
    lines = io.StringIO()
    assert export(conn, officer, lines, "json", student_id=sid).unwrap().rows == expected
    docs = [json.loads(line) for line in lines.getvalue().splitlines()]
    assert len(docs) == expected and all(sid.hex in d["subject_ids"][0].replace("-", "")
                                         for d in docs)
    assert docs[0]["action"] == "CREATE" and isinstance(docs[0]["new_values"], dict)
    binary = io.BytesIO()
    assert export(conn, officer, binary, "json", student_id=sid, json_array=True).unwrap().rows \
        == expected + 1
    array = json.loads(binary.getvalue().decode("utf-8"))
    assert isinstance(array, list) and len(array) == expected + 1
    assert array[-1]["action"] == "EXPORT"


def test_a_failing_export_is_recorded_as_failed(conn: psycopg.Connection[Any],
                                                exported_student: Any,
                                                officer: ExecutionContext) -> None:
    class Breaks(io.StringIO):
        calls = 0

        def write(self, text: str) -> int:
            Breaks.calls += 1
            if Breaks.calls > 3:
                raise OSError("disk full")
            return super().write(text)

    result = export(conn, officer, Breaks(), "csv", student_id=exported_student.id, batch_size=1)
    assert isinstance(result, Failure) and isinstance(result.failure(), Unavailable)
    rows = conn.execute(
        "SELECT success, error_message, (metadata->>'rows')::int FROM audit_log "
        "WHERE action = 'EXPORT' AND user_id = %s", (officer.user_id,)).fetchall()
    assert rows == [(False, "OUTPUT_FAILED", 2)]


class _ClosedUnder(io.StringIO):
    """An output closed under the export after ``keep`` writes (a client that went away: web
    frameworks raise a ValueError, not an OSError)."""

    def __init__(self, keep: int) -> None:
        super().__init__()
        self.keep = keep

    def write(self, text: str) -> int:
        if self.keep == 0:
            raise ValueError("I/O operation on closed file.")
        self.keep -= 1
        return super().write(text)


def test_an_export_interrupted_by_any_exception_records_what_it_wrote(
    conn: psycopg.Connection[Any], exported_student: Any, officer: ExecutionContext,
) -> None:
    sid = exported_student.id
    out = _ClosedUnder(keep=3)  # the header and two batches of one record
    with pytest.raises(ValueError, match="closed file"):
        export(conn, officer, out, "csv", student_id=sid, batch_size=1)
    assert len(list(csv.reader(io.StringIO(out.getvalue(), newline="")))) == 3
    rows = conn.execute(
        "SELECT success, error_message, (metadata->>'rows')::int, subject_ids FROM audit_log "
        "WHERE action = 'EXPORT' AND user_id = %s", (officer.user_id,)).fetchall()
    assert rows == [(False, "OUTPUT_FAILED", 2, [sid])]  # both records written are accounted for

    class Interrupted(io.StringIO):
        def write(self, text: str) -> int:
            if text and self.tell():  # a second record: Ctrl-C
                raise KeyboardInterrupt
            return super().write(text)

    with pytest.raises(KeyboardInterrupt):
        export(conn, officer, Interrupted(), "json", student_id=sid, batch_size=1)
    rows = conn.execute(
        "SELECT success, error_message, (metadata->>'rows')::int FROM audit_log "
        "WHERE action = 'EXPORT' AND user_id = %s ORDER BY seq", (officer.user_id,)).fetchall()
    assert rows[1:] == [(False, "OUTPUT_FAILED", 1)]


def test_export_refusals(conn: psycopg.Connection[Any], officer: ExecutionContext) -> None:
    nurse = _nurse("u-no-export")
    assert isinstance(export(conn, nurse, io.StringIO()).failure(), Forbidden)
    assert isinstance(export(conn, officer, io.StringIO(), "xml").failure(),  # type: ignore[arg-type]
                      InvalidQuery)
    naive = export(conn, officer, io.StringIO(), since=datetime(2024, 1, 1))
    assert isinstance(naive.failure(), InvalidQuery)


# --- retention -------------------------------------------------------------------------------------


_OLD = (
    "INSERT INTO audit_log (action, entity_type, entity_id, subject_student_id, subject_ids,"
    " user_id, user_name, is_phi, compliance_type, legal_hold, created_at) "
    "SELECT 'READ', %(entity)s, %(eid)s, %(sid)s, CASE WHEN %(sid)s::uuid IS NULL THEN '{}'"
    " ELSE ARRAY[%(sid)s::uuid] END, 'u-old', %(label)s, %(phi)s, %(ctype)s, %(hold)s,"
    " now() - make_interval(years => %(years)s) FROM generate_series(1, %(n)s)"
)


def _old(conn: psycopg.Connection[Any], n: int, years: int, label: str, *, phi: bool = True,
         hold: bool = False, sid: uuid.UUID | None = None, entity: str = "Student",
         eid: uuid.UUID | None = None) -> None:
    conn.execute(_OLD, {"n": n, "years": years, "phi": phi, "hold": hold, "sid": sid,
                        "label": label,
                        "entity": entity, "eid": eid,
                        "ctype": "HIPAA" if phi else "GENERAL"})


@pytest.fixture
def aged(audit_url: str) -> Iterator[tuple[psycopg.Connection[Any], dict[str, Any]]]:
    """A fresh database with audit records of known ages, holds and classes, sealed."""
    officer = system_context("retention")
    held_student, held_entity = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(audit_url, autocommit=True) as conn:
        _old(conn, 3, 7, "phi-7y")  # PHI, past 6 years: eligible
        _old(conn, 2, 5, "phi-5y")  # PHI, within 6 years: kept
        _old(conn, 2, 2, "general-2y", phi=False)  # eligible only with other_years <= 2
        _old(conn, 1, 7, "flag-held", hold=True)  # its own legal_hold flag
        _old(conn, 2, 7, "student-held", sid=held_student)  # student hold
        _old(conn, 1, 7, "entity-held", entity="HealthRecord", eid=held_entity)  # entity hold
        student_hold = place_hold(conn, officer, case_ref="case-1", student_id=held_student)
        place_hold(conn, officer, case_ref="case-2", entity_type="HealthRecord",
                   entity_id=held_entity).unwrap()
        assert seal(conn, KEY).unwrap().sealed == 13  # 11 old + 2 hold records
        _old(conn, 1, 7, "unsealed")  # old but not sealed yet: never purged
        yield conn, {"officer": officer, "student_hold": student_hold.unwrap()}


def test_retention_dry_run_counts_and_holds_are_never_eligible(
    aged: tuple[psycopg.Connection[Any], dict[str, Any]],
) -> None:
    conn, facts = aged
    officer = facts["officer"]
    before = conn.execute("SELECT count(*) FROM audit_log").fetchone()
    dry = apply_retention(conn, officer, RetentionPolicy(other_years=1)).unwrap()
    assert (dry.eligible, dry.held, dry.unsealed, dry.purged) == (5, 4, 1, 0)
    default = apply_retention(conn, officer).unwrap()
    assert (default.eligible, default.held) == (3, 4)
    after = conn.execute("SELECT count(*) FROM audit_log").fetchone()
    assert before is not None and after is not None
    assert after[0] == before[0] + 2, "a dry run deletes nothing (it records itself)"
    release_hold(conn, officer, facts["student_hold"], case_ref="case-1 closed").unwrap()
    assert [h.case_ref for h in active_holds(conn, officer).unwrap()] == ["case-2"]
    released = apply_retention(conn, officer).unwrap()
    assert (released.eligible, released.held) == (5, 2)


def test_the_floor_cannot_be_lowered() -> None:
    with pytest.raises(ValueError, match="phi_years"):
        RetentionPolicy(phi_years=5)
    with pytest.raises(ValueError, match="other_years"):
        RetentionPolicy(other_years=0)
    assert isinstance(policy(5, 6).failure(), ValidationFailed)
    assert policy(7, 1) == Success(RetentionPolicy(7, 1))


def test_purge_removes_only_eligible_records_and_the_chain_still_verifies(
    aged: tuple[psycopg.Connection[Any], dict[str, Any]],
) -> None:
    conn, facts = aged
    officer = facts["officer"]
    assert isinstance(apply_retention(conn, officer, dry_run=False), Failure)  # no key
    purge = apply_retention(conn, officer, RetentionPolicy(other_years=1), dry_run=False,
                            key=KEY).unwrap()
    assert (purge.purged, purge.eligible, purge.held, purge.purge_id) == (5, 5, 4, 1)
    left = dict(conn.execute("SELECT user_name, count(*) FROM audit_log WHERE user_id = 'u-old' "
                             "GROUP BY user_name").fetchall())
    assert left == {"phi-5y": 2, "flag-held": 1, "student-held": 2, "entity-held": 1,
                    "unsealed": 1}
    seal(conn, KEY).unwrap()
    report = verify(conn, KEY).unwrap()
    assert report.ok and report.purged == 5, report.broken
    bulk = conn.execute("SELECT (metadata->>'purged')::int FROM audit_log "
                        "WHERE action = 'BULK_DELETE' AND entity_type = 'AuditLog'").fetchall()
    assert bulk == [(5,)]
    again = apply_retention(conn, officer, RetentionPolicy(other_years=1), dry_run=False,
                            key=KEY).unwrap()
    assert again.purged == 1  # the old record sealed since, nothing else


def test_the_database_guards_the_purge_path(
    aged: tuple[psycopg.Connection[Any], dict[str, Any]],
) -> None:
    conn, _ = aged
    for where in ("legal_hold", "created_at > now() - interval '6 years'",
                  "created_at < now() - interval '6 years' AND NOT legal_hold"):
        with conn.transaction():
            conn.execute("SELECT set_config('wxdata.retention_purge', 'on', true)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(f"DELETE FROM audit_log WHERE {where}")
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("DELETE FROM audit_log")  # without the purge flag, nothing at all
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("UPDATE audit_legal_hold SET case_ref = 'x'")


def test_forged_purge_markers_do_not_excuse_a_deletion(
    aged: tuple[psycopg.Connection[Any], dict[str, Any]],
) -> None:
    conn, facts = aged
    apply_retention(conn, facts["officer"], RetentionPolicy(other_years=1), dry_run=False,
                    key=KEY).unwrap()
    victim = conn.execute("SELECT s.position, s.audit_id FROM audit_seal s JOIN audit_log a "
                          "ON a.id = s.audit_id WHERE a.legal_hold").fetchone()
    assert victim is not None
    conn.execute("SET session_replication_role = replica")
    conn.execute("DELETE FROM audit_log WHERE id = %s", (victim[1],))
    conn.execute("UPDATE audit_seal SET audit_id = NULL WHERE position = %s", (victim[0],))
    conn.execute("INSERT INTO audit_purged (position, purge_id, mac) VALUES (%s, 1, %s)",
                 (victim[0], bytes(32)))
    conn.execute("SET session_replication_role = origin")
    broken = verify(conn, KEY).unwrap().broken
    assert broken is not None and broken.reason.value == "deleted"
    assert broken.position == victim[0]


def test_retention_and_holds_need_an_admin(
    aged: tuple[psycopg.Connection[Any], dict[str, Any]], audit_url: str, app_url_for: Any,
) -> None:
    nurse = _nurse("u-nurse-retention")
    school_admin = attrs.evolve(nurse, role=Role.SCHOOL_ADMIN)
    # the application role's connection: refused for the context's role alone
    with psycopg.connect(app_url_for(audit_url), autocommit=True) as conn:
        assert isinstance(apply_retention(conn, nurse).failure(), Forbidden)
        assert isinstance(place_hold(conn, nurse, case_ref="x", user_id="u1").failure(), Forbidden)
        assert isinstance(apply_retention(conn, school_admin).failure(), Forbidden)
        assert isinstance(place_hold(conn, system_context("h"), case_ref="x").failure(),
                          ValidationFailed)


def test_the_application_role_cannot_purge(
    aged: tuple[psycopg.Connection[Any], dict[str, Any]], audit_url: str, app_url_for: Any,
) -> None:
    conn, facts = aged
    with psycopg.connect(app_url_for(audit_url), autocommit=True) as app:
        result = apply_retention(app, facts["officer"], RetentionPolicy(other_years=1),
                                 dry_run=False, key=KEY)
    assert isinstance(result.failure(), Forbidden)
    assert conn.execute("SELECT count(*) FROM audit_purge").fetchone() == (0,)


# --- the CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def configured_key() -> Iterator[None]:
    previous = configure(attrs.evolve(wx_settings(), audit_hmac_key=KEY))
    try:
        yield
    finally:
        configure(previous)


def test_cli_export_report_and_retention(
    conn: psycopg.Connection[Any], exported_student: Any, configured_key: None,
    tmp_path: Any, capsys: pytest.CaptureFixture[str],
) -> None:
    from wxdata.cli import main

    url = conn.info.dsn
    sid = exported_student.id
    expected = _count(conn, sid)
    out = tmp_path / "audit.csv"
    assert main(["audit", "--database-url", url, "--actor", "u-cli-officer", "export",
                 "--format", "csv", "--student", str(sid), "--out", str(out)]) == 0
    with out.open(newline="", encoding="utf-8") as fh:
        assert len(list(csv.reader(fh))) == expected + 1
    capsys.readouterr()
    assert main(["audit", "--database-url", url, "report", "accounting", "--student", str(sid),
                 "--format", "json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == expected + 1
    assert json.loads(lines[-1])["user_id"] == "u-cli-officer"  # the CLI export, recorded
    assert main(["audit", "--database-url", url, "report", "stats", "--since",
                 datetime.now(UTC).date().isoformat()]) == 0
    assert "total:" in capsys.readouterr().out
    assert main(["audit", "--database-url", url, "retention"]) == 0
    assert "would purge" in capsys.readouterr().out
    assert main(["audit", "--database-url", url, "retention", "--phi-years", "5"]) == 2


# --- the row shaping shared by the sync and the async export --------------------------------------

_CELLS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                   st.lists(st.text(max_size=5), max_size=3))


@hyp_settings(max_examples=100, deadline=None)
@given(rows=st.lists(st.tuples(_CELLS, _CELLS), max_size=12), split=st.integers(1, 5),
       json_array=st.booleans())
def test_encoded_batches_parse_back_to_the_rows_however_they_are_split(
    rows: list[tuple[Any, Any]], split: int, json_array: bool
) -> None:
    from wxdata.audit.export import Encoder

    names = ("a", "b")
    batches = [rows[i:i + split] for i in range(0, len(rows), split)]
    enc = Encoder("csv", names)
    text = enc.head() + "".join(enc.batch(b) for b in batches) + enc.tail()
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert parsed[0] == list(names) and len(parsed) == len(rows) + 1
    for cells, row in zip(parsed[1:], rows, strict=True):  # no text cell runs as a formula
        for cell, value in zip(cells, row, strict=True):
            assert isinstance(value, int) or not cell.startswith(FORMULA_START)
            if isinstance(value, str):
                assert cell == safe_cell(value)
    enc = Encoder("json", names, json_array)
    text = enc.head() + "".join(enc.batch(b) for b in batches) + enc.tail()
    lines = text.split("\n")  # JSON Lines end lines with \n only (U+2028 and U+0085 stay raw)
    objects = json.loads(text) if json_array else [json.loads(line) for line in lines[:-1]]
    assert objects == [dict(zip(names, r, strict=True)) for r in rows]


# --- the async twins: same plans, async I/O, pages and exports as async iterators ------------------


def _arun(db_url: str, body: Callable[[Any], Any]) -> Any:
    """Run ``await body(aconn)`` on a fresh async connection to the test database."""
    from wxdata import aio

    async def main() -> Any:
        aconn = await aio.connect(db_url)
        try:
            return await body(aconn)
        finally:
            await aconn.close()

    return asyncio.run(main())


def test_async_accounting_pages_follow_the_cursor_and_each_page_is_recorded(
    conn: psycopg.Connection[Any], db_url: str, seeded: dict[str, Any], officer: ExecutionContext,
) -> None:
    from wxdata.aio import reports as areports

    s1 = seeded["s1"]
    full = [r.seq for r in reports.accounting_of_disclosures(conn, officer, s1.id).unwrap()]

    async def walk(aconn: Any) -> list[Any]:
        return [page async for page in areports.iter_accounting_of_disclosures(
            aconn, officer, s1.id, limit=2)]

    pages = _arun(db_url, walk)
    seqs = [r.seq for page in pages for r in page.unwrap()]
    assert seqs[:len(full)] == full and len(seqs) == len(set(seqs))
    assert all(len(p.unwrap()) <= 2 for p in pages) and pages[-1].unwrap().next_cursor is None
    recorded = conn.execute(
        "SELECT count(*) FROM audit_log WHERE action = 'READ' AND entity_type = 'AuditLog' "
        "AND user_id = %s AND subject_ids = ARRAY[%s]::uuid[]", (officer.user_id, s1.id)).fetchone()
    assert recorded == (1 + len(pages),)  # the sync read, then one record per async page
    same = _arun(db_url, lambda aconn: areports.accounting_of_disclosures(
        aconn, officer, s1.id, limit=1000))
    assert [r.seq for r in same.unwrap()][:len(full)] == full


def test_async_reports_refuse_a_nurse_and_bad_input(
    conn: psycopg.Connection[Any], db_url: str, officer: ExecutionContext,
) -> None:
    from wxdata.aio import reports as areports

    nurse = _nurse(f"u-no-audit-{uuid.uuid4().hex[:6]}")

    async def calls(aconn: Any) -> list[Any]:
        return [await areports.statistics(aconn, nurse),
                await areports.user_activity(aconn, nurse, "someone"),
                await areports.entity_history(aconn, officer, "Student", "not-a-uuid"),
                [p async for p in areports.iter_user_activity(aconn, officer, "x" * 200)]]

    denied, denied_page, bad_id, bad_pages = _arun(db_url, calls)
    assert isinstance(denied.failure(), Forbidden) and isinstance(denied_page.failure(), Forbidden)
    assert isinstance(bad_id.failure(), InvalidQuery)
    assert len(bad_pages) == 1 and isinstance(bad_pages[0].failure(), InvalidQuery)
    refusals = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'ACCESS_DENIED' "
                            "AND user_id = %s", (nurse.user_id,)).fetchone()
    assert refusals == (2,)
    stats = _arun(db_url, lambda aconn: areports.statistics(aconn, officer)).unwrap()
    assert stats.total >= 1 and stats.by_action


def test_async_export_stream_is_the_sync_export_and_is_audited(
    conn: psycopg.Connection[Any], db_url: str, exported_student: Any, officer: ExecutionContext,
) -> None:
    from wxdata.aio.export import export as aexport

    sid = exported_student.id
    expected = _count(conn, sid)
    chunks: list[str] = []

    async def write(text: str) -> None:
        chunks.append(text)

    report = _arun(db_url, lambda aconn: aexport(aconn, officer, write, "csv", student_id=sid,
                                                 batch_size=2)).unwrap()
    rows = list(csv.reader(io.StringIO("".join(chunks), newline="")))
    assert report.rows == len(rows) - 1 == expected and len(chunks) >= expected // 2
    for row in rows[1:]:
        assert not any(cell.startswith(FORMULA_START) for cell in row)
    synced = io.StringIO()
    export(conn, officer, synced, "csv", student_id=sid)
    again = list(csv.reader(io.StringIO(synced.getvalue(), newline="")))
    assert again[:len(rows)] == rows  # the same rows, shaped the same (plus the async EXPORT)
    record = conn.execute(
        "SELECT success, metadata->>'rows', metadata->>'format' FROM audit_log "
        "WHERE action = 'EXPORT' AND user_id = %s ORDER BY seq", (officer.user_id,)).fetchall()
    assert record[0] == (True, str(expected), "csv")


def test_an_async_export_whose_consumer_stops_is_recorded_as_failed(
    conn: psycopg.Connection[Any], db_url: str, exported_student: Any, officer: ExecutionContext,
) -> None:
    from wxdata.aio.export import export_stream

    async def take_two(aconn: Any) -> list[Any]:
        stream = export_stream(aconn, officer, "json", student_id=exported_student.id,
                               batch_size=1)
        taken = [await anext(stream), await anext(stream)]
        await stream.aclose()  # a client that went away
        return taken

    taken = _arun(db_url, take_two)
    assert all(isinstance(t.unwrap(), str) for t in taken)
    rows = conn.execute(
        "SELECT success, error_message, (metadata->>'rows')::int FROM audit_log "
        "WHERE action = 'EXPORT' AND user_id = %s", (officer.user_id,)).fetchall()
    assert rows == [(False, "OUTPUT_FAILED", 2)]  # both batches handed out are accounted for


def test_an_async_export_interrupted_by_any_exception_records_what_it_wrote(
    conn: psycopg.Connection[Any], db_url: str, exported_student: Any, officer: ExecutionContext,
) -> None:
    from wxdata.aio.export import export as aexport

    sid = exported_student.id
    out = _ClosedUnder(keep=3)  # the header with the first record, and two more records

    async def write(text: str) -> None:
        out.write(text)

    with pytest.raises(ValueError, match="closed file"):
        _arun(db_url, lambda aconn: aexport(aconn, officer, write, "csv", student_id=sid,
                                            batch_size=1))
    rows = conn.execute(
        "SELECT success, error_message, (metadata->>'rows')::int, subject_ids FROM audit_log "
        "WHERE action = 'EXPORT' AND user_id = %s", (officer.user_id,)).fetchall()
    assert rows == [(False, "OUTPUT_FAILED", 4, [sid])]  # the async export counts what it yields


def test_async_fhir_export_streams_audit_events(
    conn: psycopg.Connection[Any], db_url: str, exported_student: Any, officer: ExecutionContext,
) -> None:
    from wxdata.aio.export import export_stream

    sid = exported_student.id
    expected = _count(conn, sid)

    async def collect(aconn: Any) -> list[Any]:
        return [item async for item in export_stream(aconn, officer, "fhir", student_id=sid,
                                                     batch_size=3)]

    items = _arun(db_url, collect)
    *chunks, outcome = [i.unwrap() for i in items]
    assert outcome.rows == expected and outcome.format == "fhir"
    events = [json.loads(line) for line in "".join(chunks).split("\n") if line]
    assert len(events) == expected and {e["resourceType"] for e in events} == {"AuditEvent"}
    assert all(str(sid) in json.dumps(e) for e in events)  # every event names the student
