"""Server cost of the signed school scope, per statement, measured inside PostgreSQL.

Row-level security trusts only the context's signed scope token: every statement that reads or
writes a scoped table runs the verifier (``wxdata_scope_schools()``, an HMAC under a key the
application role cannot read) once, as an initplan of the policy. This measures that cost where
it is paid, inside the server, with no client and no network in the figure: each variant is a
plpgsql loop of ``--loops`` statements, timed with ``clock_timestamp()``, in two forms: each
statement in a transaction of its own (the token set transaction-locally, the statement, a
commit: every wxdata call outside a unit of work) and all inside one transaction holding the
context (a unit of work's later statements). Variants interleaved, ``--reps`` repetitions,
per-statement µs median (min-max), and the load average.

Variants: an empty statement and an empty assignment (the loop's own cost); a by-id read of a
student as the owner (no row security) and as the application role (row security, the token
verified); the installed verifier alone; its parts (a plpgsql call, SECURITY DEFINER, its fixed
``search_path``, reading the key, the hashes of the HMAC and its comparison, parsing the claims);
and rewrites of it, each timed only once it answers exactly as the installed verifier for a
valid, a wrongly signed, a stale and a missing token.

    python -m benchmarks.bench_scope_check --reps 7 --loops 20000
"""

from __future__ import annotations

import argparse
import os
import statistics
from typing import Any

import psycopg

from benchmarks._args import parse_with_database_url
from benchmarks.bench_scope import _drop, _setup

