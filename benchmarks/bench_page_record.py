"""The server's CPU for a page's riding record: its ids aggregated once, against per column.

A page (or any read of more than one row) records the ids of the rows it returns and their
subjects, aggregated in SQL. The record wxdata wrote until 2026-12-07 aggregated each of its four
id columns on its own (a count and an array of the ids, a count of distinct subjects and an array
of them: two sorts), in a HAVING over the read's rows; it now aggregates the ids once (and, where
the subject is another column, the distinct subjects once) in a subquery of one row, from which
the four columns are read. This measures what the server spends on each form.

Two pages, each captured once as wxdata sends it (the owner's connection, the audit on):
``students.find_many`` of a school, page 1 of 20 by last name with its total (the subject is the
row's own id), and ``health_records.find_many`` of one student with its total (the subject is
``student_id``). For each: the statement with no record (as sent with the audit off), with the
record as wxdata writes it, and with the record's ids aggregated per column as before (rebuilt
from the captured statement; the rest of it unchanged). On one connection, ``--reps`` interleaved
repetitions of ``--ops`` executions of each prepared statement record the CPU time the
connection's backend spent (``/proc/<pid>/schedstat``); the server's processes are pinned to this
process's core, as in configuration B, and commits are not waited for. The server's affinity is
restored at the end, whatever happens.

The server must run on this machine (its processes under ``/proc``), and this process must be
allowed to set their affinity (``taskset``).

    python -m benchmarks.bench_page_record --reps 9 --ops 300
"""

from __future__ import annotations

import os
import re
import statistics
from typing import Any

import psycopg

from benchmarks.bench_shared_core import (
    audited_owner,
    backend_cpu_ns,
    measured_connection,
    on_core,
    options,
    pinned_server,
    summarise,
)

#: The record's ids as wxdata writes them now (``wxdata.audit.sql._aggregated``), with the parts
#: the per-column form keeps: the read's filter of the rows it returns.
_ONCE = re.compile(
    r",CASE WHEN cardinality\(x\.i\)=1 THEN x\.i\[1\] END,x\.i,.*? FROM \(SELECT .*? FROM s"
    r"(?P<where>(?: WHERE \"s\"\.\"_hit\")?)\) x WHERE x\.i IS NOT NULL\)")


#: How many students get three health records each (the second page's inputs, in turn).
_WITH_RECORDS = 200


def per_column(pk: str, subject: str | None) -> str:
    """The record's four id columns as wxdata wrote them before: each aggregated on its own."""
    sub = f'"s"."{subject}"' if subject else "NULL::uuid"
    key = f'"s"."{pk}"'
    return (f"CASE WHEN count({key})=1 THEN (array_agg({key}))[1] END,"
            f"COALESCE(array_agg({key}) FILTER (WHERE {key} IS NOT NULL),'{{}}'::uuid[]),"
            f"CASE WHEN count(DISTINCT {sub})=1 THEN (array_agg({sub}))[1] END,"
            f"COALESCE(array_agg(DISTINCT {sub}) FILTER (WHERE {sub} IS NOT NULL),'{{}}'::uuid[])")


def before(statement: str, pk: str, subject: str | None) -> str:
    """``statement`` (a read with its record riding) with the record's ids aggregated per column."""
    found = list(_ONCE.finditer(statement))
    if len(found) != 1:
        raise RuntimeError("the record's ids are not aggregated once in the captured statement")
    m = found[0]
    old = f",{per_column(pk, subject)} FROM s{m['where']} HAVING count(\"s\".\"{pk}\")>0)"
    return statement[:m.start()] + old + statement[m.end():]


