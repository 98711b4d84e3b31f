"""The audit log's physical design and the single-verification school scope.

- Every school-scope policy verifies the signed scope once (one initplan per policy), and grants
  exactly the rows the two-claim rule granted: every row under a verified bypass, otherwise the
  rows of the verified schools (never a row without a school), nothing for a bad token. Attacked
  with hypothesis over tokens (schools, the nil UUID, bypass, age, signature) and rows with and
  without a school, directly and through students.
- New audit records get time-ordered ids (UUID version 7), and audit_log keeps only the indexes
  its queries use.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

from tests.conftest import TEST_SCOPE_KEY, student_values
from wxdata import ExecutionContext
from wxdata.domains import students
from wxdata.tx.token import sign

Conn = psycopg.Connection[Any]
SETTLE = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NIL = uuid.UUID(int=0)


def _school(admin: Conn) -> dict[str, uuid.UUID]:
    tag = uuid.uuid4().hex[:8]
    d = admin.execute("INSERT INTO districts (name, code) VALUES ('D', %s) RETURNING id",
                      (f"PD-{tag}",)).fetchone()
    s = admin.execute("INSERT INTO schools (name, code, district_id) VALUES ('S', %s, %s) "
                      "RETURNING id", (f"PS-{tag}", d[0] if d else None)).fetchone()
    assert d is not None and s is not None
    return {"school_id": s[0], "district_id": d[0]}


def _document(admin: Conn, student: uuid.UUID | None) -> uuid.UUID:
    row = admin.execute(
        "INSERT INTO documents (title, category, file_type, file_name, file_size, file_url, "
        "uploaded_by, student_id) VALUES ('t', 'OTHER', 'pdf', 'f.pdf', 2048, 'https://x/f', "
        "'u', %s) RETURNING id", (student,)).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture
def world(admin_conn: Conn, conn: Conn, sys_ctx: ExecutionContext) -> dict[str, Any]:
    """Two schools; a student in each and one without a school; a document per student and one
    linked to no student."""
    a, b = _school(admin_conn), _school(admin_conn)
    sa = students.create(conn, sys_ctx, student_values(a)).unwrap().id
    sb = students.create(conn, sys_ctx, student_values(b)).unwrap().id
    sn = students.create(conn, sys_ctx, student_values(a)).unwrap().id
    admin_conn.execute("UPDATE students SET school_id = NULL WHERE id = %s", (sn,))
    docs = {key: _document(admin_conn, sid) for key, sid in (("a", sa), ("b", sb), ("n", sn))}
    docs["orphan"] = _document(admin_conn, None)
    return {"a": a["school_id"], "b": b["school_id"], "students": {"a": sa, "b": sb, "n": sn}, "docs": docs}


def _token(schools: list[uuid.UUID], bypass: bool, age: int, good: bool) -> str:
    text = (f"1|{int(time.time()) - age}|{'1' if bypass else '0'}|"
            f"{','.join(sorted(str(s) for s in schools))}|NURSE|u-prop")
    mac = sign(TEST_SCOPE_KEY if good else TEST_SCOPE_KEY + b"!", text)
    return f"{text}|{mac}"


def _visible(conn: Conn, token: str, table: str, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    with conn.transaction():
        conn.execute("SELECT set_config('app.scope_token', %s, true)", (token,))
        query = psycopg.sql.SQL("SELECT id FROM {} WHERE id = ANY(%s)").format(
            psycopg.sql.Identifier(table))
        return {r[0] for r in conn.execute(query, (ids,))}


@settings(max_examples=40, **SETTLE)
@given(pick=st.lists(st.sampled_from(["a", "b", "nil", "other"]), max_size=4),
       bypass=st.booleans(), age=st.sampled_from([0, 200, 400, -200]), good=st.booleans())
def test_policies_grant_exactly_the_two_claim_rule(
    conn: Conn, world: dict[str, Any], pick: list[str], bypass: bool, age: int, good: bool,
) -> None:
    named = {"a": world["a"], "b": world["b"], "nil": NIL, "other": uuid.uuid4()}
    schools = list(dict.fromkeys(named[p] for p in pick))
    token = _token(schools, bypass, age, good)
    verified = good and age in (0, 200)  # max age 300 s, skew 30 s
    school_of = {world["students"]["a"]: world["a"], world["students"]["b"]: world["b"],
                 world["students"]["n"]: None}

    def granted(school: uuid.UUID | None) -> bool:
        if not verified:
            return False
        return bypass or (school is not None and school in schools)

    sids = list(school_of)
    assert _visible(conn, token, "students", sids) == {s for s in sids if granted(school_of[s])}
    docs = world["docs"]
    expected = {docs[k] for k in ("a", "b", "n") if granted(school_of[world["students"][k]])}
    if verified and bypass:
        expected.add(docs["orphan"])  # a document of no student: only a bypass sees it
    assert _visible(conn, token, "documents", list(docs.values())) == expected


def _scope_calls(conn: Conn, query: str) -> dict[str, int]:
    plan = "\n".join(r[0] for r in conn.execute("EXPLAIN (VERBOSE, COSTS OFF) " + query))
    return {name: plan.count(name + "()") for name in
            ("wxdata_scope_schools", "wxdata_school_ids", "wxdata_scope_bypass")}


def test_one_scope_verification_per_policy(conn: Conn) -> None:
    some = "'00000000-0000-0000-0000-000000000001'::uuid"
    # students: one policy, one initplan
    assert _scope_calls(conn, f"SELECT * FROM students WHERE id = {some}") == {
        "wxdata_scope_schools": 1, "wxdata_school_ids": 0, "wxdata_scope_bypass": 0}
    # health records through students: its policy and the students policy, one initplan each
    assert _scope_calls(conn, f"SELECT * FROM health_records WHERE id = {some}") == {
        "wxdata_scope_schools": 2, "wxdata_school_ids": 0, "wxdata_scope_bypass": 0}


def test_every_scope_policy_uses_the_single_claim(admin_conn: Conn) -> None:
    rows = admin_conn.execute(
        "SELECT polrelid::regclass::text, pg_get_expr(polqual, polrelid), "
        "pg_get_expr(polwithcheck, polrelid) FROM pg_policy WHERE polname = 'wxdata_school_scope'"
    ).fetchall()
    assert len(rows) > 20
    for table, using, check in rows:
        assert using == check, table
        assert using.count("wxdata_scope_schools()") == 1, table
        assert "wxdata_scope_bypass" not in using and "wxdata_school_ids" not in using, table


def test_scope_schools_never_holds_nil_or_grants_on_bad_tokens(conn: Conn, world: dict[str, Any]
                                                               ) -> None:
    def schools(token: str) -> Any:
        with conn.transaction():
            conn.execute("SELECT set_config('app.scope_token', %s, true)", (token,))
            row = conn.execute("SELECT wxdata_scope_schools()").fetchone()
        assert row is not None
        return row[0]

    assert schools(_token([world["a"], NIL], False, 0, True)) == [world["a"]]
    assert schools(_token([world["a"]], True, 0, True)) is None  # bypass: every row
    assert schools(_token([world["a"]], True, 0, False)) == []  # wrongly signed
    assert schools(_token([world["a"]], True, 400, True)) == []  # expired
    assert schools("") == []


def test_a_new_records_id_is_the_servers_own_uuidv7_from_postgresql_18(admin_conn: Conn) -> None:
    """From 18 on the id default is the built-in ``uuidv7()`` (one call per record instead of an
    SQL expression); before 18, ``wxdata_uuid7()``. Every month's partition agrees with the log."""
    version = int(admin_conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]
    expected = "uuidv7()" if version >= 180000 else "wxdata_uuid7()"
    defaults = dict(admin_conn.execute(
        "SELECT c.relname, pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d "
        "JOIN pg_class c ON c.oid = d.adrelid JOIN pg_attribute a "
        "ON a.attrelid = d.adrelid AND a.attnum = d.adnum AND a.attname = 'id' "
        "WHERE c.oid = 'audit_log'::regclass OR c.oid IN (SELECT inhrelid FROM pg_inherits "
        "WHERE inhparent = 'audit_log'::regclass)").fetchall())
    assert defaults["audit_log"] == expected
    assert len(defaults) > 1 and set(defaults.values()) == {expected}, defaults  # months too


