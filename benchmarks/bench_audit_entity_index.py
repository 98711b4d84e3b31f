"""How a record is found by the row it is about: a B-tree on ``entity_id`` against a GIN index on
``entity_ids``, on an audit log larger than shared memory.

Every audited read and write inserts one record, and a record's ``entity_id`` is a random UUID: a
B-tree on it takes each insertion on a random leaf page, which once the log outgrows shared memory
is a page read and a page dirtied per record. A GIN index (fast update on) appends to its pending
list and merges in bulk. This run seeds a database, fills ``audit_log`` with ``--log-records``
records naming random rows in each of two databases seeded alike, one with each index set, and
measures both interleaved (no index rebuilt between repetitions):

- **before**: ``audit_log_entity_idx`` (entity_type, entity_id, created_at), the row's history
  asked as ``entity_id = $1 OR entity_ids @> ARRAY[$1]`` (one arm without an index);
- **now** (migration 0215): ``audit_log_entities_gin`` on entity_ids plus the partial
  ``audit_log_entity_unlisted_idx``, the history asked in the form both serve
  (``wxdata.audit.reports.names_row``).

Both databases are migrated up to 0219, which merged the GIN index on entity_ids with the one on
subject_ids (``benchmarks.bench_audit_index_set`` compares those two).

It reports the PHI read with its riding record (wxdata's captured statement, random records,
``synchronous_commit=off``: the CPU and buffer work, not the commit's wait) and the row-history
query, each as the median over interleaved repetitions with min-max and the load average.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        python -m benchmarks.bench_audit_entity_index --log-records 2000000 --reps 5 --config B
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from typing import Any

import psycopg

from benchmarks.bench_audit_floor import _interleaved, _load, _slot, _table
from benchmarks.common import (
    Env,
    Options,
    add_config_argument,
    capture,
    print_in_configuration,
    statement,
)
from benchmarks.seed import bench_database

BEFORE = "entity B-tree (before)"
NOW = "entity_ids GIN + unlisted partial (now)"

_INDEXES = {
    BEFORE: ("CREATE INDEX audit_log_entity_idx ON audit_log (entity_type, entity_id, created_at)",),
    NOW: ("CREATE INDEX audit_log_entities_gin ON audit_log USING gin (entity_ids)",
          "CREATE INDEX audit_log_entity_unlisted_idx ON audit_log (entity_id) "
          "WHERE entity_id IS NOT NULL AND NOT (entity_ids @> ARRAY[entity_id])"),
}
_DROP = {
    BEFORE: ("DROP INDEX IF EXISTS audit_log_entity_idx",),
    NOW: ("DROP INDEX IF EXISTS audit_log_entities_gin",
          "DROP INDEX IF EXISTS audit_log_entity_unlisted_idx"),
}
_HISTORY = {
    BEFORE: ("SELECT a.seq FROM audit_log a WHERE a.entity_type = 'HealthRecord' "
             "AND (a.entity_id = %(id)s OR a.entity_ids @> ARRAY[%(id)s]::uuid[]) ORDER BY a.seq"),
    NOW: None,  # filled from wxdata's own condition in run()
}
#: Records naming random rows of one entity type, with the columns a read record fills.
_FILL = (
    "INSERT INTO audit_log (action, entity_type, entity_id, entity_ids, subject_student_id, "
    "subject_ids, user_id, user_role, is_phi, compliance_type, severity, fields_disclosed, tags) "
    "SELECT 'READ', 'HealthRecord', e, ARRAY[e], s, ARRAY[s], 'u-' || (g %% 200), 'NURSE', true, "
    "'HIPAA', 'MEDIUM', '{*}', '{healthrecord,read}' FROM (SELECT gen_random_uuid() AS e, "
    "gen_random_uuid() AS s, g FROM generate_series(1, %(n)s) g) x"
)


def riding_reads(conn: psycopg.Connection[Any], sql: str, params: dict[str, Any], key: str,
                 pool: list[Any]) -> Callable[[int], Any]:
    """The captured riding read on ``conn`` (commits not waited for) as an op: input ``i`` reads
    the record ``pool[i % len(pool)]``."""
    conn.execute("SET synchronous_commit = off")
    cur = conn.cursor()

    def op(i: int) -> Any:
        cur.execute(sql, {**params, key: pool[i % len(pool)]}, prepare=True)
        return cur.fetchone()
    return op


def _fill(admin: psycopg.Connection[Any], records: int) -> str:
    """Fill the log with ``records`` records naming random rows; a line describing it."""
    t0 = time.perf_counter()
    for start in range(0, records, 500_000):
        admin.execute(_FILL, {"n": min(500_000, records - start)})
    admin.execute("VACUUM ANALYZE audit_log")
    size = admin.execute(
        "SELECT pg_size_pretty(sum(pg_total_relation_size(inhrelid))), "
        "(SELECT count(*) FROM audit_log), current_setting('shared_buffers') "
        "FROM pg_inherits WHERE inhparent = 'audit_log'::regclass").fetchone()
    return (f"audit_log: {size[1] if size else '?'} records, {size[0] if size else '?'} with its "
            f"indexes (filled in {time.perf_counter() - t0:.0f} s); "
            f"shared_buffers {size[2] if size else '?'}")


def run(args: argparse.Namespace) -> str:
    """Two databases seeded and filled alike, one with each index set; measure both interleaved
    (no index is rebuilt between repetitions: each is measured as it stands after use)."""
    from wxdata.audit.reports import names_row
    from wxdata.domains import health_records

    server = args.database_url or os.environ["DATABASE_URL"]
    options = Options(database_url=server, reps=args.reps)
    out: list[str] = []
    history = dict(_HISTORY)
    history[NOW] = ("SELECT a.seq FROM audit_log a WHERE a.entity_type = 'HealthRecord' "
                    "AND " + names_row("id") + " ORDER BY a.seq")
    # both schemas as they were before migration 0219 merged the entity_ids GIN index into one
    # over both arrays (compared with this one by bench_audit_index_set)
    with bench_database(server, options, args.students, 3, log=lambda _: None,
                        migrations_before="0219") as (url_b, data), \
            bench_database(server, options, args.students, 3, log=lambda _: None,
                           migrations_before="0219") as (url_n, _):
        env = Env("A", url_b, options, data)
        conns: list[psycopg.Connection[Any]] = []
        try:
            sample = data.record_ids[0]
            sql, params = statement(capture(
                env, lambda c: health_records.find_by_id(c, env.ctx, sample)), "INSERT INTO audit_log")
            key = _slot(params, sample)

            def connect(url: str) -> psycopg.Connection[Any]:
                c = psycopg.connect(url, autocommit=True)
                conns.append(c)
                return c

            admins = {BEFORE: connect(url_b), NOW: connect(url_n)}
            for ddl in (*_DROP[NOW], *_INDEXES[BEFORE]):  # the migrated schema has the new set
                admins[BEFORE].execute(ddl)
            for name, admin in admins.items():
                out += [f"{name}: {_fill(admin, args.log_records)}", ""]
            # the seeds are alike but their ids differ: each database reads its own records
            ids = {name: [r[0] for r in admin.execute(
                "SELECT id FROM health_records ORDER BY id").fetchall()]
                for name, admin in admins.items()}
            named = {name: [r[0] for r in admin.execute(
                "SELECT entity_id FROM audit_log WHERE entity_id IS NOT NULL "
                "ORDER BY random() LIMIT %s", (args.history_rows,)).fetchall()]
                for name, admin in admins.items()}

            def riding(name: str) -> Any:
                return riding_reads(connect(url_b if name == BEFORE else url_n), sql, params,
                                    key, ids[name])

            rng = random.Random(args.seed)
            inputs = [rng.randrange(1 << 30) for _ in range(args.ops)]
            samples = _interleaved({BEFORE: riding(BEFORE), NOW: riding(NOW)}, inputs, args.reps)
            out += _table(f"PHI read + its riding record, {args.ops} random records per repetition "
                          "(synchronous_commit=off)", samples, BEFORE)

            def history_op(name: str) -> Any:
                cur, pool = connect(url_b if name == BEFORE else url_n).cursor(), named[name]
                text = history[name]

                def op(i: int) -> Any:
                    # prepare=False: planned per call, as a row's history is asked (rarely, by hand)
                    cur.execute(text, {"id": pool[i % len(pool)]}, prepare=False)
                    return cur.fetchall()
                if not pool or min(len(op(i)) for i in range(len(pool))) < 1:
                    raise RuntimeError(f"{name}: a sampled row's records were not found")
                return op

            samples = _interleaved({BEFORE: history_op(BEFORE), NOW: history_op(NOW)},
                                   list(range(args.history_rows)), args.reps)
            out += _table(f"A row's history ({args.history_rows} rows per repetition): its "
                          "records by index, or a pass over the log", samples, BEFORE)
        finally:
            for c in conns:
                c.close()
            env.close()
    return "\n".join(out) + "\n"


def main() -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--database-url", default=None)
    p.add_argument("--students", type=int, default=5000)
    p.add_argument("--log-records", type=int, default=2_000_000)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--ops", type=int, default=3000)
    p.add_argument("--history-rows", type=int, default=5)
    p.add_argument("--seed", type=int, default=20241205)
    add_config_argument(p)
    args = p.parse_args()
    print(f"# audit entity index: students {args.students}, log records {args.log_records}, "
          f"reps {args.reps}, ops {args.ops}, load average at start {_load()}\n")
    return print_in_configuration(args.config, args.database_url, lambda: run(args))


if __name__ == "__main__":
    raise SystemExit(main())
