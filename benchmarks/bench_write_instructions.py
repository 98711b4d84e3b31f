"""Server instructions per audited write: a create's and an update's record, counted, not timed.

The companion of :mod:`benchmarks.bench_server_instructions` (which counts the audited read) for
the write path, with its method: a private PostgreSQL cluster (``initdb`` from ``--pg-bin``) is
started, migrated and seeded with one school of students (names varied, so the name indexes hold
distinct keys as in real data; every row moved twice and vacuumed, so no count is the one that
first extends the table or splits the index leaves a rebuild packed); wxdata's audited
``students.create`` and ``students.update`` (one column, ``grade``) are captured as sent, the
context's values written into them as literals; the cluster is stopped and each variant is
prepared (generic plan) and executed in single-user mode (``postgres --single``) under
``valgrind --tool=callgrind``, ``--warm`` times and, in a second run, ``--warm + --executions``
times; the difference of the two counts divided by ``--executions`` is what one execution costs.
``VACUUM students`` runs, uncounted, before every count, so each starts from the same table
whatever the variant before it left behind; each update sets a grade no row holds yet, so every
execution changes its row (none is a HOT update, which leaves the indexes alone). Every variant
returns the same 20 columns (single-user mode prints each returned row, and a wider row would
cost more to print, not to write).

Variants: the bare INSERT (UPDATE) ... RETURNING; the same with the narrow floor record riding
(one row into an unindexed table, ``bench_floor_record``); wxdata's audited statement as sent.
For the update also: the same statement reading the whole old row (every column, as before
wxdata read only the changed columns' old values), and wxdata's record riding a plain UPDATE
with no old row at all (its diff against NULL: what reading the old row costs, not a correct
record). Before PostgreSQL 18 the old row is read in the statement and joined by its address;
from 18 it is ``RETURNING old.<column>``.

    python -m benchmarks.bench_write_instructions --executions 300 --rounds 2

Needs valgrind and the PostgreSQL server binaries (``--pg-bin``, default ``pg_config --bindir``);
run as root, the cluster runs as the ``postgres`` operating-system user.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
from collections.abc import Callable
from datetime import date
from typing import Any

import attrs
import psycopg

from benchmarks.bench_audit_floor import FLOOR_DDL
from benchmarks.bench_scope import _setup
from benchmarks.bench_server_instructions import (
    _as_server_user,
    _bin_dir,
    _cluster,
    _count,
    _literal,
    _serving,
    command_line,
    table_rows,
)
from benchmarks.common import BenchmarkError, Recorder

_FLOOR = "INSERT INTO bench_floor_record (action, entity_type, entity_id, subject_id, user_id) "
_CREATE = "create: "
_UPDATE = "update: "


def _captured(owner: str, school: Any,
              ids: list[Any]) -> tuple[str, dict[str, Any], str, dict[str, Any]]:
    """wxdata's audited create and update of a student as sent: (create, its parameters, update,
    its parameters)."""
    from returns.result import Success

    from wxdata import ExecutionContext, Purpose, Role
    from wxdata.config import configure, settings
    from wxdata.domains import students

    previous = configure(attrs.evolve(settings(), allow_privileged_connection=True,
                                      audit_enabled=True))
    ctx = ExecutionContext(user_id="u-bench-nurse", role=Role.NURSE, purpose=Purpose.TREATMENT,
                           school_ids={school}, request_id="req-bench-write")
    Recorder.log = []
    try:
        with psycopg.connect(owner, autocommit=True, cursor_factory=Recorder) as conn:
            (district,) = conn.execute("SELECT district_id FROM schools WHERE id = %s",
                                       (school,)).fetchone() or (None,)
            created = students.create(conn, ctx, {
                "student_number": "BW-capture", "first_name": "Ada", "last_name": "Lovelace",
                "date_of_birth": date(2014, 5, 17), "grade": "5", "gender": "FEMALE",
                "enrollment_date": date(2020, 9, 1), "school_id": school,
                "district_id": district})
            updated = students.update(conn, ctx, ids[0], {"grade": "6"})
            if not (isinstance(created, Success) and isinstance(updated, Success)):
                raise BenchmarkError(f"capture failed: {created!r} {updated!r}")
    finally:
        configure(previous)
    riding = [(text, dict(params or {})) for text, params in Recorder.log
              if "INSERT INTO audit_log" in text]
    if len(riding) != 2:
        raise BenchmarkError(f"expected two riding statements, captured {len(riding)}")
    (create, cparams), (update, uparams) = riding
    return create, cparams, update, uparams


def _bind(text: str, params: dict[str, Any], slots: dict[str, str],
          literal: Callable[[Any], str]) -> str:
    """``text`` with each named parameter replaced by its slot (``$1``...) or its literal."""
    for name, value in params.items():
        text = text.replace(f"%({name})s", slots.get(name) or literal(value))
    if "%(" in text:
        raise BenchmarkError("a parameter of the captured statement was left unbound")
    return text


def _between(text: str, start: str, end: str) -> tuple[int, int]:
    i = text.find(start)
    j = text.find(end, i + len(start)) if i >= 0 else -1
    if i < 0 or j < 0:
        raise BenchmarkError(f"the captured statement has no {start!r} ... {end!r}")
    return i + len(start), j


def _whole_old_row(update: str, columns: tuple[str, ...]) -> str:
    """The audited update reading every column of the old row (the form before), not only the
    changed one's: the record is the same, the statement carries the rest unread."""
    olds = [c for c in columns if c != "grade"]
    if 'old."grade" "_o_grade"' in update:  # PostgreSQL 18: RETURNING old.<column>
        extra = "".join(f',old."{c}" "_o_{c}"' for c in olds)
        return update.replace('old."grade" "_o_grade"', 'old."grade" "_o_grade"' + extra, 1)
    i, j = _between(update, "FROM (SELECT ", ' FROM "students" WHERE')
    read = ",".join(f'"{c}"' for c in columns) + ',"ctid" "_ctid"'
    update = update[:i] + read + update[j:]
    extra = "".join(f',"o"."{c}" "_o_{c}"' for c in olds)
    return update.replace('"o"."grade" "_o_grade"', '"o"."grade" "_o_grade"' + extra, 1)