def test_new_audit_ids_are_time_ordered_uuid7(conn: Conn) -> None:
    marker = f"req-uuid7-{uuid.uuid4().hex[:8]}"
    for _ in range(5):
        conn.execute("INSERT INTO audit_log (action, entity_type, request_id) "
                     "VALUES ('READ', 'Probe', %s)", (marker,))
        time.sleep(0.002)
    rows = conn.execute("SELECT id, seq, created_at FROM audit_log WHERE request_id = %s "
                        "ORDER BY seq", (marker,)).fetchall()
    assert len(rows) == 5
    ids = [r[0] for r in rows]
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    millis = [i.int >> 80 for i in ids]
    assert millis == sorted(millis) and len(set(millis)) == 5
    for (i, _, created), ms in zip(rows, millis, strict=True):
        assert abs(created.timestamp() * 1000 - ms) < 1000, i
    assert len(set(ids)) == 5


def test_audit_log_indexes(admin_conn: Conn) -> None:
    rows = dict(admin_conn.execute(
        "SELECT c.relname, am.amname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_am am ON am.oid = c.relam WHERE i.indrelid = 'audit_log'::regclass").fetchall())
    assert "audit_log_action_idx" not in rows
    assert "audit_log_created_idx" not in rows
    assert rows["audit_log_created_brin"] == "brin"
    assert "audit_log_subject_idx" not in rows  # every query by student asks subject_ids (GIN)
    assert "audit_log_entity_idx" not in rows  # every query by row asks entity_ids (GIN)
    # one GIN index over both arrays: one insertion per record where two indexes took two
    assert "audit_log_subjects_gin" not in rows and "audit_log_entities_gin" not in rows
    assert rows["audit_log_ids_gin"] == "gin"
    columns = admin_conn.execute(
        "SELECT array_agg(a.attname ORDER BY k.n) FROM pg_index i, "
        "unnest(i.indkey) WITH ORDINALITY k(attnum, n), pg_attribute a "
        "WHERE i.indexrelid = 'audit_log_ids_gin'::regclass "
        "AND a.attrelid = i.indrelid AND a.attnum = k.attnum").fetchone()
    assert columns is not None and columns[0] == ["entity_ids", "subject_ids"]
    assert rows["audit_log_entity_unlisted_idx"] == "btree"
    for kept in ("audit_log_user_idx", "audit_log_transaction_idx"):
        assert rows[kept] == "btree"
    partial = admin_conn.execute(
        "SELECT pg_get_expr(indpred, indrelid) FROM pg_index "
        "WHERE indexrelid = 'audit_log_entity_unlisted_idx'::regclass").fetchone()
    assert partial is not None and "entity_ids @> ARRAY[entity_id]" in partial[0]


