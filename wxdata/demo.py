"""``wxdata demo``: a guided walk through the layer on a small synthetic district.

With no database configured it starts the embedded PostgreSQL (in the user's cache directory, see
:mod:`wxdata.embedded`). It creates a database of its own, migrates it, seeds a district, and
shows each guarantee at work: a transaction
enrolling a student with a health record; a nurse reading the record (cache miss, then hit, both
audited); an update and its redacted diff; a failing transaction leaving nothing behind; a
cross-school read refused; the student's accounting of disclosures; cache statistics; and the audit
chain verified. Every step checks what it shows and the command exits 1 if any does not hold.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Any, NoReturn, TypeVar

import attrs
import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from returns.result import Failure, Result

from wxdata._cli import table
from wxdata.context import ExecutionContext, Purpose, Role, system_context
from wxdata.db import connect_kwargs
from wxdata.errors import DataError, NotFound

Conn = psycopg.Connection[Any]
T = TypeVar("T")


class StepFailed(Exception):
    """A demo step did not behave as stated."""


def check(condition: bool, claim: str) -> None:
    """Raise StepFailed unless ``condition`` holds."""
    if not condition:
        raise StepFailed(claim)


@contextmanager
def demo_database(url: str | None) -> Iterator[str]:
    """A database of the demo's own (created and dropped), on the configured or embedded server."""
    from wxdata.db import conninfo

    admin_url = conninfo(url, owner=True)
    name = f"wxdata_demo_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(admin_url, autocommit=True, **connect_kwargs()) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error:
        yield admin_url  # no CREATEDB right: use the configured database as it is
        return
    try:
        yield make_conninfo(admin_url, dbname=name)
    finally:
        with psycopg.connect(admin_url, autocommit=True, **connect_kwargs()) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def demo_app_role(owner: Conn, owner_url: str) -> Iterator[str]:
    """A LOGIN application role of the demo's own (dropped at the end) and the scope key installed.

    The scope key is the configured one, else one generated for this run.
    """
    from wxdata.roles import ensure_app_role, install_scope_key
    from wxdata.tx.token import scope_key, use_fallback_key

    key = scope_key()
    if key is None:
        key = secrets.token_bytes(32)
        use_fallback_key(key)
    install_scope_key(owner, key)
    name, password = f"wxdata_demo_{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(18)
    ensure_app_role(owner, name, password)
    try:
        yield make_conninfo(owner_url, user=name, password=password)
    finally:
        try:
            owner.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE usename = %s AND pid <> pg_backend_pid()", (name,))
            owner.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        except psycopg.Error as exc:  # reported, not fatal: the demo's outcome stands
            print(f"could not drop the demo role (sqlstate {exc.sqlstate})", file=sys.stderr)


def _stop(what: str) -> Callable[[DataError], NoReturn]:
    """A failure handler ending the step: ``StepFailed`` naming ``what`` and the error's message."""

    def stop(error: DataError) -> NoReturn:
        raise StepFailed(f"{what}: {error.message}")

    return stop


def _unwrap(result: Result[T, DataError], what: str) -> T:
    """The value of a step's Result; its failure ends the step (``StepFailed``)."""
    return result.lash(_stop(what)).unwrap()


_AUDIT_ROWS = sql.SQL(
    "SELECT action, user_id, purpose, success, changes FROM audit_log WHERE {} ORDER BY seq")