def without_record(statement: str) -> str:
    """``statement`` without its record: the read's CTE and the final SELECT."""
    head, _, _ = statement.partition(", a AS (INSERT INTO audit_log")
    return head + statement[statement.rindex(") SELECT ") + 1:]


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print the table."""
    p, args = options((__doc__ or "").split("\n\n")[0], 9, 300, argv)
    core = min(os.sched_getaffinity(0))

    from benchmarks.common import sent_statement
    from wxdata.domains import health_records, students

    load = [os.getloadavg()[0]]
    cpu: dict[str, list[float]] = {}
    shown: dict[str, int] = {}
    with audited_owner(args, "req-bench-page-record") as (owner, ctx, ids):
        (school,) = ctx.school_ids
        with psycopg.connect(owner, autocommit=True) as conn:
            # three health records of each of the first students (one page of a student's records)
            for sid in ids[:_WITH_RECORDS]:
                for n in range(3):
                    conn.execute(
                        "INSERT INTO health_records (student_id, record_type, title, description,"
                        " record_date) VALUES (%s, 'CHECKUP', %s, 'd', %s)",
                        (sid, f"visit {n}", f"2026-0{n + 1}-15"))

        page_sql, page_params = sent_statement(owner, lambda c: students.find_many(
            c, ctx, {"school_id": school}, order_by=["last_name"], page=1, limit=20))
        records_sql, records_params = sent_statement(owner, lambda c: health_records.find_many(
            c, ctx, {"student_id": ids[0]}))
        student, record = students.ENTITY, health_records.ENTITY
        pages: dict[str, tuple[str, list[dict[str, Any]]]] = {}
        for title, text, params, entity, args_of in (
            ("students of a school, page 1 of 20 + total", page_sql, page_params, student,
             lambda i: {"p0": school}),
            ("a student's health records + total", records_sql, records_params, record,
             lambda i: {"p0": ids[i % min(_WITH_RECORDS, len(ids))]}),
        ):
            inputs = [{**params, **args_of(i)} for i in range(args.ops)]
            bare = [{k: v for k, v in q.items() if not k.startswith("a_")} for q in inputs]
            pages[f"{title}: no record"] = (without_record(text), bare)
            pages[f"{title}: record, ids per column (before)"] = (
                before(text, entity.pk, entity.subject), inputs)
            pages[f"{title}: record, ids aggregated once (wxdata)"] = (text, inputs)
        cpu = {label: [] for label in pages}
        with measured_connection(owner) as (conn, backend, postmaster):
            if postmaster is None:
                p.error("the server's processes are not on this machine")
            cur = conn.cursor()
            for label, (text, inputs) in pages.items():  # each returns what the other forms do
                rows = [cur.execute(text, q, prepare=True).fetchall() for q in inputs[:3]]
                shown[label] = sum(len(r) for r in rows) // 3
            with on_core(core), pinned_server(postmaster) as pin:
                pin(core)
                for text, inputs in pages.values():  # warm-up: prepared, caches
                    for q in inputs[:50]:
                        cur.execute(text, q, prepare=True)
                        cur.fetchall()
                for _ in range(args.reps):
                    for label, (text, inputs) in pages.items():
                        start = backend_cpu_ns(backend)
                        for q in inputs:
                            cur.execute(text, q, prepare=True)
                            cur.fetchall()
                        cpu[label].append((backend_cpu_ns(backend) - start) / len(inputs) / 1e3)
    load.append(os.getloadavg()[0])
    print(f"{args.reps} interleaved reps x {args.ops} executions of each, {args.students} "
          f"students in one school, the server and this process on core {core}, commits not "
          f"waited for; load average {load[0]:.2f} -> {load[1]:.2f}")
    print("| statement | rows | backend CPU µs per execution, median (min-max) | record |")
    print("|---|---:|---|---:|")
    for label, samples in cpu.items():
        title = label.split(": ")[0]
        bare = statistics.median(cpu[f"{title}: no record"])
        extra = statistics.median(samples) - bare
        print(f"| {label} | {shown[label]} | {summarise(samples)} | "
              f"{'—' if label.endswith('no record') else f'+{extra:.1f}'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
