"""Where the cost of an audited operation goes, down to the physical floor of a durable record.

For the audited operations of the main suite (student fetch by id, PHI read of a health record,
student create, student update) this captures the exact statements wxdata sends (a recording
cursor, as ``benchmarks.workloads`` does) and reports, on a freshly migrated and seeded database:

- statements (round trips) per operation;
- WAL per operation of the riding statement (``EXPLAIN (ANALYZE, BUFFERS, WAL)``: records, full-page
  images, bytes, all of them from that statement only), and its planning time;
- generic vs custom plans: the riding statement prepared, timed under
  ``plan_cache_mode = force_custom_plan`` and ``force_generic_plan``;
- the per-index insert cost: the PHI read + record timed with every ``audit_log`` secondary index
  present and with each one dropped in turn (every variant is the same statement, interleaved);
- the floor: a bare prepared fetch, the same fetch with the smallest durable record riding in the
  same statement (one narrow row into an unindexed table), and the fetch with wxdata's record;
- a journal indexed later: WAL per read of the record riding into an unindexed table and then moved
  into ``audit_log`` (copied and deleted in one transaction), against the record riding into
  ``audit_log`` as now;
- the record's shape: the same record into an unpartitioned copy of ``audit_log`` with its indexes
  and with none, into a table of reads alone, normalised (the context and the record's shape each
  stored once and referenced by key) with and without indexes, against the narrow record with and
  without every context parameter.

Timings: median over interleaved repetitions of the mean µs per operation, with min-max, and the
ratio to the bare fetch of the same repetition; the 1-minute load average is printed with them.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        python -m benchmarks.bench_audit_floor --reps 7 --ops 300 [--config B]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg
import psycopg.sql

from benchmarks.common import (
    Env,
    Options,
    add_config_argument,
    capture,
    print_in_configuration,
    statement,
)
from benchmarks.seed import bench_database

Op = Callable[[Any], Any]

FETCH_RECORD = "SELECT * FROM health_records WHERE id = %s AND deleted_at IS NULL"
#: The smallest durable record: who, what, which row, when; one heap tuple, no index, logged.
FLOOR_DDL = (
    "CREATE TABLE bench_floor_record (seq bigint GENERATED ALWAYS AS IDENTITY, "
    "created_at timestamptz NOT NULL DEFAULT clock_timestamp(), action text NOT NULL, "
    "entity_type text NOT NULL, entity_id uuid, subject_id uuid, user_id text)"
)
FLOOR_READ = (
    "WITH s AS (SELECT * FROM health_records WHERE id = %(id)s AND deleted_at IS NULL), "
    "a AS (INSERT INTO bench_floor_record (action, entity_type, entity_id, subject_id, user_id) "
    "SELECT 'READ', 'HealthRecord', s.id, s.student_id, %(user)s FROM s) SELECT * FROM s"
)


def _slot(params: dict[str, Any], value: Any) -> str:
    for k, v in params.items():
        if v == value:
            return k
    raise RuntimeError("sample value not among the captured parameters")


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def _interleaved(variants: dict[str, Op], inputs: list[Any], reps: int,
                 between: Callable[[str], None] | None = None) -> dict[str, list[float]]:
    """Per variant, the mean µs per op of each repetition (order rotating between repetitions)."""
    names = list(variants)
    out: dict[str, list[float]] = {n: [] for n in names}
    for name in names:  # warm-up (prepares statements)
        if between:
            between(name)
        for x in inputs[:20]:
            variants[name](x)
    for rep in range(reps):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for name in order:
            if between:
                between(name)
            op = variants[name]
            t0 = time.perf_counter_ns()
            for x in inputs:
                op(x)
            out[name].append((time.perf_counter_ns() - t0) / 1000 / len(inputs))
    return out


def _table(title: str, samples: dict[str, list[float]], base: str) -> list[str]:
    lines = [f"### {title}", "", f"load average (1 min) after the run: {_load()}", "",
             "| variant | µs/op median (min-max) | ratio to `" + base + "` median (min-max) |",
             "|---|---|---|"]
    for name, xs in samples.items():
        ratios = [x / b for x, b in zip(xs, samples[base], strict=True)]
        lines.append(f"| {name} | {statistics.median(xs):.1f} ({min(xs):.1f}-{max(xs):.1f}) | "
                     f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |")
    return [*lines, ""]


_WAL = re.compile(r"WAL: (.*)")
_BYTES = re.compile(r"bytes=([0-9]+)")
_PLAN = re.compile(r"Planning Time: ([0-9.]+) ms")
_EXEC = re.compile(r"Execution Time: ([0-9.]+) ms")


def _explain(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any]) -> tuple[str, str, str]:
    """(WAL summary of the top node, planning ms, execution ms) of one execution."""
    text = "\n".join(r[0] for r in conn.execute(
        "EXPLAIN (ANALYZE, BUFFERS, WAL, COSTS OFF, TIMING OFF) " + sql, params))
    # a CTE's WAL is not added to the node above it: report the node that wrote the most
    wals = _WAL.findall(text)
    wal = max(wals, key=lambda w: int(_BYTES.search(w).group(1)) if _BYTES.search(w) else 0,
              default="none")
    plan, exe = _PLAN.search(text), _EXEC.search(text)
    return wal, plan.group(1) if plan else "?", exe.group(1) if exe else "?"


def _written(conn: psycopg.Connection[Any], sql: str, params: Any) -> tuple[int, int]:
    """(WAL bytes, WAL records) one execution of ``sql`` writes: the sum over its modifying nodes.

    Exact for a plain INSERT or DELETE and for a riding record, whose data-modifying CTE no node
    reads (PostgreSQL runs it after the plan, outside every node's counters). Not for a CTE that a
    ``CTE Scan`` reads: its WAL is counted in that scan's node and again in the CTE's own."""
    (plan,) = conn.execute("EXPLAIN (ANALYZE, WAL, COSTS OFF, TIMING OFF, FORMAT JSON) " + sql,
                           params).fetchone() or (None,)
    if not plan:
        raise RuntimeError("EXPLAIN returned no plan")
    stack, found = [plan[0]["Plan"]], (0, 0)
    while stack:
        node = stack.pop()
        stack.extend(node.get("Plans", ()))
        if node["Node Type"] == "ModifyTable":
            found = (found[0] + node.get("WAL Bytes", 0), found[1] + node.get("WAL Records", 0))
    return found


#: An unindexed, unpartitioned table taking the record as written (its seq from a sequence of its
#: own); a journal indexed later moves everything in it into the log in one transaction.
_JOURNAL_DDL = (
    "CREATE TABLE bench_journal (LIKE audit_log INCLUDING DEFAULTS)",
    "ALTER TABLE bench_journal ALTER seq ADD GENERATED BY DEFAULT AS IDENTITY",
)


def _journal_wal(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any], key: str,
                 ids: list[Any]) -> list[str]:
    """WAL per read of the record written into ``audit_log`` (as now) against a journal: the
    record into an unindexed table, then moved into ``audit_log`` (copied, then deleted from the
    journal, in one transaction)."""
    for ddl in _JOURNAL_DDL:
        conn.execute(ddl)
    columns = [name for (name,) in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = 'audit_log'::regclass AND attnum > 0 "
        "AND NOT attisdropped AND attname <> 'seq' ORDER BY attnum")]
    listed = ", ".join(f'"{c}"' for c in columns)
    copy = f"INSERT INTO audit_log ({listed}) SELECT {listed} FROM bench_journal"
    journal = sql.replace("INSERT INTO audit_log", "INSERT INTO bench_journal", 1)
    direct = [_written(conn, sql, {**params, key: i}) for i in ids]
    riding = [_written(conn, journal, {**params, key: i}) for i in ids]
    with conn.transaction():
        copied = _written(conn, copy, None)
        deleted = _written(conn, "DELETE FROM bench_journal", None)
    moved_bytes, moved_records = copied[0] + deleted[0], copied[1] + deleted[1]
    conn.execute("DROP TABLE bench_journal")
    n = len(ids)

    def median(pairs: list[tuple[int, int]], i: int) -> float:
        return statistics.median(p[i] for p in pairs)

    now_b, now_r = median(direct, 0), median(direct, 1)
    ride_b, ride_r = median(riding, 0), median(riding, 1)
    total = ride_b + moved_bytes / n
    return ["### A journal indexed later: WAL per read", "",
            f"The PHI read's record riding into `audit_log` as now, against the same record riding "
            f"into an unindexed journal and moved into `audit_log` afterwards (all {n} copied "
            f"by one INSERT and deleted by one DELETE, in one transaction); medians over {n} "
            f"reads.", "",
            "| where the record goes | WAL bytes per read | WAL records per read | vs now |",
            "|---|---|---|---|",
            f"| `audit_log` (now) | {now_b:.0f} | {now_r:.1f} | 1.00x |",
            f"| the journal, in the read | {ride_b:.0f} | {ride_r:.1f} | {ride_b / now_b:.2f}x |",
            f"| moved into `audit_log` later | {moved_bytes / n:.0f} | {moved_records / n:.1f} "
            f"| {moved_bytes / n / now_b:.2f}x |",
            f"| the journal in all | {total:.0f} | {ride_r + moved_records / n:.1f} "
            f"| {total / now_b:.2f}x |", ""]


def _page_plans(env: Env, connect: Callable[..., psycopg.Cursor[Any]], off: str,
                reps: int) -> list[str]:
    """The audited page of 20 + total: its window bound as parameters (PostgreSQL re-plans the
    statement on every call) against written in (wxdata's first pages: one generic plan)."""
    from benchmarks.seed import GRADES
    from benchmarks.workloads import ORDER
    from wxdata.domains import students

    written = {page: statement(capture(env, lambda c, p=page: students.find_many(
        c, env.ctx, {"grade": "7"}, order_by=ORDER, page=p, limit=20)), "INSERT INTO audit_log")
        for page in range(1, 6)}
    grade = _slot(written[1][1], "7")
    bound_sql = re.sub(r"LIMIT 20 OFFSET [0-9]+", "LIMIT %(_limit)s OFFSET %(_offset)s",
                       written[1][0])
    inputs = [(GRADES[i % len(GRADES)], 1 + i % 5) for i in range(200)]

    def bound_op(cur: psycopg.Cursor[Any]) -> Op:
        def op(x: tuple[str, int]) -> Any:
            cur.execute(bound_sql, {**written[1][1], grade: x[0], "_limit": 20,
                                    "_offset": (x[1] - 1) * 20}, prepare=True)
            return cur.fetchall()
        return op

    def written_op(cur: psycopg.Cursor[Any]) -> Op:
        def op(x: tuple[str, int]) -> Any:
            sql, params = written[x[1]]
            cur.execute(sql, {**params, grade: x[0]}, prepare=True)
            return cur.fetchall()
        return op

    default_bound, default_written = connect(off), connect(off)
    samples = _interleaved({
        "window bound, plan cache default": bound_op(default_bound),
        "window bound, generic plan forced": bound_op(
            connect(off, "SET plan_cache_mode = force_generic_plan")),
        "window written in (wxdata, pages 1-5), plan cache default": written_op(default_written),
    }, inputs, reps)
    plans = [
        f"{name}: {cur.connection.execute(_PLANS).fetchall()}"
        for name, cur in (("bound", default_bound), ("written in", default_written))]
    return [*_table("Audited page of 20 + total (synchronous_commit=off): LIMIT/OFFSET bound "
                    "vs written in", samples, "window bound, plan cache default"),
            "plans chosen by the plan cache (generic, custom) per statement: " + "; ".join(plans),
            ""]


#: Copies of ``audit_log`` that take wxdata's record unchanged: unpartitioned with every index,
#: and with none (the most a journal indexed later could save on the riding statement).
_SHAPES_DDL = (
    "CREATE SEQUENCE bench_shape_seq",
    "CREATE TABLE bench_shape_indexed (LIKE audit_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS "
    "INCLUDING INDEXES)",
    "ALTER TABLE bench_shape_indexed ALTER seq SET DEFAULT nextval('bench_shape_seq')",
    "CREATE TABLE bench_shape_bare (LIKE audit_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
    "ALTER TABLE bench_shape_bare ALTER seq SET DEFAULT nextval('bench_shape_seq')",
    # reads in a table of their own: the columns a read's record fills (no images, no error, no
    # metadata, no hold), no index
    "CREATE TABLE bench_shape_reads (LIKE bench_shape_bare INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
    "ALTER TABLE bench_shape_reads DROP changes, DROP previous_values, DROP new_values, "
    "DROP error_message, DROP metadata, DROP legal_hold",
    # the context and the record's shape stored once and referenced: who, role, address, agent,
    # request, session, correlation, purpose and reason become one key; the action, entity,
    # fields, classification, outcome and tags another
    "CREATE TABLE bench_shape_normal (seq bigint NOT NULL DEFAULT nextval('bench_shape_seq'), "
    "id uuid NOT NULL DEFAULT wxdata_uuid7(), created_at timestamptz NOT NULL "
    "DEFAULT clock_timestamp(), transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(), "
    "context_id bigint NOT NULL, shape_id smallint NOT NULL, entity_id uuid, "
    "entity_ids uuid[] NOT NULL, subject_student_id uuid, subject_ids uuid[] NOT NULL)",
    "CREATE TABLE bench_shape_normal_indexed (LIKE bench_shape_normal INCLUDING DEFAULTS)",
    "ALTER TABLE bench_shape_normal_indexed ADD PRIMARY KEY (id), ADD UNIQUE (seq)",
    "CREATE INDEX ON bench_shape_normal_indexed USING brin (created_at)",
    "CREATE INDEX ON bench_shape_normal_indexed USING gin (entity_ids)",
    "CREATE INDEX ON bench_shape_normal_indexed USING gin (subject_ids)",
    "CREATE INDEX ON bench_shape_normal_indexed (context_id, created_at)",
    "CREATE INDEX ON bench_shape_normal_indexed (transaction_id)",
)
#: The PHI read with its record normalised: the context's and the shape's keys bound, the ids
#: computed from the row as wxdata computes them.
_NORMAL_READ = (
    "WITH s AS (SELECT * FROM health_records WHERE id = %(_id)s AND deleted_at IS NULL), "
    "a AS (INSERT INTO {table} (context_id, shape_id, entity_id, entity_ids, subject_student_id, "
    "subject_ids) SELECT %(_context)s, 7, s.id, ARRAY[s.id], s.student_id, CASE WHEN s.student_id "
    "IS NULL THEN '{{}}'::uuid[] ELSE ARRAY[s.student_id] END FROM s) SELECT * FROM s"
)
#: The narrow floor record carrying every context parameter wxdata's record binds.
_FLOOR_ALL_PARAMS = (
    "WITH s AS (SELECT * FROM health_records WHERE id = %(_id)s AND deleted_at IS NULL), "
    "a AS (INSERT INTO bench_floor_record (action, entity_type, entity_id, subject_id, user_id) "
    "SELECT 'READ', 'HealthRecord', s.id, s.student_id, concat_ws('|', %(a_user_id)s::text, "
    "%(a_user_name)s::text, %(a_user_role)s::text, %(a_ip_address)s::text, "
    "%(a_user_agent)s::text, %(a_request_id)s::text, %(a_session_id)s::text, "
    "%(a_correlation_id)s::text, %(a_purpose)s::text, %(a_break_glass_reason)s::text) FROM s) "
    "SELECT * FROM s"
)


def record_shapes(conn: psycopg.Connection[Any], sql: str, key: str) -> dict[str, str]:
    """The PHI read's statement ``sql`` (its record into ``audit_log``) and the same read with
    its record into tables of decreasing cost, made here (they need :data:`FLOOR_DDL`'s table
    made first): by name, each with the row's id bound as ``key`` and the context as wxdata binds
    it (the normalised record's context key as ``_context``)."""
    for ddl in _SHAPES_DDL:
        conn.execute(ddl)
    row = conn.execute(  # the normalised records take their ids as audit_log's do on this server
        "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attrdef d JOIN pg_attribute a "
        "ON a.attrelid = d.adrelid AND a.attnum = d.adnum "
        "WHERE d.adrelid = 'audit_log'::regclass AND a.attname = 'id'").fetchone()
    if row is None:
        raise RuntimeError("audit_log.id has no default")
    for table in ("bench_shape_normal", "bench_shape_normal_indexed"):
        conn.execute(psycopg.sql.SQL("ALTER TABLE {} ALTER id SET DEFAULT {}").format(
            psycopg.sql.Identifier(table), psycopg.sql.SQL(row[0])))
    return {
        "wxdata record into audit_log (partitioned, its indexes)": sql,
        "the same into an unpartitioned copy with the same indexes":
            sql.replace("INSERT INTO audit_log", "INSERT INTO bench_shape_indexed", 1),
        "the same into the copy without any index":
            sql.replace("INSERT INTO audit_log", "INSERT INTO bench_shape_bare", 1),
        "reads in their own table: a read's columns only, no index":
            sql.replace("INSERT INTO audit_log", "INSERT INTO bench_shape_reads", 1),
        "normalised (context and shape by key), audit_log's indexes":
            _NORMAL_READ.format(table="bench_shape_normal_indexed").replace(
                "%(_id)s", f"%({key})s"),
        "normalised (context and shape by key), no index":
            _NORMAL_READ.format(table="bench_shape_normal").replace("%(_id)s", f"%({key})s"),
        "floor record with every context parameter bound": _FLOOR_ALL_PARAMS.replace(
            "%(_id)s", f"%({key})s"),
        "floor record": FLOOR_READ.replace("%(id)s", f"%({key})s").replace(
            "%(user)s", "%(a_user_id)s"),
        "bare fetch": FETCH_RECORD.replace("%s", f"%({key})s"),
    }


def _record_shapes(conn: psycopg.Connection[Any], cur: psycopg.Cursor[Any], sql: str,
                   params: dict[str, Any], key: str, inputs: list[Any], reps: int) -> list[str]:
    """The PHI read's record into tables of decreasing cost, same statement otherwise."""
    statements = record_shapes(conn, sql, key)

    bound = {**params, "_context": 1}  # the normalised record's context key

    def op_of(text: str) -> Op:
        names = [k for k in bound if f"%({k})s" in text]

        def op(rid: Any) -> Any:
            cur.execute(text, {**{k: bound[k] for k in names}, key: rid}, prepare=True)
            return cur.fetchall()
        return op

    samples = _interleaved({name: op_of(text) for name, text in statements.items()}, inputs, reps)
    return [*_table("PHI read + record (synchronous_commit=off): the same record into tables of "
                    "decreasing cost", samples, "bare fetch"),
            "Read down the table: the first step is partitioning's share, the second the indexes' "
            "(all of them: what a journal indexed later could save at most); then the same "
            "unindexed record in a table of reads alone (the columns only changes fill dropped), "
            "the record normalised (the context and the record's shape each stored once and "
            "referenced by key) with audit_log's indexes (the user's by its context) and with "
            "none, and the narrow floor record with and without every context parameter.", ""]


def aggregated(update_sql: str, entity: Any, columns: tuple[str, ...]) -> str:
    """An update's riding statement with its images computed as before: aggregated
    (``jsonb_object_agg``) over one ``(name, change)`` row per column, in a materialised CTE,
    instead of built per column. For columns recorded as they are (no mask, no secret)."""
    from psycopg import sql as q

    from wxdata.audit.redact import column_policy
    from wxdata.audit.sql import field_expr, update_images

    images = ",".join(part.as_string() for part in update_images(entity, columns))
    if images not in update_sql or any(
            column_policy(entity.by_name.get(c), c) != "keep" for c in columns):
        raise RuntimeError("the update's statement has no per-column images of plain columns")
    rows = ",".join(q.SQL("({},CASE WHEN {n} IS DISTINCT FROM {o} THEN jsonb_build_object("
                          "'before',{b},'after',{a}) END)").format(
        q.Literal(c), n=q.Identifier("s", c), o=q.Identifier("s", "_o_" + c),
        b=field_expr(entity, c, q.Identifier("s", "_o_" + c)),
        a=field_expr(entity, c, q.Identifier("s", c))).as_string() for c in columns)
    cte = (", d AS MATERIALIZED (SELECT s.*, x._diff, x._before, x._after FROM s, LATERAL ("
           "SELECT COALESCE(jsonb_object_agg(k,v),'{}'::jsonb) AS _diff,"
           "COALESCE(jsonb_object_agg(k,v->'before'),'{}'::jsonb) AS _before,"
           "COALESCE(jsonb_object_agg(k,v->'after'),'{}'::jsonb) AS _after"
           f" FROM (VALUES {rows}) d(k,v) WHERE v IS NOT NULL) x)")
    head, insert = update_sql.split(", a AS (INSERT INTO audit_log", 1)
    insert = insert.replace(images, "s._diff,s._before,s._after", 1).replace(
        " FROM s) SELECT ", " FROM d s) SELECT ", 1)
    return head + cte + ", a AS (INSERT INTO audit_log" + insert


_OPTIMISTIC = re.compile(r',"ctid" "_ctid" FROM "(\w+)" WHERE (.*?)\) "o" WHERE "\1"\."ctid"="o"\."_ctid"'
                         r' AND "\1"\."(\w+)"="o"\."\3"')


def locking(update_sql: str) -> str:
    """An update's riding statement with its old row read under a row lock and joined by key
    (``FOR UPDATE``, the form before 18 that wxdata now runs only when the unlocked one, joined by
    the row's address, updates nothing)."""
    m = _OPTIMISTIC.search(update_sql)
    if m is None:
        raise RuntimeError("the update's statement does not read its old row unlocked")
    table, where, pk = m.group(1), m.group(2), m.group(3)
    return (update_sql[:m.start()] + f' FROM "{table}" WHERE {where} FOR UPDATE) "o" '
            f'WHERE "{table}"."{pk}"="o"."{pk}"' + update_sql[m.end():])


def _update_images(cur: psycopg.Cursor[Any], sql: str, params: dict[str, Any],
                   students: list[Any], args: argparse.Namespace) -> list[str]:
    """The update's riding statement with its images built per column (wxdata) and aggregated
    (before)."""
    from wxdata.schema import STUDENTS

    key, grade = _slot(params, students[0]), _slot(params, "6")
    old = aggregated(sql, STUDENTS, ("grade",))
    bare = ("UPDATE students SET grade = %(g)s, version = version + 1, updated_at = now(), "
            "updated_by = %(u)s WHERE id = %(i)s AND deleted_at IS NULL RETURNING *")
    inputs = [(students[i % len(students)], str(1 + i % 12)) for i in range(args.ops)]

    def op_of(text: str) -> Op:
        def op(x: tuple[Any, str]) -> Any:
            cur.execute(text, {**params, key: x[0], grade: x[1]}, prepare=True)
            return cur.fetchall()
        return op

    def bare_op(x: tuple[Any, str]) -> Any:
        cur.execute(bare, {"g": x[1], "u": params["_uid"], "i": x[0]}, prepare=True)
        return cur.fetchall()

    def images(text: str) -> tuple[Any, ...]:
        bare_op((students[0], "3"))
        op_of(text)((students[0], "4"))
        row = cur.execute("SELECT changes, previous_values, new_values FROM audit_log "
                          "WHERE entity_id = %s ORDER BY seq DESC LIMIT 1", (students[0],)).fetchone()
        return tuple(row or ())

    if images(sql) != images(old):  # the comparison is of two ways to write the same record
        raise RuntimeError("the per-column and aggregated statements record different images")

    variants = {"bare update": bare_op, "wxdata update + record": op_of(sql),
                "the same, images aggregated": op_of(old)}
    note = "PostgreSQL 18 returns the old row itself (RETURNING old): no self-join to lock."
    if _OPTIMISTIC.search(sql):  # before 18: the old row read unlocked, against locked
        locked = locking(sql)
        if images(sql) != images(locked):
            raise RuntimeError("the unlocked and locking statements record different images")
        variants["the same, old row locked"] = op_of(locked)
        note = "Before PostgreSQL 18: the old row read unlocked (wxdata) against locked."
    samples = _interleaved(variants, inputs, args.reps)
    return [*_table("Student update + record (synchronous_commit=off): the record's images built "
                    "per column (wxdata) against aggregated", samples, "bare update"), note, ""]


_PLANS = ("SELECT generic_plans, custom_plans FROM pg_prepared_statements "
          "WHERE statement LIKE 'WITH s AS%%INSERT INTO audit_log%%'")


def run(args: argparse.Namespace) -> str:
    """Seed, capture, measure; the Markdown report."""
    from wxdata.domains import health_records, students

    server = args.database_url or os.environ["DATABASE_URL"]
    options = Options(database_url=server, reps=args.reps)
    out: list[str] = []
    with bench_database(server, options, args.students, 3, log=lambda _: None) as (url, data):
        env = Env("A", url, options, data)
        try:
            conn = env.raw
            conn.execute(FLOOR_DDL)
            sample_s, sample_r = data.student_ids[0], data.record_ids[0]
            values = {
                "student_number": "FLOOR-1", "first_name": "Ada", "last_name": "Lovelace",
                "date_of_birth": "2014-01-02", "grade": "5", "gender": "FEMALE",
                "enrollment_date": "2024-09-01", "school_id": data.schools[0][0],
                "district_id": data.schools[0][1],
            }
            ops = {
                "fetch by id (student)": capture(
                    env, lambda c: students.find_by_id(c, env.ctx, sample_s)),
                "PHI read (health record)": capture(
                    env, lambda c: health_records.find_by_id(c, env.ctx, sample_r)),
                "create (student)": capture(env, lambda c: students.create(c, env.ctx, values)),
                "update (student)": capture(
                    env, lambda c: students.update(c, env.ctx, sample_s, {"grade": "6"})),
            }
            out += ["## Statements and WAL per audited operation", "",
                    "| operation | statements (round trips) | riding statement WAL (records, full-page"
                    " images, bytes) | planning ms | execution ms |", "|---|---|---|---|---|"]
            riding: dict[str, tuple[str, dict[str, Any]]] = {}
            for name, log in ops.items():
                sql, params = statement(log, "INSERT INTO audit_log")
                riding[name] = (sql, params)
                if name.startswith(("create", "update")):
                    wal, plan, exe = "(write: not re-run)", "-", "-"
                else:
                    conn.execute(sql, params)  # warm
                    wal, plan, exe = _explain(conn, sql, params)
                out.append(f"| {name} | {len(log)} | {wal} | {plan} | {exe} |")
            out.append("")

            # generic vs custom plan of the PHI read's riding statement, and the floor
            sql, params = riding["PHI read (health record)"]
            key = _slot(params, sample_r)
            inputs = [data.record_ids[i % len(data.record_ids)] for i in range(args.ops)]
            conns: list[psycopg.Connection[Any]] = []

            def connect(*settings: str) -> psycopg.Cursor[Any]:
                c = psycopg.connect(url, autocommit=True)
                conns.append(c)
                for setting in settings:
                    c.execute(setting)
                return c.cursor()

            def riding_op(cur: psycopg.Cursor[Any]) -> Op:
                def op(rid: Any) -> Any:
                    cur.execute(sql, {**params, key: rid}, prepare=True)
                    return cur.fetchone()
                return op

            def bare_op(cur: psycopg.Cursor[Any]) -> Op:
                def op(rid: Any) -> Any:
                    cur.execute(FETCH_RECORD, (rid,), prepare=True)
                    return cur.fetchone()
                return op

            def floor_op(cur: psycopg.Cursor[Any]) -> Op:
                def op(rid: Any) -> Any:
                    cur.execute(FLOOR_READ, {"id": rid, "user": "u-bench"}, prepare=True)
                    return cur.fetchone()
                return op

            durable = connect()
            samples = _interleaved({"bare fetch": bare_op(durable),
                                    "floor: narrow record, no index": floor_op(durable),
                                    "wxdata record": riding_op(durable)}, inputs, args.reps)
            out += _table("PHI read, durable commits: bare, floor record, wxdata record",
                          samples, "bare fetch")
            plans = durable.execute(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                "WHERE statement LIKE 'WITH s AS%%INSERT INTO audit_log%%'").fetchall()
            out.append(f"plans chosen by the plan cache for wxdata's riding read (generic, custom): "
                       f"{plans}")
            out.append("")
            off = "SET synchronous_commit = off"
            cpu = connect(off)
            samples = _interleaved({
                "bare fetch": bare_op(cpu), "floor: narrow record, no index": floor_op(cpu),
                "wxdata record, plan cache default": riding_op(cpu),
                "wxdata record, custom plan": riding_op(
                    connect(off, "SET plan_cache_mode = force_custom_plan")),
                "wxdata record, generic plan": riding_op(
                    connect(off, "SET plan_cache_mode = force_generic_plan")),
            }, inputs, args.reps)
            out += _table("PHI read, synchronous_commit=off (the CPU share, not durable: "
                          "decomposition only)", samples, "bare fetch")
            out += _page_plans(env, connect, off, args.reps)
            conn.execute(off)

            out += _record_shapes(conn, cpu, sql, params, key, inputs, args.reps)
            out += _update_images(cpu, *riding["update (student)"], data.student_ids, args)

            # per-index cost: each secondary index of audit_log dropped in turn
            idx = conn.execute(
                "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "WHERE i.indrelid = 'audit_log'::regclass AND NOT i.indisprimary "
                "AND NOT i.indisunique ORDER BY 1").fetchall()
            state = {"dropped": None}

            def switch(name: str) -> None:
                want = None if name == "all indexes" else name.removeprefix("without ")
                if state["dropped"] == want:
                    return
                if state["dropped"] is not None:  # a partitioned index: rebuild every partition's
                    conn.execute(dict(idx)[state["dropped"]].replace(" ON ONLY ", " ON ", 1))
                if want is not None:
                    conn.execute(f'DROP INDEX "{want}"')
                state["dropped"] = want

            op = riding_op(cpu)
            variants: dict[str, Op] = {"all indexes": op}
            for name, _ in idx:
                variants[f"without {name}"] = op
            samples = _interleaved(variants, inputs, args.reps, between=switch)
            switch("all indexes")
            out += _table("PHI read + record (synchronous_commit=off), audit_log secondary indexes "
                          "dropped one at a time",
                          samples, "all indexes")
            wal_rows = ["| index set | WAL of one riding read |", "|---|---|"]
            for name, _ in [("all indexes", ""), *idx]:
                switch(name if name == "all indexes" else f"without {name}")
                wal_rows.append(f"| {name if name == 'all indexes' else 'without ' + name} | "
                                f"{_explain(conn, sql, {**params, key: sample_r})[0]} |")
            switch("all indexes")
            out += ["### WAL per riding read by index set", "", *wal_rows, ""]
            out += _journal_wal(conn, sql, params, key,
                                [data.record_ids[i % len(data.record_ids)]
                                 for i in range(max(args.ops, 10))])
            size = conn.execute(
                "SELECT pg_size_pretty(sum(pg_total_relation_size(r))), "
                "(SELECT count(*) FROM audit_log) FROM (SELECT 'audit_log'::regclass AS r "
                "UNION ALL SELECT inhrelid::regclass FROM pg_inherits "
                "WHERE inhparent = 'audit_log'::regclass) t").fetchone()
            out.append(f"audit_log after the run: {size[0] if size else '?'} total, "
                       f"{size[1] if size else '?'} records")
            for c in conns:
                c.close()
        finally:
            env.close()
    return "\n".join(out) + "\n"


def main() -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database-url", default=None)
    p.add_argument("--students", type=int, default=5000)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--ops", type=int, default=300)
    add_config_argument(p)
    args = p.parse_args()
    print(f"# audit floor: students {args.students}, reps {args.reps}, ops {args.ops}, "
          f"load average at start {_load()}\n")
    return print_in_configuration(args.config, args.database_url, lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