def _indexed_queries(key: uuid.UUID) -> dict[str, tuple[str, dict[str, Any]]]:
    """The queries that find records by the row they name (its history, its entity history
    report) and by the student they are about (the accounting of disclosures, the export)."""
    from wxdata.audit import export, history, reports

    by_row = reports.entity_history_spec("Student", key).unwrap()
    by_student = reports.accounting_spec(key, None, None, False).unwrap()
    return {
        "history": (history._SQL, {"entity_type": "Student", "id": key,
                                   "actions": list(history.CHANGE_ACTIONS), "until": None}),
        "entity_history": ("SELECT a.seq FROM audit_log a WHERE " + by_row.where, by_row.params),
        "accounting": ("SELECT a.seq FROM audit_log a WHERE " + by_student.where,
                       by_student.params),
        "export": ("SELECT a.seq FROM audit_log a WHERE "
                   + export._where(None, None, key, None, None).as_string(),
                   {"student_id": key}),
    }


@pytest.mark.parametrize("query", ["history", "entity_history", "accounting", "export"])
def test_records_are_found_by_index_not_by_scanning_the_log(
    admin_conn: Conn, query: str,
) -> None:
    """Every query by row and by student has an index path on every partition (with sequential
    scans priced out, none is left): a row's history or a student's accounting costs its own
    records, not a pass over the whole log."""
    sql_text, params = _indexed_queries(uuid.uuid4())[query]
    with admin_conn.transaction():
        admin_conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in admin_conn.execute("EXPLAIN " + sql_text, params))
    scans = [line for line in plan.splitlines() if "Scan on audit_log" in line]
    assert scans and not [line for line in scans if "Seq Scan" in line], plan
    assert "ids_gin" in plan or "entity_ids_subject_ids_idx" in plan, plan


def test_a_seal_run_finds_its_records_by_index_not_by_scanning_the_log(admin_conn: Conn) -> None:
    """The sealer's candidates (records from the previous run's snapshot xmin on) have an index
    path on every partition: a run costs what is new, not a pass over the whole log."""
    from wxdata.audit.chain import sealing

    text = sealing._CANDIDATES_SQL.format(select=sql.SQL("a.created_at")).as_string()
    with admin_conn.transaction():
        admin_conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in admin_conn.execute("EXPLAIN " + text, {"floor": "12345"}))
    scans = [line for line in plan.splitlines() if "Scan" in line and "audit_log" in line]
    assert scans and not [line for line in scans if "Seq Scan" in line], plan
    assert "transaction_id_idx" in plan, plan