#: Helpers created in the benchmark's own database (never by a migration).
_HELPERS = r"""
CREATE FUNCTION bench_nop() RETURNS int LANGUAGE plpgsql STABLE
    AS $$ BEGIN RETURN 1; END $$;
CREATE FUNCTION bench_definer_nop() RETURNS int LANGUAGE plpgsql STABLE SECURITY DEFINER
    AS $$ BEGIN RETURN 1; END $$;
CREATE FUNCTION bench_definer_path_nop() RETURNS int LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, public AS $$ BEGIN RETURN 1; END $$;
CREATE FUNCTION bench_key() RETURNS bytea LANGUAGE plpgsql STABLE AS $$
DECLARE k record;
BEGIN
    SELECT s.ipad, s.opad, s.max_age_seconds, s.skew_seconds INTO k FROM public.wxdata_scope_key s;
    RETURN k.ipad;
END $$;
CREATE FUNCTION bench_hmac() RETURNS boolean LANGUAGE plpgsql STABLE AS $$
DECLARE
    token text := current_setting('app.scope_token', true);
    n integer := length(token);
    pad bytea := '\x3636363636363636363636363636363636363636363636363636363636363636'
                 '3636363636363636363636363636363636363636363636363636363636363636';
BEGIN
    RETURN sha256(convert_to(encode(sha256(pad || sha256(pad || convert_to(left(token, n - 65),
                                                                         'UTF8'))), 'hex'), 'UTF8'))
           IS DISTINCT FROM sha256(convert_to(right(token, 64), 'UTF8'));
END $$;
-- The claims' parsing as the installed verifier does it (split_part on the signed message).
CREATE FUNCTION bench_parse() RETURNS uuid[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    token text := current_setting('app.scope_token', true);
    message text := left(token, length(token) - 65);
    age numeric;
    schools uuid[];
BEGIN
    IF split_part(message, '|', 1) <> '1' OR split_part(message, '|', 2) !~ '^[0-9]{1,12}$'
       OR split_part(message, '|', 3) NOT IN ('0', '1') OR message NOT LIKE '%|%|%|%' THEN
        RETURN '{}';
    END IF;
    age := extract(epoch FROM now()) - split_part(message, '|', 2)::numeric;
    IF age > 330 OR age < -30 THEN
        RETURN '{}';
    END IF;
    schools := coalesce(string_to_array(nullif(split_part(message, '|', 4), ''), ',')::uuid[],
                        '{}'::uuid[]);
    IF split_part(message, '|', 3) = '1' THEN
        RETURN NULL;
    END IF;
    RETURN array_remove(array_remove(schools, NULL), '00000000-0000-0000-0000-000000000000'::uuid);
END $$;
-- A rewrite: one function, the claims read from the token with split_part, the age in integers.
CREATE FUNCTION bench_scope_schools_lean() RETURNS uuid[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    token text := current_setting('app.scope_token', true);
    n integer := coalesce(length(token), 0);
    k record;
    issued text;
    age bigint;
BEGIN
    IF n < 80 OR n > 200000 OR substr(token, n - 64, 1) <> '|' THEN
        RETURN '{}';
    END IF;
    SELECT s.ipad, s.opad, s.max_age_seconds, s.skew_seconds INTO k FROM public.wxdata_scope_key s;
    IF NOT FOUND OR sha256(convert_to(encode(sha256(k.opad || sha256(k.ipad
                                      || convert_to(left(token, n - 65), 'UTF8'))), 'hex'), 'UTF8'))
                    IS DISTINCT FROM sha256(convert_to(right(token, 64), 'UTF8'))
       OR split_part(token, '|', 1) <> '1' THEN
        RETURN '{}';
    END IF;
    issued := split_part(token, '|', 2);
    IF issued !~ '^[0-9]{1,12}$' THEN
        RETURN '{}';
    END IF;
    age := extract(epoch FROM now())::bigint - issued::bigint;
    IF age > k.max_age_seconds + k.skew_seconds OR age < -k.skew_seconds THEN
        RETURN '{}';
    END IF;
    CASE split_part(token, '|', 3)
        WHEN '1' THEN
            RETURN NULL;
        WHEN '0' THEN
            RETURN array_remove(array_remove(coalesce(
                string_to_array(nullif(split_part(token, '|', 4), ''), ',')::uuid[],
                '{}'::uuid[]), NULL), '00000000-0000-0000-0000-000000000000'::uuid);
        ELSE
            RETURN '{}';
    END CASE;
END $$;
-- A rewrite: the whole check as one query (one executor start-up per transaction
-- instead of one initialisation per plpgsql expression); CASE keeps each step behind the last.
CREATE FUNCTION bench_scope_schools_query() RETURNS uuid[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    schools uuid[];
BEGIN
    SELECT CASE
        WHEN NOT (t.n BETWEEN 80 AND 200000) OR substr(t.token, t.n - 64, 1) <> '|'
             OR sha256(convert_to(encode(sha256(s.opad || sha256(s.ipad
                 || convert_to(left(t.token, t.n - 65), 'UTF8'))), 'hex'), 'UTF8'))
                IS DISTINCT FROM sha256(convert_to(right(t.token, 64), 'UTF8'))
             OR split_part(t.token, '|', 1) <> '1'
             OR split_part(t.token, '|', 2) !~ '^[0-9]{1,12}$' THEN '{}'::uuid[]
        WHEN extract(epoch FROM now())::bigint - split_part(t.token, '|', 2)::bigint
             NOT BETWEEN -s.skew_seconds AND s.max_age_seconds + s.skew_seconds THEN '{}'::uuid[]
        WHEN split_part(t.token, '|', 3) = '1' THEN NULL
        WHEN split_part(t.token, '|', 3) = '0' THEN array_remove(array_remove(coalesce(
            string_to_array(nullif(split_part(t.token, '|', 4), ''), ',')::uuid[], '{}'::uuid[]),
            NULL), '00000000-0000-0000-0000-000000000000'::uuid)
        ELSE '{}'::uuid[] END
      INTO schools
      FROM (SELECT tok AS token, coalesce(length(tok), 0) AS n
              FROM current_setting('app.scope_token', true) AS tok) t
      LEFT JOIN public.wxdata_scope_key s ON true;
    RETURN CASE WHEN FOUND THEN schools ELSE '{}'::uuid[] END;
END $$;
-- A rewrite: as few plpgsql expressions as the check allows (plpgsql sets each up
-- again in every transaction): the key read, then one CASE whose branches run in order.
CREATE FUNCTION bench_scope_schools_two() RETURNS uuid[]
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    k record;
BEGIN
    SELECT s.ipad, s.opad, s.max_age_seconds, s.skew_seconds, t.token, length(t.token) AS n
      INTO k
      FROM (SELECT current_setting('app.scope_token', true) AS token) t
      LEFT JOIN public.wxdata_scope_key s ON true;
    RETURN CASE
        WHEN k.ipad IS NULL OR k.n IS NULL OR k.n < 80 OR k.n > 200000
             OR substr(k.token, k.n - 64, 1) <> '|' THEN '{}'::uuid[]
        WHEN sha256(convert_to(encode(sha256(k.opad || sha256(k.ipad
                 || convert_to(left(k.token, k.n - 65), 'UTF8'))), 'hex'), 'UTF8'))
             IS DISTINCT FROM sha256(convert_to(right(k.token, 64), 'UTF8')) THEN '{}'::uuid[]
        WHEN split_part(k.token, '|', 1) <> '1'
             OR split_part(k.token, '|', 2) !~ '^[0-9]{1,12}$' THEN '{}'::uuid[]
        WHEN extract(epoch FROM now())::bigint - split_part(k.token, '|', 2)::bigint
             NOT BETWEEN -k.skew_seconds AND k.max_age_seconds + k.skew_seconds THEN '{}'::uuid[]
        WHEN split_part(k.token, '|', 3) = '1' THEN NULL
        WHEN split_part(k.token, '|', 3) = '0' THEN array_remove(array_remove(coalesce(
            string_to_array(nullif(split_part(k.token, '|', 4), ''), ',')::uuid[], '{}'::uuid[]),
            NULL), '00000000-0000-0000-0000-000000000000'::uuid)
        ELSE '{}'::uuid[] END;
END $$;
GRANT EXECUTE ON FUNCTION bench_nop(), bench_definer_nop(), bench_definer_path_nop(),
    bench_scope_schools_lean(), bench_scope_schools_query(), bench_scope_schools_two()
    TO wxdata_app;
"""

