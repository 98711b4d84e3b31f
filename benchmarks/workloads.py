"""The workloads: each operation through raw psycopg, wxdata and SQLAlchemy 2 Core / ORM.

Variants, in every workload where they make sense:

- ``raw psycopg``: hand-written SQL, positional parameters, ``prepare=True``, one reused cursor
  (the physical floor; the baseline of every ratio);
- ``raw psycopg + same audit SQL``: the exact statement(s) wxdata sends (captured once from a
  wxdata call through a recording cursor), parameters rebuilt per call: the floor for the audited
  operation, so the difference to ``wxdata (audited)`` is the layer's own Python cost;
- ``wxdata (audited)``: the library as shipped (every PHI read and every write carries its audit
  record in the same statement);
- ``wxdata (AUDIT_ENABLED=false)``: the same calls with the audit switched off, so the layer's cost
  and the audit's cost can be told apart;
- ``raw psycopg + leanest durable record`` (fetch, page, PHI read, create, update): the bare
  statement with the smallest durable record riding in it (one narrow row into an unindexed,
  logged table, ``bench_floor_record``): the physical floor of any operation that must leave a
  durable record, so ``wxdata (audited) / this`` is the gap to that floor;
- ``SQLAlchemy Core``: prebuilt statements on a long-lived AUTOCOMMIT connection;
- ``SQLAlchemy ORM``: a ``Session`` per operation (idiomatic), AUTOCOMMIT engine for single
  statements, the transactional engine where the workload is a transaction.

Every client connects with the same conninfo (same options) to the same database.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import json
import pstats
import statistics
import time
import uuid
import weakref
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import psycopg
from returns.result import Success

from benchmarks import sqla_models as m
from benchmarks.common import (
    SCALING_PAGES,
    BenchmarkError,
    Env,
    Op,
    Options,
    Result,
    Variant,
    Workload,
    audit_disabled,
    capture,
    configuration,
    fmt_us,
    measure,
    read_commit_async,
    run_writers,
    statement,
)
from benchmarks.seed import GRADES, copy_students

RAW = "raw psycopg"
RAW_AUDIT = "raw psycopg + same audit SQL"
WX = "wxdata (audited)"
WX_OFF = "wxdata (AUDIT_ENABLED=false)"
#: The opt-in mode whose read records commit without waiting for the WAL flush (not durable: a
#: server crash can lose the last few hundred milliseconds of them); shown beside, never a target.
WX_RELAXED = "wxdata (audited, AUDIT_READ_COMMIT=async)"
CORE = "SQLAlchemy Core"
ORM = "SQLAlchemy ORM"

S_COLS = ", ".join(m.STUDENT_COLUMNS)
H_COLS = ", ".join(m.HEALTH_RECORD_COLUMNS)
FETCH_STUDENT = f"SELECT {S_COLS} FROM students WHERE id = %s AND deleted_at IS NULL"
PAGE_STUDENTS = (f"SELECT {S_COLS} FROM students WHERE grade = %s AND deleted_at IS NULL "
                 "ORDER BY last_name, first_name, id LIMIT %s OFFSET %s")
COUNT_STUDENTS = "SELECT count(*) FROM students WHERE grade = %s AND deleted_at IS NULL"
SEARCH_STUDENTS = (f"SELECT {S_COLS} FROM students WHERE last_name ILIKE %s AND grade = %s "
                   "AND deleted_at IS NULL ORDER BY last_name, first_name, id LIMIT %s OFFSET %s")
COUNT_SEARCH = ("SELECT count(*) FROM students WHERE last_name ILIKE %s AND grade = %s "
                "AND deleted_at IS NULL")
INSERT_STUDENT = (
    "INSERT INTO students (id, student_number, first_name, last_name, date_of_birth, grade, "
    "gender, enrollment_date, school_id, district_id, created_by, updated_by) VALUES "
    f"(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING {S_COLS}"
)
UPDATE_STUDENT = (f"UPDATE students SET grade = %s, version = version + 1, updated_at = now(), "
                  f"updated_by = %s WHERE id = %s AND deleted_at IS NULL RETURNING {S_COLS}")
SOFT_DELETE = ("UPDATE students SET deleted_at = now(), version = version + 1, updated_at = now(), "
               "updated_by = %s WHERE id = %s AND deleted_at IS NULL RETURNING id")
FETCH_RECORD = f"SELECT {H_COLS} FROM health_records WHERE id = %s AND deleted_at IS NULL"
RECORDS_OF = (f"SELECT {H_COLS} FROM health_records WHERE student_id = %s AND deleted_at IS NULL "
              "ORDER BY record_date DESC, id LIMIT %s OFFSET %s")
COUNT_RECORDS_OF = "SELECT count(*) FROM health_records WHERE student_id = %s AND deleted_at IS NULL"
INSERT_RECORD = (
    "INSERT INTO health_records (id, student_id, record_type, title, description, record_date, "
    f"created_by, updated_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {H_COLS}"
)
AUDIT_COLUMNS = (
    "user_id", "user_role", "ip_address", "user_agent", "request_id", "purpose", "action",
    "entity_type", "new_values", "changes", "fields_disclosed", "is_phi", "compliance_type",
    "severity", "success", "tags", "entity_id", "entity_ids", "subject_student_id", "subject_ids",
)
INSERT_AUDIT = (
    f"INSERT INTO audit_log ({', '.join(AUDIT_COLUMNS)}) VALUES "
    "(%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
#: The leanest durable record (``bench_floor_record``, see benchmarks/bench_audit_floor.py) riding in
#: the same statement as the bare operation: each ``FLOOR_*`` statement is the raw statement as a
#: CTE ``s`` plus one narrow row inserted from it.
FLOOR_RECORD = ("INSERT INTO bench_floor_record (action, entity_type, entity_id, subject_id, "
                "user_id) ")
FLOOR_FETCH = ("WITH s AS (" + FETCH_STUDENT + "), a AS (" + FLOOR_RECORD
               + "SELECT 'READ', 'Student', s.id, s.id, %s FROM s) SELECT * FROM s")
FLOOR_PHI = ("WITH s AS (" + FETCH_RECORD + "), a AS (" + FLOOR_RECORD
             + "SELECT 'READ', 'HealthRecord', s.id, s.student_id, %s FROM s) SELECT * FROM s")
FLOOR_PAGE = ("WITH s AS (" + PAGE_STUDENTS + "), a AS (" + FLOOR_RECORD
              + "SELECT 'READ', 'Student', NULL, NULL, %s WHERE EXISTS (SELECT 1 FROM s)) "
              "SELECT * FROM s")
FLOOR_CREATE = ("WITH s AS (" + INSERT_STUDENT + "), a AS (" + FLOOR_RECORD
                + "SELECT 'CREATE', 'Student', s.id, s.id, %s FROM s) SELECT * FROM s")
FLOOR_UPDATE = ("WITH s AS (" + UPDATE_STUDENT + "), a AS (" + FLOOR_RECORD
                + "SELECT 'UPDATE', 'Student', s.id, s.id, %s FROM s) SELECT * FROM s")
FLOOR_RECORDS_OF = ("WITH s AS (" + RECORDS_OF + "), a AS (" + FLOOR_RECORD
                    + "SELECT 'READ', 'HealthRecord', NULL, %s, %s WHERE EXISTS (SELECT 1 FROM s)) "
                    "SELECT * FROM s")
FLOOR_CREATE_RECORD = ("WITH s AS (" + INSERT_RECORD + "), a AS (" + FLOOR_RECORD
                       + "SELECT 'CREATE', 'HealthRecord', s.id, s.student_id, %s FROM s) "
                       "SELECT * FROM s")
#: The leanest durable record alone (the floor of a cache hit that must record its disclosure).
FLOOR_INSERT = FLOOR_RECORD + "VALUES ('READ', 'Student', %s, %s, %s)"
FLOOR = "raw psycopg + leanest durable record"
COPY_STUDENTS = (
    "COPY students (id, student_number, first_name, last_name, date_of_birth, grade, gender, "
    "enrollment_date, school_id, district_id, created_by, updated_by) FROM STDIN"
)
#: The binary COPY types of ``COPY_STUDENTS``'s columns.
COPY_STUDENT_TYPES = ("uuid", "varchar", "varchar", "varchar", "date", "varchar", "varchar", "date",
                      "uuid", "uuid", "varchar", "varchar")
VALUE_FIELDS = ("student_number", "first_name", "last_name", "date_of_birth", "grade", "gender",
                "enrollment_date", "school_id", "district_id")
ORDER = [("last_name", "asc"), ("first_name", "asc")]


def _wx() -> tuple[Any, Any, Any]:
    from wxdata.domains import health_records, students
    from wxdata.tx import transactional

    return students, health_records, transactional


def _ok(result: object) -> bool:
    return isinstance(result, Success)


def _variant_off(name: str, make: Callable[[Env], Op]) -> Variant:
    return Variant(name, "wx_noaudit", make, around=audit_disabled)


def _variant_relaxed(make: Callable[[Env], Op]) -> Variant:
    return Variant(WX_RELAXED, "wx_relaxed", make, around=read_commit_async)


# --- shared helpers ---------------------------------------------------------------------------------


def _cursor(env: Env) -> psycopg.Cursor[Any]:
    return env.memo("raw-cursor", lambda: env.raw.cursor())


def floor_table(env: Env) -> None:
    """Create the leanest durable record's table (once per database; both configurations share it)."""
    from benchmarks.bench_audit_floor import FLOOR_DDL

    def make() -> bool:
        env.connection("prep").execute(FLOOR_DDL.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ", 1))
        return True

    env.memo("floor-table", make)


def floor_cursor(env: Env) -> psycopg.Cursor[Any]:
    """The raw cursor, once the floor table exists."""
    floor_table(env)
    return _cursor(env)


def student_values(env: Env, prefix: str = "BN") -> dict[str, Any]:
    """Valid values of a new student (unique number) as a caller would pass them."""
    rng = env.rng
    school, district = rng.choice(env.data.schools)
    today = date.today()
    return {
        "student_number": env.unique(prefix),
        "first_name": rng.choice(("Ada", "Grace", "Alan", "Edsger", "Barbara")),
        "last_name": rng.choice(("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov")),
        "date_of_birth": today - timedelta(days=rng.randint(6 * 366, 17 * 365)),
        "grade": rng.choice(GRADES),
        "gender": rng.choice(("MALE", "FEMALE")),
        "enrollment_date": today - timedelta(days=rng.randint(30, 900)),
        "school_id": school,
        "district_id": district,
    }


def _student_tuple(v: dict[str, Any], user: str) -> tuple[Any, ...]:
    return (uuid.uuid4(), v["student_number"], v["first_name"], v["last_name"], v["date_of_birth"],
            v["grade"], v["gender"], v["enrollment_date"], v["school_id"], v["district_id"], user,
            user)


def _snapshot(v: dict[str, Any]) -> str:
    return json.dumps(v, default=str, sort_keys=True, separators=(",", ":"))


def audit_tuple(env: Env, action: str, entity: str, entity_id: Any, subject: Any,
                fields: tuple[str, ...] | list[str] = (), new_values: str | None = None) -> tuple[Any, ...]:
    """The raw audit INSERT's parameters, the same facts wxdata records."""
    c = env.ctx
    return (c.user_id, c.role.value, c.ip_address, c.user_agent, c.request_id, c.purpose.value,
            action, entity, new_values, new_values, list(fields), True, "HIPAA",
            "MEDIUM", True, [entity.lower(), action.lower()], entity_id, [entity_id], subject,
            [subject])


def audit_dict(env: Env, action: str, entity: str, entity_id: Any, subject: Any,
               fields: tuple[str, ...] | list[str] = (), new_values: Any = None) -> dict[str, Any]:
    """The same audit facts as keyword values for SQLAlchemy (Core insert or ORM ``AuditLog``)."""
    return dict(zip(AUDIT_COLUMNS, audit_tuple(env, action, entity, entity_id, subject, fields,
                                               None), strict=True)) | {
        "new_values": new_values, "changes": new_values}


def _random_ids(env: Env, n: int) -> list[uuid.UUID]:
    ids = env.data.student_ids
    return [env.rng.choice(ids) for _ in range(n)]


def _slot(params: dict[str, Any], value: Any) -> str:
    """The parameter name holding ``value`` in a captured statement (for rebuilding parameters)."""
    keys = [k for k, v in params.items() if v == value and not k.startswith("a_")]
    if len(keys) != 1:
        raise BenchmarkError(f"cannot find the parameter holding {value!r}: {keys}")
    return keys[0]


def _core_statements() -> dict[str, Any]:
    from sqlalchemy import bindparam, func, insert, select, update

    s, h, a = m.students, m.health_records, m.audit_log
    live = s.c.deleted_at.is_(None)
    return {
        "fetch": select(s).where(s.c.id == bindparam("id"), live),
        "page": select(s).where(s.c.grade == bindparam("grade"), live)
        .order_by(s.c.last_name, s.c.first_name, s.c.id)
        .limit(bindparam("limit")).offset(bindparam("offset")),
        "count": select(func.count()).select_from(s).where(s.c.grade == bindparam("grade"), live),
        "search": select(s).where(s.c.last_name.ilike(bindparam("pattern")),
                                  s.c.grade == bindparam("grade"), live)
        .order_by(s.c.last_name, s.c.first_name, s.c.id)
        .limit(bindparam("limit")).offset(bindparam("offset")),
        "search_count": select(func.count()).select_from(s).where(
            s.c.last_name.ilike(bindparam("pattern")), s.c.grade == bindparam("grade"), live),
        "insert": insert(s).returning(*s.c),
        "update": update(s).where(s.c.id == bindparam("sid"), live).values(
            grade=bindparam("grade"), version=s.c.version + 1, updated_at=func.now(),
            updated_by=bindparam("uid")).returning(*s.c),
        "delete": update(s).where(s.c.id == bindparam("sid"), live).values(
            deleted_at=func.now(), version=s.c.version + 1, updated_at=func.now(),
            updated_by=bindparam("uid")).returning(s.c.id),
        "fetch_record": select(h).where(h.c.id == bindparam("id"), h.c.deleted_at.is_(None)),
        "records_of": select(h).where(h.c.student_id == bindparam("sid"), h.c.deleted_at.is_(None))
        .order_by(h.c.record_date.desc(), h.c.id).limit(bindparam("limit"))
        .offset(bindparam("offset")),
        "count_records_of": select(func.count()).select_from(h).where(
            h.c.student_id == bindparam("sid"), h.c.deleted_at.is_(None)),
        "insert_record": insert(h).returning(*h.c),
        "insert_bulk": insert(s),
        "audit": insert(a),
    }


def _core(env: Env) -> tuple[Any, dict[str, Any]]:
    return env.core(), env.memo("core-statements", _core_statements)


# --- fetch by id -------------------------------------------------------------------------------------


def fetch_by_id(env: Env) -> list[Workload]:
    """Primary-key fetch of a student (a FERPA/PHI read: wxdata audits it)."""
    students, _, _ = _wx()

    def raw(env: Env) -> Op:
        cur = _cursor(env)

        def op(sid: uuid.UUID) -> Any:
            cur.execute(FETCH_STUDENT, (sid,), prepare=True)
            return cur.fetchone()
        return op

    def raw_audit(env: Env) -> Op:
        sample = env.data.student_ids[0]
        sql, params = statement(capture(env, lambda c: _ok(students.find_by_id(c, env.ctx, sample))),
                                "INSERT INTO audit_log")
        key = _slot(params, sample)
        cur = _cursor(env)

        def op(sid: uuid.UUID) -> Any:
            cur.execute(sql, {**params, key: sid}, prepare=True)
            return cur.fetchone()
        return op

    def raw_audit_async(env: Env) -> Op:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        sample = env.data.student_ids[0]
        sql, params = statement(capture(env, lambda c: _ok(students.find_by_id(c, env.ctx, sample))),
                                "INSERT INTO audit_log")
        key = _slot(params, sample)
        options = str(conninfo_to_dict(env.conninfo).get("options", ""))
        if "synchronous_commit=off" not in options:
            options += " -c synchronous_commit=off"
        conn = env.memo("raw-async", lambda: _closing(env, psycopg.connect(
            make_conninfo(env.conninfo, options=options), autocommit=True)))
        cur = conn.cursor()

        def op(sid: uuid.UUID) -> Any:
            cur.execute(sql, {**params, key: sid}, prepare=True)
            return cur.fetchone()
        return op

    def floor(env: Env) -> Op:
        cur, user = floor_cursor(env), env.ctx.user_id

        def op(sid: uuid.UUID) -> Any:
            cur.execute(FLOOR_FETCH, (sid, user), prepare=True)
            return cur.fetchone()
        return op

    def wx(env: Env) -> Op:
        conn, ctx, find = env.wx, env.ctx, students.find_by_id
        return lambda sid: isinstance(find(conn, ctx, sid), Success)

    def core(env: Env) -> Op:
        conn, st = _core(env)
        q = st["fetch"]
        return lambda sid: conn.execute(q, {"id": sid}).first()

    def orm(env: Env) -> Op:
        sessions = env.sessions()

        def op(sid: uuid.UUID) -> Any:
            with sessions() as s:
                obj = s.get(m.Student, sid)
                return obj is not None and obj.deleted_at is None
        return op

    return [Workload("fetch", "fetch by id", [
        Variant(RAW, "raw", raw, baseline=True), Variant(RAW_AUDIT, "raw_audit", raw_audit),
        Variant(RAW_AUDIT + ", synchronous_commit=off", "raw_alt", raw_audit_async),
        Variant(FLOOR, "floor", floor), Variant(WX, "wx", wx), _variant_off(WX_OFF, wx),
        _variant_relaxed(wx), Variant(CORE, "core", core), Variant(ORM, "orm", orm),
    ], _random_ids, note="the audit record makes every PHI read a write: in A its commit waits for the "
                         "WAL flush (the synchronous_commit=off variant shows that share)")]


# --- fetch by id as the application role (row-level security on) -------------------------------------


def _app_role(env: Env) -> str:
    """A LOGIN member of ``wxdata_app`` (no superuser, no BYPASSRLS) for this run; dropped on close."""
    from psycopg.conninfo import make_conninfo

    def make() -> str:
        name = f"wxbench_{uuid.uuid4().hex[:10]}"
        admin = env.connection("prep")
        admin.execute(f'CREATE ROLE "{name}" LOGIN NOSUPERUSER NOBYPASSRLS IN ROLE wxdata_app')

        def drop() -> None:
            with psycopg.connect(env.conninfo, autocommit=True) as c:
                c.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                          (name,))
                c.execute(f'DROP ROLE IF EXISTS "{name}"')
        env.on_close(drop)
        return str(make_conninfo(env.conninfo, user=name))

    return env.memo("app-role", make)  # type: ignore[no-any-return]