def _audit_rows(conn: Conn, where: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    """The audit rows matching ``where`` (a constant condition; every value bound)."""
    return conn.execute(_AUDIT_ROWS.format(sql.SQL(where)), params).fetchall()


@attrs.define
class Demo:
    """State shared by the steps."""

    conn: Conn  # the application role: row-level security applies
    owner: Conn  # the owner (migrations, and checks that must see past the school scope)
    url: str
    out: Callable[[str], None]
    facts: dict[str, Any] = attrs.field(factory=dict)


def step_seed(d: Demo) -> None:
    from wxdata.seed import seed

    report = _unwrap(seed(d.conn, system_context("demo"), schools=3, students=60, seed=2026,
                          per_student=2), "seed")
    schools = d.conn.execute("SELECT id, name FROM schools ORDER BY code").fetchall()
    nurses = d.conn.execute("SELECT id, school_id FROM users ORDER BY email").fetchall()
    d.facts.update(schools=schools, nurses=nurses)
    shown = ("School", "User", "Student", "HealthRecord", "Allergy", "StudentMedication",
             "Vaccination", "ClinicVisit", "EmergencyContact")
    d.out(table(["entity", "rows"], [(k, report.rows.get(k, 0)) for k in shown]))
    d.out(f"{report.total} rows across {len(report.rows)} entities loaded with COPY "
          f"at {report.rows_per_second:,.0f} rows/s")
    check(report.rows.get("Student") == 60, "60 students seeded")


def _nurse(d: Demo, index: int = 0) -> ExecutionContext:
    school_id = d.facts["schools"][index][0]
    return ExecutionContext(user_id=f"nurse-{index}", user_name=f"Nurse {index}", role=Role.NURSE,
                            purpose=Purpose.TREATMENT, ip_address="10.0.0.7",
                            request_id=f"demo-{uuid.uuid4().hex[:8]}", school_ids={school_id})


def step_enroll(d: Demo) -> None:
    from wxdata.domains import health_records, students
    from wxdata.tx import Isolation, run_in_scope

    ctx = _nurse(d)
    school_id = d.facts["schools"][0][0]
    district = d.conn.execute("SELECT district_id FROM schools WHERE id = %s", (school_id,)).fetchone()

    def enroll() -> Result[Any, DataError]:
        return students.create(d.conn, ctx, {
            "student_number": "DEMO-0001", "first_name": "Imani", "last_name": "Okafor",
            "date_of_birth": date(2015, 4, 2), "grade": "5", "gender": "FEMALE",
            "enrollment_date": date(2025, 8, 20), "school_id": school_id,
            "district_id": district[0] if district else None,
        }).bind(lambda s: health_records.create(d.conn, ctx, {
            "student_id": s.id, "record_type": "ALLERGY_DOCUMENTATION", "title": "Peanut allergy",
            "description": "Anaphylaxis risk; epinephrine auto-injector in nurse office",
            "record_date": date(2025, 8, 21), "diagnosis": "Peanut allergy",
        }).map(lambda r: (s, r)))

    student, record = _unwrap(run_in_scope(d.conn, ctx, enroll, isolation=Isolation.SERIALIZABLE),
                              "enroll")
    d.facts.update(student=student, record=record, nurse=ctx)
    d.out(table(["student", "number", "grade", "health record", "type"],
                [[f"{student.first_name} {student.last_name}", student.student_number,
                  student.grade, record.title, record.record_type]]))
    created = _audit_rows(d.conn, "entity_id = ANY(%s) AND action = 'CREATE'",
                          ([student.id, record.id],))
    check(len(created) == 2, "both creates audited in the same transaction")
    d.out(f"committed together, SERIALIZABLE; {len(created)} CREATE audit records in the same commit")


def step_read_twice(d: Demo) -> None:
    from wxdata.domains import health_records

    ctx, record = d.facts["nurse"], d.facts["record"]
    reader = _cached_reader()
    timings = []
    for label in ("first read (cache miss)", "second read (cache hit)"):
        started = time.perf_counter()
        got = _unwrap(reader(d.conn, ctx, record.id), label)
        timings.append((label, f"{(time.perf_counter() - started) * 1000:.2f} ms"))
        check(got.id == record.id, "the nurse reads the record")
    reads = _audit_rows(d.conn, "entity_id = %s AND action = 'READ'", (record.id,))
    d.out(table(["read", "time"], timings))
    check(len(reads) == 2, "both reads audited (the cache hit too)")
    d.out(f"{len(reads)} READ audit records: a cache hit is still a disclosure")
    _ = health_records


def _cached_reader() -> Callable[[Conn, ExecutionContext, uuid.UUID], Result[Any, DataError]]:
    """find_by_id for health records, through the cache decorator when the cache layer exists."""
    from wxdata.domains import health_records

    try:
        from wxdata.cache import cached
    except ImportError:  # pragma: no cover - the cache layer ships with wxdata
        return health_records.find_by_id
    return cached(entity=health_records.ENTITY)(health_records.find_by_id)


def step_update(d: Demo) -> None:
    from wxdata.domains import health_records

    ctx, record = d.facts["nurse"], d.facts["record"]
    updated = _unwrap(health_records.update(
        d.conn, ctx, record.id, {"title": "Peanut and tree-nut allergy",
                                 "diagnosis": "Peanut and tree-nut allergy"},
        expected_version=record.version), "update")
    d.facts["record"] = updated
    change = _audit_rows(d.conn, "entity_id = %s AND action = 'UPDATE'", (record.id,))
    check(len(change) == 1, "one UPDATE record")
    diff = change[0][4]
    d.out(json.dumps(diff, indent=2, sort_keys=True))
    check(diff["diagnosis"]["after"] == "[MASKED]", "clinical free text masked in the diff")
    check(diff["title"]["after"] == "Peanut and tree-nut allergy", "plain fields diffed by value")
    stale = health_records.update(d.conn, ctx, record.id, {"title": "x"},
                                  expected_version=record.version)
    check(stale.swap().map(lambda error: error.code).value_or(None) == "CONFLICT",
          "a stale version is a Conflict, never a lost update")
    d.out("a second update with the old version: Failure(Conflict: stale version)")


def step_rollback(d: Demo) -> None:
    from wxdata.domains import health_records, students
    from wxdata.tx import run_in_scope

    ctx = d.facts["nurse"]
    school_id = d.facts["schools"][0][0]

    def failing() -> Result[Any, DataError]:
        return students.create(d.conn, ctx, {
            "student_number": "DEMO-ROLLBACK", "first_name": "Temp", "last_name": "Student",
            "date_of_birth": date(2016, 1, 1), "grade": "4", "gender": "MALE",
            "enrollment_date": date(2025, 8, 20), "school_id": school_id,
        }).bind(lambda s: health_records.create(d.conn, ctx, {
            "student_id": s.id, "record_type": "CHECKUP", "title": "Checkup",
            "description": "follow-up required but no date", "record_date": date(2025, 9, 1),
            "follow_up_required": True,
        }))

    result = run_in_scope(d.conn, ctx, failing)
    check(isinstance(result, Failure), "the second write fails validation")
    left = d.owner.execute("SELECT count(*) FROM students WHERE student_number = 'DEMO-ROLLBACK'"
                          ).fetchone()
    check(left == (0,), "the first write rolled back")
    creates = d.conn.execute(
        "SELECT count(*) FROM audit_log WHERE action = 'CREATE' AND request_id = %s "
        "AND entity_type = 'Student' AND new_values->>'student_number' = 'DEMO-ROLLBACK'",
        (ctx.request_id,)).fetchone()
    check(creates == (0,), "its audit record rolled back with it")
    failed = d.conn.execute(
        "SELECT count(*) FROM audit_log WHERE NOT success AND request_id = %s", (ctx.request_id,)
    ).fetchone()
    d.out(table(["what", "rows"], [["student row left", 0], ["CREATE audit left", 0],
                                   ["failure records (lane 2)", failed[0] if failed else 0]]))


def step_cross_school(d: Demo) -> None:
    from wxdata.domains import students

    other = _nurse(d, 1)
    result = students.find_by_id(d.conn, other, d.facts["student"].id)
    own = _unwrap(students.find_many(d.conn, other, {"grade": {"in": ["4", "5", "6"]}}), "list")
    check(result == Failure(NotFound("Student")), "another school's nurse cannot see the student")
    check(all(s.school_id == other.school_ids.__iter__().__next__() for s in own.data),
          "a list shows only the nurse's own school")
    d.out(f"nurse of school B reading school A's student: {result.failure().message} "
          f"(row-level security, application role); her own list: {own.total} students")


def step_accounting(d: Demo) -> None:
    student = d.facts["student"]
    rows = d.conn.execute(
        "SELECT created_at, user_id, action, entity_type, purpose FROM audit_log "
        "WHERE subject_ids @> ARRAY[%s]::uuid[] ORDER BY seq", (student.id,)).fetchall()
    try:
        from wxdata.audit.reports import accounting_of_disclosures

        report = accounting_of_disclosures(d.conn, system_context("demo-report"), student.id,
                                           None, None)
        rows = report.map(lambda found: [(r.created_at, r.user_id, r.action, r.entity_type,
                                          r.purpose) for r in found]).value_or(rows)
    except ImportError:  # pragma: no cover - the report module ships with wxdata
        pass
    d.out(table(["when", "who", "action", "record", "purpose"],
                [(r[0].strftime("%H:%M:%S"), r[1], r[2], r[3], r[4]) for r in rows]))
    check(len(rows) >= 5, "creates, reads and the update all appear")


def step_cache_stats(d: Demo) -> None:
    try:
        from wxdata.cache import default_cache
    except ImportError:  # pragma: no cover
        d.out("cache layer not installed")
        return
    cache = default_cache()
    if cache is None:
        raise StepFailed("caching is enabled (CACHE_ENABLED)")
    stats = cache.stats()
    summary = stats.summary()
    d.out(table(["metric", "value"], list(summary.items())))
    check(summary.get("hits", 0) >= 1, "the second read was a cache hit")


def step_verify(d: Demo) -> None:
    from wxdata.audit.chain import seal, verify

    key = b"demo-key-" + b"0" * 23
    sealed = _unwrap(seal(d.conn, key), "seal")
    report = _unwrap(verify(d.conn, key), "verify")
    d.out(table(["sealed now", "verified", "pending", "head position", "head hash", "result"],
                [[sealed.sealed, report.verified, report.pending, report.last_position,
                  report.last_hash.hex()[:16], "OK" if report.ok else f"BROKEN: {report.broken}"]]))
    check(report.ok, "the audit chain verifies")
    check(report.verified >= sealed.sealed, "every sealed record verified")


STEPS: tuple[tuple[str, Callable[[Demo], None]], ...] = (
    ("Seed a small district", step_seed),
    ("Enroll a student with a health record, in one transaction", step_enroll),
    ("A nurse reads the record twice: cache miss, then hit — both audited", step_read_twice),
    ("Update the record: its diff, with clinical text masked", step_update),
    ("A failing transaction rolls back, leaving nothing behind", step_rollback),
    ("A nurse of another school is refused", step_cross_school),
    ("The student's accounting of disclosures", step_accounting),
    ("Cache statistics", step_cache_stats),
    ("Seal and verify the audit chain", step_verify),
)


def run(url: str | None = None, out: Callable[[str], None] = print,
        results: list[dict[str, Any]] | None = None) -> int:
    """Run every step; 0 when all held, 1 otherwise (``results`` collects each step's outcome)."""
    from wxdata.migrate import migrate

    failures = 0
    started = time.perf_counter()
    with demo_database(url) as db, psycopg.connect(db, autocommit=True, **connect_kwargs()) as owner:
        migrate(owner)
        with demo_app_role(owner, db) as app_url, \
                psycopg.connect(app_url, autocommit=True, **connect_kwargs()) as conn:
            d = Demo(conn=conn, owner=owner, url=app_url, out=out)
            for number, (title, step) in enumerate(STEPS, 1):
                out(f"\n== {number}. {title}")
                outcome: dict[str, Any] = {"step": number, "title": title, "held": True}
                try:
                    step(d)
                    out("   ok")
                except StepFailed as exc:
                    failures += 1
                    outcome.update(held=False, failed_claim=str(exc))
                    out(f"   FAILED: {exc}")
                if results is not None:
                    results.append(outcome)
    out(f"\n{len(STEPS) - failures}/{len(STEPS)} steps held in {time.perf_counter() - started:.1f} s")
    return 1 if failures else 0


def _cmd_demo(args: argparse.Namespace) -> int:
    if not args.json:
        return run(args.database_url)
    from wxdata._cli import to_json

    results: list[dict[str, Any]] = []
    code = run(args.database_url, out=lambda _: None, results=results)
    print(to_json({"steps": results, "held": sum(r["held"] for r in results),
                   "total": len(STEPS)}))
    return code


def register(sub: Any) -> None:
    """Add ``wxdata demo``."""
    p = sub.add_parser("demo", help="walk through wxdata on a synthetic district",
                       description="Exit 1 when a step does not hold what it shows.")
    p.add_argument("--database-url", default=None,
                   help="server to use, as a role that may create databases "
                        "(default: WXDATA_MIGRATION_URL / DATABASE_URL, else the embedded server)")
    p.add_argument("--json", action="store_true",
                   help="print only each step's outcome, as one JSON document")
    p.set_defaults(handler=_cmd_demo, owner_role=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run())