def test_a_record_naming_a_row_only_by_entity_id_is_still_found(
    conn: Conn, admin_conn: Conn, ctx: ExecutionContext, sys_ctx: ExecutionContext,
    make_student: Any,
) -> None:
    """A record written outside wxdata that names the row by ``entity_id`` without listing it in
    ``entity_ids`` (the partial index holds exactly such records) is found by the row's history and
    by its entity history report, as is wxdata's own record listing it."""
    from wxdata.audit import history, reports
    from wxdata.context import Purpose, Role

    admin = attrs.evolve(ctx, role=Role.ADMIN, purpose=Purpose.COMPLIANCE,
                         user_id=f"u-admin-{uuid.uuid4().hex[:6]}")
    student = make_student(grade="5")
    students.update(conn, admin, student.id, {"grade": "6"}).unwrap()
    outside = f"u-outside-{uuid.uuid4().hex[:6]}"
    admin_conn.execute(
        "INSERT INTO audit_log (action, entity_type, entity_id, user_id, changes, new_values) "
        "VALUES ('UPDATE', 'Student', %s, %s, '{\"grade\": {\"before\": \"6\", "
        "\"after\": \"7\"}}', '{\"grade\": \"7\"}')", (student.id, outside))
    listed = admin_conn.execute(
        "SELECT count(*) FROM audit_log WHERE entity_id = %s AND entity_ids @> ARRAY[entity_id]",
        (student.id,)).fetchone()
    assert listed is not None and listed[0] >= 2  # wxdata's CREATE and UPDATE list the row
    changes = history.changes(conn, admin, students.ENTITY, student.id).unwrap()
    assert [(c.action, c.user_id) for c in changes] == [
        ("CREATE", sys_ctx.user_id), ("UPDATE", admin.user_id), ("UPDATE", outside)]
    assert history.as_of(conn, admin, students.ENTITY, student.id,
                         changes[-1].at).unwrap().values["grade"] == "7"
    entries = list(reports.entity_history(conn, admin, "Student", student.id).unwrap())
    assert [(e.action, e.user_id) for e in entries if e.action != "READ"] == [
        ("CREATE", sys_ctx.user_id), ("UPDATE", admin.user_id), ("UPDATE", outside)]


def test_every_record_naming_one_subject_lists_it_in_subject_ids(
    conn: Conn, admin_conn: Conn, ctx: ExecutionContext, make_student: Any,
) -> None:
    """Queries by student ask ``subject_ids`` only (its GIN index), so every record that names a
    subject must list it there: reads by id (no aggregate), pages, creates, updates, deletes,
    explicit disclosures, a break-glass read."""
    from datetime import date

    from wxdata import audit
    from wxdata.domains import health_records
    from wxdata.schema import HEALTH_RECORDS

    student = make_student()
    record = health_records.create(conn, ctx, {
        "student_id": student.id, "record_type": "CHECKUP", "title": "t", "description": "d",
        "record_date": date(2024, 1, 2)}).unwrap()
    assert health_records.find_by_id(conn, ctx, record.id).unwrap() == record
    assert students.find_by_id(conn, ctx, student.id).unwrap().id == student.id
    assert health_records.find_one(conn, ctx, {"student_id": student.id}).unwrap().id == record.id
    assert [r.id for r in health_records.find_many(
        conn, ctx, {"student_id": student.id}).unwrap().data] == [record.id]
    health_records.update(conn, ctx, record.id, {"title": "u"}).unwrap()
    audit.log_read(conn, ctx, HEALTH_RECORDS, [record.id], subjects=[student.id]).unwrap()
    glass = attrs.evolve(ctx, break_glass_reason="unconscious student, allergy check")
    assert health_records.find_by_id(conn, glass, record.id).unwrap().id == record.id
    health_records.delete(conn, ctx, record.id).unwrap()
    rows = admin_conn.execute(
        "SELECT action, entity_type, entity_id, entity_ids, subject_student_id, subject_ids, "
        "severity FROM audit_log WHERE request_id = %s ORDER BY seq", (ctx.request_id,)).fetchall()
    assert len(rows) >= 9
    for action, entity_type, entity_id, entity_ids, subject, subjects, _ in rows:
        assert subject is None or subject in subjects, (action, entity_type)
        if entity_id is not None:
            assert entity_id in entity_ids, (action, entity_type)
    by_id = [r for r in rows if r[0] == "READ" and r[1] == "HealthRecord" and r[2] == record.id]
    assert by_id and all((r[3], r[4], r[5]) == ([record.id], student.id, [student.id])
                         for r in by_id)
    assert {r[6] for r in by_id} >= {"MEDIUM", "CRITICAL"}  # the break-glass read is CRITICAL