def fetch_as_app_role(env: Env) -> list[Workload]:
    """Primary-key fetch through a non-bypassing role: the context rides in a pipeline (RLS on)."""
    import attrs

    students, _, _ = _wx()
    scoped = attrs.evolve(env.ctx, school_ids=frozenset(s for s, _ in env.data.schools))
    sample = env.data.student_ids[0]

    def conn_for(env: Env, key: str) -> psycopg.Connection[Any]:
        conninfo = _app_role(env)
        return env.memo(key, lambda: _closing(env, psycopg.connect(conninfo, autocommit=True)))  # type: ignore[no-any-return]

    def replay(audited: bool) -> Callable[[Env], Op]:
        def make(env: Env) -> Op:
            conninfo = _app_role(env)
            with contextlib.nullcontext() if audited else audit_disabled():
                log = capture(env, lambda c: _ok(students.find_by_id(c, scoped, sample)), conninfo)
            log = [entry for entry in log if "pg_roles" not in entry[0]  # one-off connection probes
                   and "wxdata_scope_key_fingerprint" not in entry[0]]
            if len(log) != 2 or "set_config" not in log[0][0]:
                raise BenchmarkError(f"unexpected wxdata statements as the app role: {len(log)}")
            (cfg, cfg_params), (sql, params) = log
            key = _slot(params, sample)
            conn = conn_for(env, "app-raw")
            c1, c2 = conn.cursor(), conn.cursor()

            def op(sid: uuid.UUID) -> Any:
                with conn.pipeline():
                    c1.execute(cfg, cfg_params, prepare=True)
                    c2.execute(sql, {**params, key: sid}, prepare=True)
                return c2.fetchone()
            return op
        return make

    def raw_super(env: Env) -> Op:
        cur = _cursor(env)

        def op(sid: uuid.UUID) -> Any:
            cur.execute(FETCH_STUDENT, (sid,), prepare=True)
            return cur.fetchone()
        return op

    def raw_piped(env: Env) -> Op:
        conn = env.raw
        cur = env.memo("raw-pipe-cursor", conn.cursor)

        def op(sid: uuid.UUID) -> Any:
            with conn.pipeline():
                cur.execute(FETCH_STUDENT, (sid,), prepare=True)
            return cur.fetchone()
        return op

    def wx(env: Env) -> Op:
        conn, find = conn_for(env, "app-wx"), students.find_by_id
        return lambda sid: isinstance(find(conn, scoped, sid), Success)

    return [Workload("rls", "fetch by id as the app role (RLS)", [
        Variant(RAW + " app role: set_config + SELECT pipelined", "raw", replay(False),
                baseline=True),
        Variant(RAW_AUDIT + " (app role, pipelined)", "raw_audit", replay(True)),
        Variant(RAW + " superuser (no RLS, no context)", "raw_alt", raw_super),
        Variant(RAW + " superuser, SELECT alone in pipeline()", "raw_alt", raw_piped),
        Variant(WX, "wx", wx), _variant_off(WX_OFF, wx),
    ], _random_ids, note="LOGIN member of wxdata_app; context applied by set_config in the same "
                         "pipeline (one round trip), as wxdata does outside a unit of work")]