def _variants(create: str, update: str, user: str, columns: tuple[str, ...]) -> dict[str, str]:
    cols = ",".join(f'"{c}"' for c in columns)
    i, j = _between(create, "WITH s AS (", "), d AS MATERIALIZED")
    insert = create[i:j]
    _between(update, "WITH s AS (", "), a AS (INSERT")  # the shape the variants rewrite
    record = update[update.index("), a AS (INSERT") + 3:]
    bare_update = ('UPDATE "students" SET "grade"=$2,"version"="students"."version"+1,'
                   f'"updated_at"=NOW(),"updated_by"={user} WHERE "id"=$1 AND "deleted_at" IS NULL '
                   f"RETURNING {cols}")
    # the record's diff against no old row: each _o_ column a typed NULL
    no_old = record.replace('"s"."_o_grade"', "NULL::varchar")
    return {
        _CREATE + "bare INSERT": insert,
        _CREATE + "floor: narrow record, no index": (
            f"WITH s AS ({insert}), a AS ({_FLOOR}SELECT 'CREATE','Student',s.id,s.id,{user} "
            f"FROM s) SELECT {cols} FROM s"),
        _CREATE + "wxdata, audited (as sent)": create,
        _UPDATE + "bare UPDATE": bare_update,
        _UPDATE + "floor: narrow record, no index": (
            f"WITH s AS ({bare_update}), a AS ({_FLOOR}SELECT 'UPDATE','Student',s.id,s.id,"
            f"{user} FROM s) SELECT {cols} FROM s"),
        _UPDATE + "wxdata, audited (as sent: the changed column's old value)": update,
        _UPDATE + "the same reading the whole old row (before)": _whole_old_row(update, columns),
        _UPDATE + "wxdata's record on a plain UPDATE, no old row (not a correct diff)": (
            f"WITH s AS ({bare_update}), {no_old}"),
    }