#: (label, who runs it: "owner" or "app", the loop's statement; ``sid`` is a student's id).
VARIANTS: list[tuple[str, str, str]] = [
    ("empty statement (PERFORM 1: the loop's own cost)", "app", "PERFORM 1"),
    ("empty assignment (n := 1: the loop's own cost)", "app", "n := 1"),
    ("by-id read, owner (no row security)", "owner", "PERFORM * FROM students WHERE id = sid"),
    ("by-id read, application role (scope verified)", "app",
     "PERFORM * FROM students WHERE id = sid"),
    ("health record by id, owner (no row security)", "owner",
     "PERFORM * FROM health_records WHERE id = hid"),
    ("health record by id, application role (scoped through its student)", "app",
     "PERFORM * FROM health_records WHERE id = hid"),
    ("verifier: wxdata_scope_schools()", "app", "x := wxdata_scope_schools()"),
    ("  part: a plpgsql call", "app", "n := bench_nop()"),
    ("  part: ... SECURITY DEFINER", "app", "n := bench_definer_nop()"),
    ("  part: ... with its fixed search_path", "app", "n := bench_definer_path_nop()"),
    ("  part: reading the key (plpgsql call included)", "owner", "b := bench_key()"),
    ("  part: HMAC and digest comparison (call included)", "owner", "f := bench_hmac()"),
    ("  part: parsing the claims (call included)", "owner", "x := bench_parse()"),
    ("rewrite: claims from the token, integer age", "app", "x := bench_scope_schools_lean()"),
    ("rewrite: the whole check as one query", "app", "x := bench_scope_schools_query()"),
    ("rewrite: the key read, then one expression", "app", "x := bench_scope_schools_two()"),
]

#: Each statement in a transaction of its own, as every wxdata call outside a unit of work: the
#: loop sets the token (transaction-local, as wxdata's context statement does) and commits.
_OWN_TRANSACTION = """
DO $$
DECLARE
    t0 timestamptz;
    sid uuid := current_setting('bench.sid')::uuid;
    hid uuid := current_setting('bench.hid')::uuid;
    token text := current_setting('bench.token');
    x uuid[]; n int; b bytea; f boolean;
BEGIN
    t0 := clock_timestamp();
    FOR i IN 1..{loops} LOOP
        PERFORM set_config('app.scope_token', token, true);
        {body};
        COMMIT;
    END LOOP;
    PERFORM set_config('bench.us',
                       (extract(epoch FROM clock_timestamp() - t0) * 1e6 / {loops})::text, false);
END $$"""

#: Every statement inside one transaction holding the context (a unit of work's statements).
_ONE_TRANSACTION = """
DO $$
DECLARE
    t0 timestamptz;
    sid uuid := current_setting('bench.sid')::uuid;
    hid uuid := current_setting('bench.hid')::uuid;
    x uuid[]; n int; b bytea; f boolean;
BEGIN
    t0 := clock_timestamp();
    FOR i IN 1..{loops} LOOP {body}; END LOOP;
    PERFORM set_config('bench.us',
                       (extract(epoch FROM clock_timestamp() - t0) * 1e6 / {loops})::text, false);
END $$"""