def test_a_pages_single_subject_is_named_whichever_row_comes_first(
    conn: Conn, admin_conn: Conn, ctx: ExecutionContext, sys_ctx: ExecutionContext,
    make_student: Any, school: dict[str, Any],
) -> None:
    """A page whose rows name one student, and also rows that name none (an alert about the
    school), records that student as its single subject whatever the rows' order: in the
    statement's own record as in the record a read-only unit of work writes apart."""
    from wxdata.domains.alerts import alerts
    from wxdata.tx import transactional

    student = make_student()

    def alert(title: str, student_id: Any) -> Any:
        return alerts.create(conn, sys_ctx, {
            "severity": "LOW", "category": "HEALTH", "title": title, "message": "m",
            "student_id": student_id, "school_id": school["school_id"]}).unwrap()

    made = [alert("a, about the school", None), alert("b, about the student", student.id),
            alert("c, about the student", student.id)]

    def page_of(c: Conn, x: ExecutionContext) -> Any:
        return alerts.find_many(c, x, {"school_id": school["school_id"]}, order_by=["title"])

    for read in (page_of, transactional(read_only=True)(page_of)):
        reader = attrs.evolve(ctx, request_id=f"req-{uuid.uuid4().hex[:8]}")
        page = read(conn, reader).unwrap()
        assert [a.id for a in page.data] == [a.id for a in made]
        [(entity_id, entity_ids, subject, subjects)] = admin_conn.execute(
            "SELECT entity_id, entity_ids, subject_student_id, subject_ids FROM audit_log "
            "WHERE request_id = %s AND action = 'READ'", (reader.request_id,)).fetchall()
        # every row's id once, in an order of the server's choosing (an aggregate's input order)
        assert (entity_id, sorted(entity_ids)) == (None, sorted(a.id for a in made)), read
        assert (subject, subjects) == (student.id, [student.id]), read


_SUBJECTS = [uuid.UUID(int=n) for n in (7, 8, 9)]


@settings(max_examples=60, **SETTLE)
@given(rows=st.lists(st.tuples(st.sampled_from([None, *_SUBJECTS]), st.booleans()), max_size=6),
       subject=st.sampled_from(["sid", "id", None]), hit=st.booleans())
def test_a_records_ids_from_many_rows_are_the_ones_written_apart(
    conn: Conn, rows: list[tuple[uuid.UUID | None, bool]], subject: str | None, hit: bool,
) -> None:
    """The ids a riding record aggregates from the rows a read returns are those the same read's
    record written apart (on lane 2) lists: every row's id, the one id when there is one row,
    every subject once, the one subject when there is exactly one whatever the rows that name
    none; no record when no row is returned."""
    from wxdata.audit import sql as audit_sql
    from wxdata.core.auditing import _read_ids

    ids = [uuid.uuid4() for _ in rows]
    source = sql.SQL("SELECT * FROM (VALUES {}) v(id, sid, _hit)").format(sql.SQL(",").join(
        sql.SQL("({}::uuid,{}::uuid,{})").format(i, s, h)
        for i, (s, h) in zip(ids, rows, strict=True))) if rows else sql.SQL(
        "SELECT NULL::uuid id, NULL::uuid sid, NULL::boolean _hit WHERE false")
    where = sql.SQL(' WHERE "s"."_hit"') if hit else sql.SQL("")
    columns, from_clause = audit_sql._aggregated("id", subject, where)
    found = conn.execute(sql.SQL("WITH s AS ({}) SELECT {} {}").format(
        source, columns, from_clause)).fetchall()

    returned = [(i, s) for i, (s, h) in zip(ids, rows, strict=True) if h or not hit]
    if not returned:
        assert found == []
        return
    kept = tuple(i for i, _ in returned)
    subjects = {"sid": tuple(s for _, s in returned if s is not None), "id": kept,
                None: ()}[subject]
    apart = _read_ids(kept, subjects)
    [(entity_id, entity_ids, single, subject_ids)] = found
    assert (entity_id, single) == (apart["entity_id"], apart["subject_student_id"])
    # the same ids and subjects, each as often; in an order of the server's choosing (from
    # PostgreSQL 16 an aggregate's input may be sorted for the distinct subjects)
    assert sorted(entity_ids) == sorted(apart["entity_ids"])
    assert sorted(subject_ids) == sorted(apart["subject_ids"])
    assert len(subject_ids) == len(apart["subject_ids"])