def _closing(env: Env, conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    env.on_close(conn.close)
    return conn


# --- page of 20 with total, and filtered search --------------------------------------------------------


def page_with_total(env: Env) -> list[Workload]:
    """Page p (1 to 5) of 20 students of a grade, ordered by name, with the total count."""
    students, _, _ = _wx()

    def inputs(env: Env, n: int) -> list[tuple[str, int]]:
        return [(env.rng.choice(GRADES), env.rng.randint(1, 5)) for _ in range(n)]

    def raw(env: Env) -> Op:
        cur = _cursor(env)

        def op(x: tuple[str, int]) -> Any:
            grade, page = x
            cur.execute(PAGE_STUDENTS, (grade, 20, (page - 1) * 20), prepare=True)
            rows = cur.fetchall()
            cur.execute(COUNT_STUDENTS, (grade,), prepare=True)
            total = cur.fetchone()
            return rows is not None and total is not None
        return op

    def raw_audit(env: Env) -> Op:
        # wxdata writes the window of the first pages into the statement: one statement per page
        by_page = {page: statement(capture(env, lambda c, p=page: _ok(students.find_many(
            c, env.ctx, {"grade": "7"}, order_by=ORDER, page=p, limit=20))),
            "INSERT INTO audit_log") for page in range(1, 6)}
        g = _slot(by_page[1][1], "7")
        cur = _cursor(env)

        def op(x: tuple[str, int]) -> Any:
            sql, params = by_page[x[1]]
            cur.execute(sql, {**params, g: x[0]}, prepare=True)
            return cur.fetchall() is not None
        return op

    def floor(env: Env) -> Op:
        cur, user = floor_cursor(env), env.ctx.user_id

        def op(x: tuple[str, int]) -> Any:
            grade, page = x
            cur.execute(FLOOR_PAGE, (grade, 20, (page - 1) * 20, user), prepare=True)
            rows = cur.fetchall()
            cur.execute(COUNT_STUDENTS, (grade,), prepare=True)
            total = cur.fetchone()
            return rows is not None and total is not None
        return op

    def wx(env: Env) -> Op:
        conn, ctx, find = env.wx, env.ctx, students.find_many
        return lambda x: isinstance(find(conn, ctx, {"grade": x[0]}, order_by=ORDER, page=x[1],
                                         limit=20), Success)

    def core(env: Env) -> Op:
        conn, st = _core(env)
        page, count = st["page"], st["count"]

        def op(x: tuple[str, int]) -> Any:
            rows = conn.execute(page, {"grade": x[0], "limit": 20, "offset": (x[1] - 1) * 20}).all()
            total = conn.execute(count, {"grade": x[0]}).scalar()
            return rows is not None and total is not None
        return op

    def orm(env: Env) -> Op:
        from sqlalchemy import func, select

        sessions, S = env.sessions(), m.Student

        def op(x: tuple[str, int]) -> Any:
            with sessions() as s:
                where = (S.grade == x[0], S.deleted_at.is_(None))
                rows = s.scalars(select(S).where(*where).order_by(S.last_name, S.first_name, S.id)
                                 .limit(20).offset((x[1] - 1) * 20)).all()
                total = s.scalar(select(func.count()).select_from(S).where(*where))
                return rows is not None and total is not None
        return op

    return [Workload("page", "page of 20 + total", [
        Variant(RAW + " (2 queries)", "raw", raw, baseline=True),
        Variant(RAW_AUDIT + " (1 statement)", "raw_audit", raw_audit),
        Variant(FLOOR + " (2 queries)", "floor", floor),
        Variant(WX, "wx", wx), _variant_off(WX_OFF, wx), Variant(CORE, "core", core),
        Variant(ORM, "orm", orm),
    ], inputs, note="grade filter, ~1/13 of the students match")]


def filtered_search(env: Env) -> list[Workload]:
    """ILIKE '%frag%' on last_name plus a grade filter: first page of 20 with the total."""
    students, _, _ = _wx()
    frags = env.data.fragments

    def inputs(env: Env, n: int) -> list[tuple[str, str]]:
        return [(env.rng.choice(frags), env.rng.choice(GRADES)) for _ in range(n)]

    def raw(env: Env) -> Op:
        cur = _cursor(env)

        def op(x: tuple[str, str]) -> Any:
            pattern = "%" + x[0] + "%"
            cur.execute(SEARCH_STUDENTS, (pattern, x[1], 20, 0), prepare=True)
            rows = cur.fetchall()
            cur.execute(COUNT_SEARCH, (pattern, x[1]), prepare=True)
            return cur.fetchone() is not None and rows is not None
        return op

    def raw_audit(env: Env) -> Op:
        sql, params = statement(capture(env, lambda c: _ok(students.find_many(
            c, env.ctx, {"last_name": {"ilike": "son"}, "grade": "7"}, order_by=ORDER, limit=20))),
            "INSERT INTO audit_log")
        pat, g = _slot(params, "%son%"), _slot(params, "7")
        cur = _cursor(env)

        def op(x: tuple[str, str]) -> Any:
            cur.execute(sql, {**params, pat: "%" + x[0] + "%", g: x[1]}, prepare=True)
            return cur.fetchall() is not None
        return op

    def wx(env: Env) -> Op:
        conn, ctx, find = env.wx, env.ctx, students.find_many
        return lambda x: isinstance(find(conn, ctx, {"last_name": {"ilike": x[0]}, "grade": x[1]},
                                         order_by=ORDER, limit=20), Success)

    def core(env: Env) -> Op:
        conn, st = _core(env)
        page, count = st["search"], st["search_count"]

        def op(x: tuple[str, str]) -> Any:
            p = {"pattern": "%" + x[0] + "%", "grade": x[1]}
            rows = conn.execute(page, {**p, "limit": 20, "offset": 0}).all()
            return conn.execute(count, p).scalar() is not None and rows is not None
        return op

    def orm(env: Env) -> Op:
        from sqlalchemy import func, select

        sessions, S = env.sessions(), m.Student

        def op(x: tuple[str, str]) -> Any:
            with sessions() as s:
                where = (S.last_name.ilike("%" + x[0] + "%"), S.grade == x[1], S.deleted_at.is_(None))
                rows = s.scalars(select(S).where(*where).order_by(S.last_name, S.first_name, S.id)
                                 .limit(20)).all()
                return s.scalar(select(func.count()).select_from(S).where(*where)) is not None \
                    and rows is not None
        return op

    return [Workload("search", "filtered search (ILIKE + grade)", [
        Variant(RAW + " (2 queries)", "raw", raw, baseline=True),
        Variant(RAW_AUDIT + " (1 statement)", "raw_audit", raw_audit),
        Variant(WX, "wx", wx), _variant_off(WX_OFF, wx), Variant(CORE, "core", core),
        Variant(ORM, "orm", orm),
    ], inputs, note="trigram index on last_name; audited reads record only when rows are returned")]


# --- writes ------------------------------------------------------------------------------------------


def _create_inputs(env: Env, n: int) -> list[dict[str, Any]]:
    return [student_values(env) for _ in range(n)]


def _raw_create(env: Env) -> Op:
    cur, user = _cursor(env), env.ctx.user_id

    def op(v: dict[str, Any]) -> Any:
        cur.execute(INSERT_STUDENT, _student_tuple(v, user), prepare=True)
        return cur.fetchone()
    return op


def _captured_create(env: Env, in_tx: bool = False) -> list[tuple[str, Any]]:
    students, _, transactional = _wx()
    sample = student_values(env, "CAP")
    if in_tx:
        enroll = transactional()(students.create)
        return capture(env, lambda c: _ok(enroll(c, env.ctx, sample)))
    return capture(env, lambda c: _ok(students.create(c, env.ctx, sample)))


def single_create(env: Env) -> list[Workload]:
    """Insert one student and return the stored row (autocommit: one statement)."""
    students, _, _ = _wx()

    def raw_audit(env: Env) -> Op:
        sql, params = statement(_captured_create(env), "INSERT INTO audit_log")
        cur = _cursor(env)

        def op(v: dict[str, Any]) -> Any:
            p = {**params, "id": uuid.uuid4()}
            for k in VALUE_FIELDS:
                p[k] = v[k]
            cur.execute(sql, p, prepare=True)
            return cur.fetchone()
        return op

    def floor(env: Env) -> Op:
        cur, user = floor_cursor(env), env.ctx.user_id

        def op(v: dict[str, Any]) -> Any:
            cur.execute(FLOOR_CREATE, (*_student_tuple(v, user), user), prepare=True)
            return cur.fetchone()
        return op

    def wx(env: Env) -> Op:
        conn, ctx, create = env.wx, env.ctx, students.create
        return lambda v: isinstance(create(conn, ctx, v), Success)

    def core(env: Env) -> Op:
        conn, st = _core(env)
        q, user = st["insert"], env.ctx.user_id

        def op(v: dict[str, Any]) -> Any:
            return conn.execute(q, {**v, "id": uuid.uuid4(), "created_by": user,
                                    "updated_by": user}).first()
        return op

    def orm(env: Env) -> Op:
        sessions, user = env.sessions(), env.ctx.user_id

        def op(v: dict[str, Any]) -> Any:
            with sessions() as s:
                obj = m.Student(**v, created_by=user, updated_by=user)
                s.add(obj)
                s.commit()
                return obj.created_at is not None
        return op

    return [Workload("create", "single create", [
        Variant(RAW, "raw", _raw_create, baseline=True), Variant(RAW_AUDIT, "raw_audit", raw_audit),
        Variant(FLOOR, "floor", floor),
        Variant(WX, "wx", wx), _variant_off(WX_OFF, wx), Variant(CORE, "core", core),
        Variant(ORM, "orm", orm),
    ], _create_inputs)]


def update_by_id(env: Env) -> list[Workload]:
    """Change one student's grade by id, returning the new row."""
    students, _, _ = _wx()

    def inputs(env: Env, n: int) -> list[tuple[uuid.UUID, str]]:
        return [(sid, env.rng.choice(GRADES)) for sid in _random_ids(env, n)]

    def raw(env: Env) -> Op:
        cur, user = _cursor(env), env.ctx.user_id

        def op(x: tuple[uuid.UUID, str]) -> Any:
            cur.execute(UPDATE_STUDENT, (x[1], user, x[0]), prepare=True)
            return cur.fetchone()
        return op

    def raw_audit(env: Env) -> Op:
        sid = env.data.student_ids[1]
        log = capture(env, lambda c: _ok(students.update(c, env.ctx, sid, {"grade": "CAP"})))
        sql, params = statement(log, "s AS (UPDATE")
        key, g = _slot(params, sid), _slot(params, "CAP")
        cur = _cursor(env)

        def op(x: tuple[uuid.UUID, str]) -> Any:
            cur.execute(sql, {**params, key: x[0], g: x[1]}, prepare=True)
            return cur.fetchone()
        return op

    def floor(env: Env) -> Op:
        cur, user = floor_cursor(env), env.ctx.user_id

        def op(x: tuple[uuid.UUID, str]) -> Any:
            cur.execute(FLOOR_UPDATE, (x[1], user, x[0], user), prepare=True)
            return cur.fetchone()
        return op

    def wx(env: Env) -> Op:
        conn, ctx, update = env.wx, env.ctx, students.update
        return lambda x: isinstance(update(conn, ctx, x[0], {"grade": x[1]}), Success)

    def core(env: Env) -> Op:
        conn, st = _core(env)
        q, user = st["update"], env.ctx.user_id
        return lambda x: conn.execute(q, {"sid": x[0], "grade": x[1], "uid": user}).first()

    def orm(env: Env) -> Op:
        sessions, user = env.sessions(), env.ctx.user_id

        def op(x: tuple[uuid.UUID, str]) -> Any:
            with sessions() as s:
                obj = s.get(m.Student, x[0])
                if obj is None or obj.deleted_at is not None:
                    return False
                obj.grade = x[1]
                obj.updated_by = user
                s.commit()
                return True
        return op

    return [Workload("update", "update by id", [
        Variant(RAW, "raw", raw, baseline=True), Variant(RAW_AUDIT, "raw_audit", raw_audit),
        Variant(FLOOR, "floor", floor),
        Variant(WX, "wx", wx), _variant_off(WX_OFF, wx), Variant(CORE, "core", core),
        Variant(ORM, "orm", orm),
    ], inputs, note="ORM: get + change + commit (version_id_col check), 2 round trips")]


def delete_by_id(env: Env) -> list[Workload]:
    """Soft delete one student (wxdata delete; UPDATE SET deleted_at for the others)."""
    students, _, _ = _wx()

    def inputs(env: Env, n: int) -> list[uuid.UUID]:
        conn = env.connection("prep")
        return copy_students(conn, env.rng, n, env.unique("DV"), env.data.schools)

    def raw(env: Env) -> Op:
        cur, user = _cursor(env), env.ctx.user_id

        def op(sid: uuid.UUID) -> Any:
            cur.execute(SOFT_DELETE, (user, sid), prepare=True)
            return cur.fetchone()
        return op

    def raw_audit(env: Env) -> Op:
        victim = inputs(env, 1)[0]
        sql, params = statement(capture(env, lambda c: _ok(students.delete(c, env.ctx, victim))),
                                "s AS (UPDATE")
        key = _slot(params, victim)
        cur = _cursor(env)

        def op(sid: uuid.UUID) -> Any:
            cur.execute(sql, {**params, key: sid}, prepare=True)
            return cur.fetchone()
        return op

    def wx(env: Env) -> Op:
        conn, ctx, delete = env.wx, env.ctx, students.delete
        return lambda sid: isinstance(delete(conn, ctx, sid), Success)

    def core(env: Env) -> Op:
        conn, st = _core(env)
        q, user = st["delete"], env.ctx.user_id
        return lambda sid: conn.execute(q, {"sid": sid, "uid": user}).first()

    def orm(env: Env) -> Op:
        from sqlalchemy import func

        sessions, user = env.sessions(), env.ctx.user_id

        def op(sid: uuid.UUID) -> Any:
            with sessions() as s:
                obj = s.get(m.Student, sid)
                if obj is None or obj.deleted_at is not None:
                    return False
                obj.deleted_at = func.now()  # type: ignore[assignment]
                obj.updated_by = user
                s.commit()
                return True
        return op

    return [Workload("delete", "delete (soft)", [
        Variant(RAW, "raw", raw, baseline=True), Variant(RAW_AUDIT, "raw_audit", raw_audit),
        Variant(WX, "wx", wx), _variant_off(WX_OFF, wx), Variant(CORE, "core", core),
        Variant(ORM, "orm", orm),
    ], inputs, note="fresh victims are COPYed in before each batch, outside the clock")]


def bulk_create(env: Env) -> list[Workload]:
    """Insert ``--bulk-rows`` students in one transaction."""
    students, _, _ = _wx()
    rows = env.options.bulk_rows

    def inputs(env: Env, n: int) -> list[list[dict[str, Any]]]:
        return [[student_values(env, "BK") for _ in range(rows)] for _ in range(n)]

    def raw_copy(env: Env) -> Op:
        conn, user = env.raw, env.ctx.user_id
        cur = _cursor(env)

        def op(batch: list[dict[str, Any]]) -> Any:
            with conn.transaction(), cur.copy(COPY_STUDENTS) as copy:
                for v in batch:
                    copy.write_row(_student_tuple(v, user))
            return True
        return op

    def raw_binary(env: Env) -> Op:
        conn, user = env.raw, env.ctx.user_id
        cur = _cursor(env)

        def op(batch: list[dict[str, Any]]) -> Any:
            with conn.transaction(), cur.copy(COPY_STUDENTS + " (FORMAT BINARY)") as copy:
                copy.set_types(COPY_STUDENT_TYPES)
                for v in batch:
                    copy.write_row(_student_tuple(v, user))
            return True
        return op

    def raw_many(env: Env) -> Op:
        conn, user = env.raw, env.ctx.user_id
        cur = _cursor(env)
        sql = INSERT_STUDENT.split(" RETURNING")[0]

        def op(batch: list[dict[str, Any]]) -> Any:
            with conn.transaction():
                cur.executemany(sql, [_student_tuple(v, user) for v in batch])
            return True
        return op

    def wx(env: Env) -> Op:
        conn, ctx, bulk = env.wx, env.ctx, students.bulk_create
        return lambda batch: isinstance(bulk(conn, ctx, batch), Success)

    def core(env: Env) -> Op:
        engine, st, user = env.engine(False), env.memo("core-statements", _core_statements), \
            env.ctx.user_id
        q = st["insert_bulk"]

        def op(batch: list[dict[str, Any]]) -> Any:
            with engine.begin() as c:
                c.execute(q, [{**v, "id": uuid.uuid4(), "created_by": user, "updated_by": user}
                              for v in batch])
            return True
        return op

    def orm_add_all(env: Env) -> Op:
        sessions, user = env.sessions(False), env.ctx.user_id

        def op(batch: list[dict[str, Any]]) -> Any:
            with sessions() as s:
                s.add_all([m.Student(**v, created_by=user, updated_by=user) for v in batch])
                s.commit()
            return True
        return op

    def orm_bulk(env: Env) -> Op:
        from sqlalchemy import insert

        sessions, user = env.sessions(False), env.ctx.user_id

        def op(batch: list[dict[str, Any]]) -> Any:
            with sessions() as s:
                s.execute(insert(m.Student), [{**v, "id": uuid.uuid4(), "created_by": user,
                                               "updated_by": user, "version": 1} for v in batch])
                s.commit()
            return True
        return op

    def cleanup(env: Env) -> None:
        # The bulk rows have no children: skip the foreign-key triggers of the many clinical tables
        # that reference students (superuser session setting), so A and B see the same table.
        conn = env.connection("prep")
        conn.execute("SET statement_timeout = 0")
        conn.execute("SET session_replication_role = replica")
        try:
            conn.execute("DELETE FROM students WHERE student_number LIKE 'BK%'")
        finally:
            conn.execute("RESET session_replication_role")
        conn.execute("VACUUM ANALYZE students")

    return [Workload("bulk", f"bulk create {rows} rows", [
        Variant(RAW + " COPY", "raw", raw_copy, baseline=True),
        Variant(RAW + " COPY (binary)", "raw_alt", raw_binary),
        Variant(RAW + " executemany", "raw_alt", raw_many),
        Variant(WX, "wx", wx), _variant_off(WX_OFF, wx),
        Variant(CORE + " executemany", "core", core),
        Variant(ORM + " add_all", "orm", orm_add_all),
        Variant(ORM + " bulk insert", "orm_alt", orm_bulk),
    ], inputs, fixed_batch=1, cleanup=cleanup,
        note="one transaction per batch; ids generated client-side by every variant")]


def create_in_transaction(env: Env) -> list[Workload]:
    """Create a student and its audit record inside an explicit transaction (unit of work)."""
    students, _, transactional = _wx()
    fields = ("id", *VALUE_FIELDS, "created_by", "updated_by")

    def raw_tx(env: Env) -> Op:
        conn, cur, user = env.raw, _cursor(env), env.ctx.user_id

        def op(v: dict[str, Any]) -> Any:
            with conn.transaction():
                cur.execute(INSERT_STUDENT, _student_tuple(v, user), prepare=True)
                row = cur.fetchone()
                assert row is not None
                cur.execute(INSERT_AUDIT, audit_tuple(env, "CREATE", "Student", row[0], row[0],
                                                      fields, _snapshot(v)), prepare=True)
            return row
        return op

    def raw_same(env: Env) -> Op:
        log = _captured_create(env, in_tx=True)
        if [t.split()[0] for t, _ in log] != ["BEGIN", "SELECT", "WITH", "COMMIT"]:
            raise BenchmarkError(f"unexpected wxdata transaction shape: {[t[:30] for t, _ in log]}")
        begin, (setcfg, cfg_params), (sql, params), commit = log[0][0], log[1], log[2], log[3][0]
        cur = _cursor(env)

        def op(v: dict[str, Any]) -> Any:
            cur.execute(begin)
            cur.execute(setcfg, cfg_params, prepare=True)
            p = {**params, "id": uuid.uuid4()}
            for k in VALUE_FIELDS:
                p[k] = v[k]
            cur.execute(sql, p, prepare=True)
            row = cur.fetchone()
            cur.execute(commit)
            return row
        return op

    def wx(env: Env) -> Op:
        conn, ctx = env.wx, env.ctx
        enroll = transactional()(students.create)
        return lambda v: isinstance(enroll(conn, ctx, v), Success)

    def core(env: Env) -> Op:
        engine, st, user = env.engine(False), env.memo("core-statements", _core_statements), \
            env.ctx.user_id
        ins, audit = st["insert"], st["audit"]

        def op(v: dict[str, Any]) -> Any:
            with engine.begin() as c:
                row = c.execute(ins, {**v, "id": uuid.uuid4(), "created_by": user,
                                      "updated_by": user}).first()
                c.execute(audit, audit_dict(env, "CREATE", "Student", row.id, row.id, fields,
                                            json.loads(_snapshot(v))))
            return row
        return op

    def orm(env: Env) -> Op:
        sessions, user = env.sessions(False), env.ctx.user_id

        def op(v: dict[str, Any]) -> Any:
            with sessions() as s:
                obj = m.Student(**v, id=uuid.uuid4(), created_by=user, updated_by=user)
                s.add(obj)
                s.add(m.AuditLog(**audit_dict(env, "CREATE", "Student", obj.id, obj.id, fields,
                                              json.loads(_snapshot(v)))))
                s.commit()
                return True
        return op

    return [Workload("create_tx", "create + audit in a transaction", [
        Variant(RAW + " bare insert (no audit, autocommit)", "raw", _raw_create, baseline=True),
        Variant(RAW + " BEGIN + 2 INSERT + COMMIT", "raw_alt", raw_tx),
        Variant(RAW + " same statements as wxdata", "raw_audit", raw_same),
        Variant(WX + " @transactional", "wx", wx), _variant_off(WX_OFF + " @transactional", wx),
        Variant(CORE + " begin + 2 inserts", "core", core),
        Variant(ORM + " add + audit row + commit", "orm", orm),
    ], _create_inputs, note="wxdata: BEGIN, set_config(context), INSERT riding its audit, COMMIT")]


def phi_read(env: Env) -> list[Workload]:
    """Read one health record by id and record the disclosure."""
    _, health_records, _ = _wx()
    from wxdata.schema import HEALTH_RECORDS

    fields = HEALTH_RECORDS.column_names

    def inputs(env: Env, n: int) -> list[uuid.UUID]:
        ids = env.data.record_ids
        return [env.rng.choice(ids) for _ in range(n)]

    def raw(env: Env) -> Op:
        cur = _cursor(env)

        def op(rid: uuid.UUID) -> Any:
            cur.execute(FETCH_RECORD, (rid,), prepare=True)
            return cur.fetchone()
        return op

    def raw_two(env: Env) -> Op:
        cur = _cursor(env)

        def op(rid: uuid.UUID) -> Any:
            cur.execute(FETCH_RECORD, (rid,), prepare=True)
            row = cur.fetchone()
            if row is None:
                return False
            cur.execute(INSERT_AUDIT, audit_tuple(env, "READ", "HealthRecord", row[0], row[1],
                                                  fields), prepare=True)
            return row
        return op

    def raw_audit(env: Env) -> Op:
        sample = env.data.record_ids[0]
        sql, params = statement(capture(env, lambda c: _ok(health_records.find_by_id(
            c, env.ctx, sample))), "INSERT INTO audit_log")
        key = _slot(params, sample)
        cur = _cursor(env)

        def op(rid: uuid.UUID) -> Any:
            cur.execute(sql, {**params, key: rid}, prepare=True)
            return cur.fetchone()
        return op

    def floor(env: Env) -> Op:
        cur, user = floor_cursor(env), env.ctx.user_id

        def op(rid: uuid.UUID) -> Any:
            cur.execute(FLOOR_PHI, (rid, user), prepare=True)
            return cur.fetchone()
        return op

    def wx(env: Env) -> Op:
        conn, ctx, find = env.wx, env.ctx, health_records.find_by_id
        return lambda rid: isinstance(find(conn, ctx, rid), Success)

    def core(env: Env) -> Op:
        conn, st = _core(env)
        q, audit = st["fetch_record"], st["audit"]

        def op(rid: uuid.UUID) -> Any:
            row = conn.execute(q, {"id": rid}).first()
            if row is None:
                return False
            conn.execute(audit, audit_dict(env, "READ", "HealthRecord", row.id, row.student_id,
                                           fields))
            return row
        return op

    def orm(env: Env) -> Op:
        sessions = env.sessions()

        def op(rid: uuid.UUID) -> Any:
            with sessions() as s:
                obj = s.get(m.HealthRecord, rid)
                if obj is None or obj.deleted_at is not None:
                    return False
                s.add(m.AuditLog(**audit_dict(env, "READ", "HealthRecord", obj.id, obj.student_id,
                                              fields)))
                s.commit()
                return True
        return op

    return [Workload("phi_read", "PHI read with audit (health record)", [
        Variant(RAW + " (no audit)", "raw", raw, baseline=True),
        Variant(RAW_AUDIT + " (1 statement)", "raw_audit", raw_audit),
        Variant(RAW + " SELECT + INSERT audit", "raw_alt", raw_two),
        Variant(FLOOR + " (1 statement)", "floor", floor),
        Variant(WX, "wx", wx), _variant_off(WX_OFF, wx), _variant_relaxed(wx),
        Variant(CORE + " SELECT + INSERT audit", "core", core),
        Variant(ORM + " get + audit row + commit", "orm", orm),
    ], inputs)]


MAIN: dict[str, Callable[[Env], list[Workload]]] = {
    "fetch": fetch_by_id,
    "rls": fetch_as_app_role,
    "page": page_with_total,
    "search": filtered_search,
    "phi_read": phi_read,
    "create": single_create,
    "create_tx": create_in_transaction,
    "update": update_by_id,
    "delete": delete_by_id,
    "bulk": bulk_create,
}


# --- the school day: 8 threads, pooled connections, 80% reads / 20% writes ------------------------------

MIX = (("fetch student", 40), ("page of grade", 20), ("records of student", 20),
       ("create record", 10), ("update student", 10))


def _mix_table() -> list[str]:
    table: list[str] = []
    for name, weight in MIX:
        table.extend([name] * weight)
    return table


def _record_values(env: Env, sid: uuid.UUID) -> dict[str, Any]:
    return {"student_id": sid, "record_type": "CHECKUP", "title": "School-day visit",
            "description": "Seen at the nurse's office.", "record_date": date.today()}


def _raw_day(env: Env, pool: Any, floor: bool = False) -> dict[str, Callable[[Any], Any]]:
    """The school day's operations in raw psycopg; with ``floor``, every read that returns rows and
    every write carries the leanest durable record in the same statement (the physical floor of an
    audited day)."""
    cursors: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
    user = env.ctx.user_id
    if floor:
        floor_table(env)
    rec: tuple[Any, ...] = (user,) if floor else ()

    def cur_of(c: Any) -> Any:
        cur = cursors.get(c)
        if cur is None:
            cur = cursors[c] = c.cursor()
        return cur

    def fetch(x: Any) -> Any:
        with pool.connection() as c:
            cur = cur_of(c)
            cur.execute(FLOOR_FETCH if floor else FETCH_STUDENT, (x, *rec), prepare=True)
            return cur.fetchone()

    def page(x: Any) -> Any:
        with pool.connection() as c:
            cur = cur_of(c)
            cur.execute(FLOOR_PAGE if floor else PAGE_STUDENTS, (x[0], 20, (x[1] - 1) * 20, *rec),
                        prepare=True)
            rows = cur.fetchall()
            cur.execute(COUNT_STUDENTS, (x[0],), prepare=True)
            return cur.fetchone() is not None and rows is not None

    def records(x: Any) -> Any:
        with pool.connection() as c:
            cur = cur_of(c)
            cur.execute(FLOOR_RECORDS_OF if floor else RECORDS_OF,
                        (x, 20, 0, *((x, user) if floor else ())), prepare=True)
            rows = cur.fetchall()
            cur.execute(COUNT_RECORDS_OF, (x,), prepare=True)
            return cur.fetchone() is not None and rows is not None

    def create(x: Any) -> Any:
        with pool.connection() as c:
            cur = cur_of(c)
            cur.execute(FLOOR_CREATE_RECORD if floor else INSERT_RECORD,
                        (uuid.uuid4(), x["student_id"], x["record_type"], x["title"],
                         x["description"], x["record_date"], user, user, *rec), prepare=True)
            return cur.fetchone()

    def update(x: Any) -> Any:
        with pool.connection() as c:
            cur = cur_of(c)
            cur.execute(FLOOR_UPDATE if floor else UPDATE_STUDENT, (x[1], user, x[0], *rec),
                        prepare=True)
            return cur.fetchone()

    return {"fetch student": fetch, "page of grade": page, "records of student": records,
            "create record": create, "update student": update}


def _wx_day(env: Env, pool: Any) -> dict[str, Callable[[Any], Any]]:
    students, health_records, _ = _wx()
    ctx = env.ctx

    def fetch(x: Any) -> Any:
        with pool.connection() as c:
            return isinstance(students.find_by_id(c, ctx, x), Success)

    def page(x: Any) -> Any:
        with pool.connection() as c:
            return isinstance(students.find_many(c, ctx, {"grade": x[0]}, order_by=ORDER,
                                                 page=x[1], limit=20), Success)

    def records(x: Any) -> Any:
        with pool.connection() as c:
            return isinstance(health_records.find_many(
                c, ctx, {"student_id": x}, order_by=[("record_date", "desc")], limit=20), Success)

    def create(x: Any) -> Any:
        with pool.connection() as c:
            return isinstance(health_records.create(c, ctx, x), Success)

    def update(x: Any) -> Any:
        with pool.connection() as c:
            return isinstance(students.update(c, ctx, x[0], {"grade": x[1]}), Success)

    return {"fetch student": fetch, "page of grade": page, "records of student": records,
            "create record": create, "update student": update}


def _core_day(env: Env, engine: Any) -> dict[str, Callable[[Any], Any]]:
    st = env.memo("core-statements", _core_statements)
    user = env.ctx.user_id

    def fetch(x: Any) -> Any:
        with engine.connect() as c:
            return c.execute(st["fetch"], {"id": x}).first()

    def page(x: Any) -> Any:
        with engine.connect() as c:
            rows = c.execute(st["page"], {"grade": x[0], "limit": 20,
                                          "offset": (x[1] - 1) * 20}).all()
            return c.execute(st["count"], {"grade": x[0]}).scalar() is not None and rows is not None

    def records(x: Any) -> Any:
        with engine.connect() as c:
            rows = c.execute(st["records_of"], {"sid": x, "limit": 20, "offset": 0}).all()
            return c.execute(st["count_records_of"], {"sid": x}).scalar() is not None \
                and rows is not None

    def create(x: Any) -> Any:
        with engine.connect() as c:
            return c.execute(st["insert_record"], {**x, "id": uuid.uuid4(), "created_by": user,
                                                   "updated_by": user}).first()

    def update(x: Any) -> Any:
        with engine.connect() as c:
            return c.execute(st["update"], {"sid": x[0], "grade": x[1], "uid": user}).first()

    return {"fetch student": fetch, "page of grade": page, "records of student": records,
            "create record": create, "update student": update}


def _orm_day(env: Env, engine: Any) -> dict[str, Callable[[Any], Any]]:
    from sqlalchemy import func, select
    from sqlalchemy.orm import sessionmaker

    sessions = sessionmaker(engine, expire_on_commit=False)
    S, H, user = m.Student, m.HealthRecord, env.ctx.user_id

    def fetch(x: Any) -> Any:
        with sessions() as s:
            obj = s.get(S, x)
            return obj is not None and obj.deleted_at is None

    def page(x: Any) -> Any:
        with sessions() as s:
            where = (S.grade == x[0], S.deleted_at.is_(None))
            rows = s.scalars(select(S).where(*where).order_by(S.last_name, S.first_name, S.id)
                             .limit(20).offset((x[1] - 1) * 20)).all()
            return s.scalar(select(func.count()).select_from(S).where(*where)) is not None \
                and rows is not None

    def records(x: Any) -> Any:
        with sessions() as s:
            where = (H.student_id == x, H.deleted_at.is_(None))
            rows = s.scalars(select(H).where(*where).order_by(H.record_date.desc(), H.id)
                             .limit(20)).all()
            return s.scalar(select(func.count()).select_from(H).where(*where)) is not None \
                and rows is not None

    def create(x: Any) -> Any:
        with sessions() as s:
            s.add(H(**x, created_by=user, updated_by=user))
            s.commit()
            return True

    def update(x: Any) -> Any:
        with sessions() as s:
            obj = s.get(S, x[0])
            if obj is None:
                return False
            obj.grade = x[1]
            obj.updated_by = user
            s.commit()
            return True

    return {"fetch student": fetch, "page of grade": page, "records of student": records,
            "create record": create, "update student": update}


def _day_input(env: Env, rng: Any, kind: str) -> Any:
    sid = rng.choice(env.data.student_ids)
    if kind in ("fetch student", "records of student"):
        return sid
    if kind == "page of grade":
        return (rng.choice(GRADES), rng.randint(1, 5))
    if kind == "create record":
        return _record_values(env, sid)
    return (sid, rng.choice(GRADES))


def _run_day(env: Env, ops: dict[str, Callable[[Any], Any]], seconds: float, seed: int
             ) -> tuple[int, float, list[int], int]:
    import random

    threads = env.options.mixed_threads
    table = _mix_table()
    latencies: list[list[int]] = [[] for _ in range(threads)]
    rngs = [random.Random(seed * 1000 + i) for i in range(threads)]
    errors: list[str] = []
    clock = time.perf_counter_ns

    def call(i: int, _: int) -> bool:
        rng = rngs[i]
        kind = rng.choice(table)
        x = _day_input(env, rng, kind)
        t0 = clock()
        try:
            ok = bool(ops[kind](x))
        except Exception as exc:
            ok = False
            if not errors:
                errors.append(f"{kind}: {type(exc).__name__}: {exc}")
        latencies[i].append(clock() - t0)
        return ok

    _, failed, wall = run_writers(threads, seconds, call)
    flat = [x for lat in latencies for x in lat]
    if errors:
        raise BenchmarkError(f"school day: {errors[0]}")
    return len(flat), wall, flat, failed


def _pct(sorted_ns: list[int], q: float) -> float:
    if not sorted_ns:
        return float("nan")
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000


def school_day(env: Env, *, log: Callable[[str], None] = print) -> list[Result]:
    """A mixed day (80% reads, 20% writes) on N threads over pooled connections."""
    from psycopg_pool import ConnectionPool

    from wxdata.db import create_pool

    opts = env.options
    n = opts.mixed_threads
    clients: list[tuple[str, str, Callable[[], dict[str, Callable[[Any], Any]]],
                        Callable[[], contextlib.AbstractContextManager[Any]] | None, bool]] = []
    raw_pool = ConnectionPool(env.conninfo, min_size=n, max_size=n, kwargs={"autocommit": True},
                              name="bench-raw", open=True)
    wx_pool = create_pool(env.conninfo, min_size=n, max_size=n, name="bench-wx")
    raw_pool.wait()
    wx_pool.wait()
    engine = env.engine(True, pool_size=n)
    try:
        clients = [
            (RAW + " (psycopg_pool)", "raw", lambda: _raw_day(env, raw_pool), None, True),
            (FLOOR + " (psycopg_pool)", "floor", lambda: _raw_day(env, raw_pool, floor=True), None,
             False),
            (WX + " (wxdata.db.create_pool)", "wx", lambda: _wx_day(env, wx_pool), None, False),
            (WX_OFF, "wx_noaudit", lambda: _wx_day(env, wx_pool), audit_disabled, False),
            (CORE + " (QueuePool)", "core", lambda: _core_day(env, engine), None, False),
            (ORM + " (Session per op)", "orm", lambda: _orm_day(env, engine), None, False),
        ]
        wanted = opts.families
        if wanted is not None:
            clients = [c for c in clients if c[1] in wanted]
        built = {name: make() for name, _, make, _, _ in clients}
        samples: dict[str, list[float]] = {c[0]: [] for c in clients}
        lats: dict[str, list[int]] = {c[0]: [] for c in clients}
        tputs: dict[str, list[float]] = {c[0]: [] for c in clients}
        fails: dict[str, int] = {c[0]: 0 for c in clients}
        for name, _, _, around, _ in clients:  # warm-up: prepared statements on every pooled conn
            with around() if around else contextlib.nullcontext():
                _run_day(env, built[name], min(0.3, opts.mixed_seconds), 1)
        for rep in range(opts.mixed_reps):
            k = rep % len(clients)
            for name, _, _, around, _ in clients[k:] + clients[:k]:
                with around() if around else contextlib.nullcontext():
                    count, wall, flat, bad = _run_day(env, built[name], opts.mixed_seconds, rep + 2)
                if count == 0:
                    raise BenchmarkError(f"school day / {name}: no operation completed")
                samples[name].append(wall / count * 1e6)
                tputs[name].append(count / wall)
                lats[name].extend(flat)
                fails[name] += bad
    finally:
        raw_pool.close()
        wx_pool.close()
    out = []
    for name, family, _, _, baseline in clients:
        if fails[name]:
            raise BenchmarkError(f"school day / {name}: {fails[name]} operations failed")
        ordered = sorted(lats[name])
        extra = {"throughput_ops_s": statistics.median(tputs[name]), "p50_us": _pct(ordered, 0.50),
                 "p95_us": _pct(ordered, 0.95), "p99_us": _pct(ordered, 0.99), "threads": n,
                 "ops": len(ordered), "seconds_per_rep": opts.mixed_seconds,
                 "mix": "40% fetch student, 20% page of grade, 20% records of student, "
                        "10% create record, 10% update student"}
        r = Result("school day (80/20, 8 threads)", name, env.config, samples[name],
                   len(ordered) // max(1, opts.mixed_reps), family, baseline, "mixed", extra=extra)
        out.append(r)
        log(f"  [{env.config}] school day {name:<44} {extra['throughput_ops_s']:8.0f} ops/s  "
            f"p50 {fmt_us(extra['p50_us'])}  p95 {fmt_us(extra['p95_us'])}  "
            f"p99 {fmt_us(extra['p99_us'])}")
    return out


# --- cache hits: the rows of the targets table, through benchmarks/bench_cache.py -------------------

CACHE_HOOK_NOTE = (
    "cache hits: wxdata.cache or benchmarks/bench_cache.py is not importable; no cache rows"
)
#: The workloads of benchmarks/bench_cache.py the targets table reads.
CACHE_WORKLOADS = ("cache-school", "cache-phi")
FLOOR_INSERT_VARIANT = "raw psycopg durable INSERT of the leanest record (floor)"


def cache_hits(env: Env, *, log: Callable[[str], None] = print) -> tuple[list[Result], str]:
    """Cache hits for the targets table, measured with ``benchmarks/bench_cache.py``'s workloads.

    Two of its workloads, interleaved like every other: reference rows by id (a memory hit vs
    ``cachetools.cached`` over the same call, a Redis hit vs a hand-written GET + AES-GCM decrypt +
    decode; every variant with the audit off), and the PHI student by id with its record (a cached
    hit + its record vs the uncached audited read), to which this adds the durable-INSERT floor:
    the leanest record alone, written by raw psycopg (a hit that must record its disclosure costs
    at least that). The Redis variants need ``REDIS_URL``; without it they are absent and the note
    says so.
    """
    import importlib

    try:
        bench_cache = importlib.import_module("benchmarks.bench_cache")
    except ImportError:
        return [], CACHE_HOOK_NOTE
    redis_url = bench_cache._redis_url()
    caches = bench_cache.Caches(redis_url)
    city, ids, fragments = bench_cache._seed_reference(env)
    out: list[Result] = []
    try:
        chosen = [wl for wl in bench_cache.workloads(env, caches, city, ids, fragments)
                  if wl.key in CACHE_WORKLOADS]
        for wl in chosen:
            if wl.key == "cache-school":
                for v in wl.variants:
                    v.around = audit_disabled
            else:
                wl.variants.append(Variant(FLOOR_INSERT_VARIANT, "floor_insert", _floor_insert))
            out.extend(measure(env, wl, log=log))
    finally:
        caches.close()
        bench_cache._drop_reference(env, city)
    for r in out:
        r.section = "cache"
    note = "" if redis_url else ("cache hits: REDIS_URL unset or unreachable, the Redis rows "
                                 "were not measured")
    return out, note


def _floor_insert(env: Env) -> Op:
    cur, user = floor_cursor(env), env.ctx.user_id

    def op(sid: uuid.UUID) -> Any:
        cur.execute(FLOOR_INSERT, (sid, sid, user), prepare=True)
        return cur.rowcount == 1
    return op


# --- scaling: fetch and page at 10k / 100k / 1M, deep offsets vs keyset ------------------------------------


def scaling(env: Env, scale: int) -> list[Workload]:
    """Fetch by id, offset pages (1, 100, 1000, 10000) + total, and keyset pages at the same depth."""
    students, _, _ = _wx()
    from wxdata.query.paging import cursor_binding, make_cursor, parse_sort
    from wxdata.schema import STUDENTS

    sort = parse_sort(STUDENTS, ORDER).unwrap()
    page_sql = (f"SELECT {S_COLS} FROM students WHERE deleted_at IS NULL "
                "ORDER BY last_name, first_name, id LIMIT %s OFFSET %s")
    count_sql = "SELECT count(*) FROM students WHERE deleted_at IS NULL"
    keyset_sql = (f"SELECT {S_COLS} FROM students WHERE deleted_at IS NULL AND "
                  "(last_name, first_name, id) > (%s, %s, %s) ORDER BY last_name, first_name, id "
                  "LIMIT %s")
    first_sql = (f"SELECT {S_COLS} FROM students WHERE deleted_at IS NULL "
                 "ORDER BY last_name, first_name, id LIMIT %s")

    def same(value: Any) -> Callable[[Env, int], list[Any]]:
        return lambda env, n: [value] * n

    out: list[Workload] = []
    fetch = fetch_by_id(env)[0]
    fetch.variants = [v for v in fetch.variants if v.family in ("raw", "wx", "wx_noaudit", "orm")]
    fetch.title, fetch.section, fetch.scale = "fetch by id", "scaling", scale
    out.append(fetch)
    for page in SCALING_PAGES:
        offset = (page - 1) * 20
        if offset >= scale:
            continue

        def raw_two(env: Env, offset: int = offset) -> Op:
            cur = _cursor(env)

            def op(_: Any) -> Any:
                cur.execute(page_sql, (20, offset), prepare=True)
                rows = cur.fetchall()
                cur.execute(count_sql, prepare=True)
                return cur.fetchone() is not None and rows is not None
            return op

        def raw_page(env: Env, offset: int = offset) -> Op:
            cur = _cursor(env)

            def op(_: Any) -> Any:
                cur.execute(page_sql, (20, offset), prepare=True)
                return cur.fetchall() is not None
            return op

        def wx_page(env: Env, page: int = page) -> Op:
            conn, ctx, find = env.wx, env.ctx, students.find_many
            return lambda _: isinstance(find(conn, ctx, None, order_by=ORDER, page=page, limit=20),
                                        Success)

        out.append(Workload(f"scaling-offset-{page}", f"offset page {page} + total", [
            Variant(RAW + " (2 queries)", "raw", raw_two, baseline=True),
            Variant(RAW + " page only (no total)", "raw_alt", raw_page),
            Variant(WX, "wx", wx_page), _variant_off(WX_OFF, wx_page),
        ], same(None), section="scaling", scale=scale, max_batch=200))

        last = None
        if offset:
            row = env.connection("prep").execute(
                "SELECT last_name, first_name, id FROM students WHERE deleted_at IS NULL "
                "ORDER BY last_name, first_name, id LIMIT 1 OFFSET %s", (offset - 1,)).fetchone()
            last = tuple(row) if row else None

        def raw_keyset(env: Env, last: Any = last) -> Op:
            cur = _cursor(env)

            def op(_: Any) -> Any:
                if last is None:
                    cur.execute(first_sql, (20,), prepare=True)
                else:
                    cur.execute(keyset_sql, (*last, 20), prepare=True)
                return cur.fetchall() is not None
            return op

        def wx_keyset(env: Env, last: Any = last) -> Op:
            conn, ctx, after = env.wx, env.ctx, students.find_after
            binding = cursor_binding(STUDENTS, None, (), sort, ctx.user_id)
            token = make_cursor(binding, list(last)) if last else None
            return lambda _: isinstance(after(conn, ctx, None, order_by=ORDER, after=token,
                                              limit=20), Success)

        out.append(Workload(f"scaling-keyset-{page}", f"keyset page at depth {page}", [
            Variant(RAW + " row-value keyset", "raw", raw_keyset, baseline=True),
            Variant(WX + " find_after", "wx", wx_keyset),
            _variant_off(WX_OFF + " find_after", wx_keyset),
        ], same(None), section="scaling", scale=scale, max_batch=200))
    return out


# --- profiling ---------------------------------------------------------------------------------------


def profile(options: Options, server: str, *, log: Callable[[str], None] = print) -> None:
    """cProfile the wxdata variants of one workload (config A) and print where the time goes."""
    from benchmarks.seed import bench_database

    key = options.profile or ""
    if key not in MAIN:
        raise BenchmarkError(f"--profile takes one of {', '.join(MAIN)}")
    scale = min(options.scale, 20_000)
    with (
        bench_database(server, options, scale, options.records_per_student, log=log) as (url, data),
        configuration("A", url, options, log=log) as (conninfo, _),
    ):
        env = Env("A", conninfo, options, data)
        try:
            for wl in MAIN[key](env):
                for v in wl.variants:
                    if v.family in ("wx", "wx_noaudit", "raw", "raw_audit"):
                        _profile_variant(env, wl, v, options.profile_ops, log)
        finally:
            env.close()


def _profile_variant(env: Env, wl: Workload, v: Variant, n: int, log: Callable[[str], None]) -> None:
    n = 5 if wl.fixed_batch else n
    op = v.make(env)
    around = v.around or contextlib.nullcontext
    with around():
        for x in wl.inputs(env, min(n, 50)):
            op(x)
        xs = wl.inputs(env, n)
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        for x in xs:
            op(x)
        prof.disable()
        wall = (time.perf_counter() - t0) / n * 1e6
    stream = io.StringIO()
    stats = pstats.Stats(prof, stream=stream)
    log(f"\n== profile: {wl.title} / {v.name}: {n} ops, {wall:.1f} µs/op under cProfile ==")
    log(f"{'tottime µs/op':>14} {'cumtime µs/op':>14} {'calls/op':>9}  function")
    rows = []
    for (file, line, func), (_, ncalls, tt, ct, _) in stats.stats.items():
        rows.append((tt, ct, ncalls, f"{file.split('site-packages/')[-1]}:{line}({func})"))
    for tt, ct, ncalls, name in sorted(rows, reverse=True)[:25]:
        log(f"{tt / n * 1e6:14.2f} {ct / n * 1e6:14.2f} {ncalls / n:9.2f}  {name}")
    log("-- by cumulative time (wxdata frames) --")
    wx_rows = [r for r in rows if "wxdata/" in r[3] or "returns/" in r[3] or "attr" in r[3]]
    for tt, ct, ncalls, name in sorted(wx_rows, key=lambda r: -r[1])[:25]:
        log(f"{tt / n * 1e6:14.2f} {ct / n * 1e6:14.2f} {ncalls / n:9.2f}  {name}")