def run(args: argparse.Namespace) -> str:
    """Start, seed and capture; stop; count every variant; the Markdown report."""
    from wxdata.domains import students

    columns = students.ENTITY.column_names
    bindir = _bin_dir(args.pg_bin)
    with _cluster(bindir) as (data, folder):
        with _serving(bindir, data, folder) as server:
            database, owner, _, school, ids = _setup(server, args.students)
            with psycopg.connect(owner, autocommit=True) as conn:
                conn.execute(FLOOR_DDL)
                conn.execute("UPDATE students SET last_name = 'L' || md5(id::text),"
                             " first_name = 'F' || md5(student_number)")
                conn.execute("VACUUM FULL students")
                # every row moved twice (a new grade and back: new index entries too), then
                # vacuumed: the table's pages and the indexes' leaves have room, so no count is
                # the one that first extends the table or splits the leaves VACUUM FULL packed
                for _ in range(2):
                    conn.execute("UPDATE students SET grade = CASE grade WHEN '5' THEN '4'"
                                 " WHEN '4' THEN '5' ELSE grade END")
                conn.execute("VACUUM ANALYZE students")
                (version,) = conn.execute("SHOW server_version").fetchone() or ("?",)
            create, cparams, update, uparams = _captured(owner, school, ids)
            with psycopg.connect(owner, autocommit=True) as conn:
                def literal(value: Any) -> str:
                    return _literal(conn, value)
                create = _bind(create, cparams, {"student_number": "$1",
                                                 "id": "gen_random_uuid()"}, literal)
                update = _bind(update, uparams, {"_id": "$1", "grade": "$2"}, literal)
                user = literal("u-bench-nurse")
        variants = _variants(create, update, user, columns)
        keys = [str(i) for i in ids]

        def script(name: str, body: str, n: int, tag: int) -> str:
            if name.startswith(_CREATE):
                lines = ["SET plan_cache_mode = force_generic_plan",
                         f"PREPARE w(text) AS {body}"]
                lines += [f"EXECUTE w('BW-{tag}-{i}')" for i in range(n)]
            else:
                lines = ["SET plan_cache_mode = force_generic_plan",
                         f"PREPARE w(uuid, text) AS {body}"]
                # a grade no row holds yet (G<count>): every execution changes the row, so none
                # is a HOT update that leaves the indexes alone
                lines += [f"EXECUTE w('{keys[(tag * 7 + i) % len(keys)]}', 'G{tag}')"
                          for i in range(n)]
            return "\n".join(lines) + "\n"

        def vacuum() -> None:
            subprocess.run(_as_server_user([str(bindir / "postgres"), "--single", "-D", str(data),
                                            database]), input="VACUUM students\n",
                           capture_output=True, text=True, check=True)

        counts: dict[str, list[float]] = {name: [] for name in variants}
        tag = 0
        for _ in range(args.rounds):
            for name, body in variants.items():
                runs = []
                for n in (args.warm, args.warm + args.executions):
                    tag += 1
                    vacuum()
                    runs.append(_count(bindir, data, folder, database, script(name, body, n, tag)))
                counts[name].append((runs[1] - runs[0]) / args.executions)
    out = [f"PostgreSQL {version} (binaries {bindir}); {args.students} students; "
           f"{args.executions} executions per count after {args.warm}, {args.rounds} rounds; "
           "instructions per execution, median (min-max) over the rounds:", "",
           "| variant | server instructions per execution | ratio to the bare statement |",
           "|---|---|---|"]
    for prefix in (_CREATE, _UPDATE):
        group = {k: v for k, v in counts.items() if k.startswith(prefix)}
        out += table_rows(group, statistics.median(next(iter(group.values()))))
    return "\n".join(out) + "\n"


def main() -> int:
    """Command line entry point."""
    return command_line(__doc__ or "", "server instructions per audited write", run,
                        students=2000, executions=300)


if __name__ == "__main__":
    raise SystemExit(main())