def _per_statement(conn: psycopg.Connection[Any], context: tuple[str, tuple[str, ...]], sid: Any,
                   body: str, loops: int, own_transaction: bool) -> float:
    conn.execute("SELECT set_config('bench.sid', %s, false), set_config('bench.token', %s, false)",
                 (str(sid), context[1][-1]))
    if own_transaction:
        conn.execute(_OWN_TRANSACTION.format(loops=int(loops), body=body))
    else:
        with conn.transaction():
            conn.execute(context[0], context[1])
            conn.execute(_ONE_TRANSACTION.format(loops=int(loops), body=body))
    row = conn.execute("SELECT current_setting('bench.us')").fetchone()
    return float(row[0]) if row else float("nan")


def _same_answers(app: psycopg.Connection[Any], good: tuple[str, tuple[str, ...]]) -> None:
    """The rewrites answer as the installed verifier for a valid, a wrongly signed, a stale and
    a missing token (raises otherwise: a rewrite that answers differently is not measured)."""
    valid = good[1][-1]  # the token is the context statement's last value
    message, _, mac = valid.rpartition("|")
    parts = message.split("|")
    stale = "|".join([parts[0], str(int(parts[1]) - 100000), *parts[2:]]) + "|" + mac
    forged = message + "|" + ("0" if mac[0] != "0" else "1") + mac[1:]
    for token in (valid, forged, stale, ""):
        values = list(good[1])
        values[-1] = token
        with app.transaction():
            app.execute(good[0], values)
            got = app.execute("SELECT wxdata_scope_schools(), bench_scope_schools_lean(),"
                              " bench_scope_schools_query(), bench_scope_schools_two()").fetchone()
        if got is None or len(set(map(repr, got))) != 1:
            raise RuntimeError("a rewrite of the verifier answers differently from the installed one")


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print the table."""
    from wxdata import ExecutionContext, Purpose, Role
    from wxdata.tx.scope import context_statement
    from wxdata.tx.token import scope_key

    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--loops", type=int, default=20000)
    args = parse_with_database_url(p, argv)
    name, owner_url, app_url, school, ids = _setup(args.database_url, 2000)
    ctx = ExecutionContext(user_id="u-bench-nurse", role=Role.NURSE, purpose=Purpose.TREATMENT,
                           school_ids={school}, request_id="req-bench-scope-check")
    load = [os.getloadavg()[0]]
    own: dict[str, list[float]] = {label: [] for label, _, _ in VARIANTS}
    one: dict[str, list[float]] = {label: [] for label, _, _ in VARIANTS}
    try:
        with psycopg.connect(owner_url, autocommit=True) as owner, \
                psycopg.connect(app_url, autocommit=True) as app:
            owner.execute(_HELPERS)
            record = owner.execute(
                "INSERT INTO health_records (student_id, record_type, title, description,"
                " record_date) VALUES (%s, 'CHECKUP', 'Annual', 'Routine visit', current_date)"
                " RETURNING id", (ids[0],)).fetchone()
            assert record is not None
            for c in (owner, app):
                c.execute("SELECT set_config('bench.hid', %s, false)", (str(record[0]),))
            context = context_statement(ctx, scope_key())
            _same_answers(app, context)
            conns = {"owner": owner, "app": app}
            for _, who, body in VARIANTS:  # warm-up: plans and caches
                for alone in (True, False):
                    _per_statement(conns[who], context, ids[0], body, 200, alone)
            for rep in range(args.reps):
                for label, who, body in VARIANTS:
                    sid = ids[rep % len(ids)]
                    own[label].append(_per_statement(conns[who], context, sid, body, args.loops,
                                                     True))
                    one[label].append(_per_statement(conns[who], context, sid, body, args.loops,
                                                     False))
            version = owner.execute("SHOW server_version").fetchone()
    finally:
        _drop(args.database_url, name, app_url)
    load.append(os.getloadavg()[0])
    print(f"PostgreSQL {version[0] if version else '?'}; {args.reps} interleaved reps x "
          f"{args.loops} statements per variant and form; load average "
          f"{load[0]:.2f} -> {load[1]:.2f}")
    print("  per statement, server µs, median (min-max): each in its own transaction (token set,")
    print("  statement, commit) | all inside one transaction")
    for label, _, _ in VARIANTS:
        a, b = own[label], one[label]
        print(f"  {label:52} {statistics.median(a):6.2f} ({min(a):.2f}-{max(a):.2f}) | "
              f"{statistics.median(b):6.2f} ({min(b):.2f}-{max(b):.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

