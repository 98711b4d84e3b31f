"""Server instructions per write: a column's rule held by a table CHECK, by a domain, by nothing.

PostgreSQL sets a table's CHECK constraints up again on every execution of an INSERT or UPDATE,
prepared or not (each expression read back from its stored form and planned), and an UPDATE
checks all of them whatever columns it sets. A domain's check is planned once per backend and
runs only where a value of the domain is assigned. This counts what each costs on wxdata's own
tables, with the method of :mod:`benchmarks.bench_server_instructions`: a private PostgreSQL
cluster (``initdb`` from ``--pg-bin``) is started, migrated and seeded (``wxdata seed``); for each
entity of ``--entities`` three copies of its table are made, with its columns, defaults and
primary key and no other index, trigger, foreign key or rule over several columns (what they
cost is the same in all three):

- **domains**: the columns as migrated, each single-column rule (a closed vocabulary, a range, a
  length) its column's domain (``sql/0221``);
- **table CHECKs**: the same columns of their base types, each rule the table CHECK it was before
  0221 (rebuilt from its domain's own constraint);
- **unchecked**: the base types, no rule at all (the floor).

The cluster is stopped; in its single-user backend (``postgres --single``) under ``valgrind
--tool=callgrind``, an INSERT of one seeded row's values (every column but the key, each a
parameter: a generic plan) and an UPDATE by key of one column without a rule of its own are each
prepared and executed ``--warm`` times and, in a second run, ``--warm + --executions`` times; the
difference of the two counts divided by ``--executions`` is what one execution costs. Counts, not
timings: the same on a loaded machine.

    python -m benchmarks.bench_check_instructions --executions 300 --rounds 2

Needs valgrind and the PostgreSQL server binaries (``--pg-bin``, default the newest under
``/usr/lib/postgresql``); run as root, the cluster runs as the ``postgres`` operating-system user.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from typing import Any

import psycopg
from psycopg import sql

from benchmarks.bench_server_instructions import (
    _bin_dir,
    _cluster,
    _count,
    _serving,
    table_rows,
)

#: Entities counted by default: the students (one rule, a vocabulary), the tables with the most
#: vocabularies, and the vital signs (three vocabularies and ten ranges).
ENTITIES = ("students", "incident_reports", "vaccinations", "vital_signs")

#: The copies of a table, by variant name: the prefix of the copy's name.
VARIANTS = {"domains": "bench_dom_", "table CHECKs": "bench_chk_", "unchecked": "bench_none_"}

_DOMAINS = """
SELECT a.attname, t.typname, format_type(t.typbasetype, t.typtypmod), c.conname,
       pg_get_constraintdef(c.oid)
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid AND t.typtype = 'd'
  JOIN pg_constraint c ON c.contypid = t.oid AND c.contype = 'c'
 WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
"""


def _copies(conn: psycopg.Connection[Any], table: str) -> tuple[list[str], str]:
    """Make the three copies of ``table``; (its columns but the key, a column without a domain
    that an UPDATE can set to itself)."""
    domains = conn.execute(_DOMAINS, (table,)).fetchall()
    if not domains:
        raise SystemExit(f"{table}: no column is of a domain (is 0221 applied?)")
    for prefix in VARIANTS.values():  # the key indexed, so that an UPDATE finds its row by it
        conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS, PRIMARY KEY (id))")
                     .format(sql.Identifier(prefix + table), sql.Identifier(table)))
    for column, _, base, _, definition in domains:
        for prefix in ("bench_chk_", "bench_none_"):
            conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {}").format(
                sql.Identifier(prefix + table), sql.Identifier(column), sql.SQL(base)))
        check = _as_table_check(definition, sql.Identifier(column).as_string(conn))
        conn.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
            sql.Identifier("bench_chk_" + table), sql.Identifier(f"{table}_{column}_check"),
            sql.SQL(check)))  # the domain's own CHECK text, VALUE named as the column
    names = [r[0] for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND NOT attisdropped ORDER BY attnum", (table,))]
    ruled = {r[0] for r in domains}
    settable = [n for n in names if n not in ruled and n not in ("id", "version")]
    return [n for n in names if n != "id"], settable[-1]


def _as_table_check(definition: str, column: str) -> str:
    """A domain's CHECK as its column's table CHECK: ``VALUE`` named as the column, outside the
    quoted values."""
    parts = re.split(r"('(?:[^']|'')*')", definition)
    return "".join(p if i % 2 else re.sub(r"\bVALUE\b", column, p) for i, p in enumerate(parts))


def _row(conn: psycopg.Connection[Any], table: str, columns: list[str]) -> list[str]:
    """One seeded row's values of ``columns``, each as a quoted text literal (or NULL)."""
    picked = sql.SQL(", ").join(
        sql.SQL("quote_nullable({}::text)").format(sql.Identifier(c)) for c in columns)
    row = conn.execute(sql.SQL("SELECT {} FROM {} ORDER BY id LIMIT 1").format(
        picked, sql.Identifier(table))).fetchone()
    if row is None:
        raise SystemExit(f"{table}: the seed left it empty")
    return list(row)


def _scripts(conn: psycopg.Connection[Any], table: str, columns: list[str], settable: str
             ) -> dict[str, dict[str, str]]:
    """The INSERT and UPDATE bodies of each variant, by statement then variant (identifiers
    quoted by psycopg; every value a numbered parameter)."""
    out: dict[str, dict[str, str]] = {"INSERT": {}, "UPDATE": {}}
    listed = sql.SQL(", ").join(map(sql.Identifier, columns))
    slots = sql.SQL(", ").join(sql.SQL(f"${i}") for i in range(1, len(columns) + 1))
    column = sql.Identifier(settable)
    for name, prefix in VARIANTS.items():
        copy = sql.Identifier(prefix + table)
        out["INSERT"][name] = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            copy, listed, slots).as_string(conn)
        out["UPDATE"][name] = sql.SQL("UPDATE {} SET {} = {} WHERE id = $1").format(
            copy, column, column).as_string(conn)
    return out


def run(args: argparse.Namespace) -> str:
    """Start, migrate, seed and copy; stop; count every variant; the Markdown report."""
    bindir = _bin_dir(args.pg_bin)
    database = "postgres"
    plans: dict[str, tuple[dict[str, dict[str, str]], list[str], str]] = {}
    with _cluster(bindir) as (data, folder):
        with _serving(bindir, data, folder) as server:
            env = {**os.environ, "DATABASE_URL": server, "WXDATA_ALLOW_PRIVILEGED_CONNECTION": "true"}
            for step in (["migrate"], ["seed", "--students", str(args.students)]):
                subprocess.run([sys.executable, "-m", "wxdata.cli", *step], env=env, check=True,
                               capture_output=True)
            with psycopg.connect(server, autocommit=True) as conn:
                (version,) = conn.execute("SHOW server_version").fetchone() or ("?",)
                for table in args.entities:
                    columns, settable = _copies(conn, table)
                    values = _row(conn, table, columns)
                    for prefix in VARIANTS.values():  # one row for the UPDATE to find
                        conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {} ORDER BY id LIMIT 1")
                                     .format(sql.Identifier(prefix + table), sql.Identifier(table)))
                    (key,) = conn.execute(sql.SQL("SELECT quote_literal(id) FROM {} LIMIT 1")
                                          .format(sql.Identifier("bench_dom_" + table))
                                          ).fetchone() or ("NULL",)
                    plans[table] = (_scripts(conn, table, columns, settable), values, key)
                conn.execute("VACUUM ANALYZE")

        def script(statement: str, body: str, values: list[str], key: str, n: int) -> str:
            lines = ["SET plan_cache_mode = force_generic_plan", f"PREPARE w AS {body}"]
            args_ = ", ".join(values) if statement == "INSERT" else key
            lines += [f"EXECUTE w({args_})"] * n
            return "\n".join(lines) + "\n"

        out = [f"PostgreSQL {version} (binaries {bindir}); `wxdata seed --students "
               f"{args.students}`; {args.executions} executions per count after {args.warm}, "
               f"{args.rounds} rounds; server instructions per execution, median (min-max) over "
               "the rounds, and the ratio to the unchecked copy's:", ""]
        for table, (bodies, values, key) in plans.items():
            for statement, variants in bodies.items():
                counts: dict[str, list[float]] = {name: [] for name in variants}
                for _ in range(args.rounds):
                    for name, body in variants.items():
                        warm, full = (_count(bindir, data, folder, database,
                                             script(statement, body, values, key, n))
                                      for n in (args.warm, args.warm + args.executions))
                        counts[name].append((full - warm) / args.executions)
                out += [f"**{table}**, {statement}:", "",
                        "| rules as | instructions per execution | ratio to unchecked |",
                        "|---|---|---|"]
                out += table_rows(counts, statistics.median(counts["unchecked"]))
                out.append("")
    return "\n".join(out)


def main() -> int:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--pg-bin", default=None, help="PostgreSQL server binaries (initdb, postgres)")
    p.add_argument("--students", type=int, default=20)
    p.add_argument("--entities", nargs="+", default=list(ENTITIES))
    p.add_argument("--warm", type=int, default=50)
    p.add_argument("--executions", type=int, default=300)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    print("# server instructions per write: a column's rule as a table CHECK, a domain, "
          "nothing\n")
    print(run(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
