"""Client CPU of the shells: what a call costs on the client beyond raw psycopg.

Self-contained (the database set-up of :mod:`benchmarks.bench_scope`), runnable against any wxdata
on ``PYTHONPATH`` (the async variants only where ``wxdata.aio`` exists). Every variant runs
``--ops`` calls per repetition, interleaved, ``--reps`` repetitions; per call it records the
client process's CPU time (``time.process_time``: the server's work is not in it) and wall time.
Printed: per-call client CPU µs, median (min-max) over the repetitions, the median excess over raw
psycopg's client CPU in the same repetition, and the 1-minute load average at start and end.
Two diagnostics split the owner's by-id read: raw psycopg building the typed row wxdata returns,
and the read's own statement driven through wxdata's driver as a plan with no checks at all.
Beside the data calls, an explicit disclosure record (``wxdata.audit.log_read`` of one student, as
the owner, autocommit) against raw psycopg sending the same INSERT with its parameters ready, and a
hand-written statement whose value is computed in SQL (a count: no record owed) through
``crud.fetch`` against raw psycopg: what describing a hand-written result's columns costs.
A hit of the owner's by-id read cached in process memory, which writes the disclosure record it
owes in an INSERT of its own, against raw psycopg sending that INSERT (built beforehand).
The async shell against raw psycopg's own async shell (an ``AsyncConnection`` awaiting the same
prepared fetch), as the owner, audited and not: what ``wxdata.aio`` adds over awaiting psycopg.
An audited update of seven columns, whose statement is past the length psycopg caches its parse
of (wxdata sends it numbered), against raw psycopg sending the same statement as written. The
owner's audited by-id read and the audited page of twenty with its total, each against raw psycopg
sending the statement wxdata sends (captured once, the record riding in it): what wxdata's client
adds to the same statement (the page's also as the owner). Likewise the owner's create with the
audit off against raw psycopg sending the INSERT wxdata sends, its values bound the same way.
With ``--redis-url`` (default ``REDIS_URL``) also the owner's audited by-id read cached on Redis,
which a cache does not serve from there (a hit would cost more than the read): its distance to
the uncached read is what the cache's decision costs. The owner's audited update once more with a
cache subscribed to committed writes (in process memory; with ``--redis-url`` also on Redis):
each update then invalidates its row's tags after the commit, and the wall time shows what that
adds (the other variants run with no cache listening).

    python -m benchmarks.bench_core --reps 7 --ops 2000

``--only LABEL`` (repeatable) times only those variants, beside raw psycopg's by-id read.

Exact client instructions per call, independent of the machine's load: ``--instructions LABEL``
runs only that variant's ``--ops`` calls (after the warm-up) inside one ``functools.reduce``, so
callgrind collects exactly them; divide the collected count by ``--ops``::

    valgrind --tool=callgrind --collect-atstart=no --toggle-collect=functools_reduce \
        python -m benchmarks.bench_core --instructions "sync find_by_id, audit off" --ops 300

``--instructions`` may be repeated and ``--ops-again N`` adds a second reduce of N calls per
variant: :mod:`benchmarks.client_instructions` counts every pair in one process that way. Each
reduce starts after a collection, the set-up's objects frozen out of the collector's reach, so
it counts the collections its own calls trigger and no other.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import os
import random
import statistics
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import attrs
import psycopg

from benchmarks._args import parse_with_database_url
from benchmarks.bench_scope import _drop, _setup

Batch = Callable[[list[uuid.UUID]], None]


def _bare_plan(entity: Any) -> Callable[[Any, uuid.UUID], Any]:
    """A diagnostic, not wxdata's code path: ``find_by_id``'s statement and row builder driven
    through wxdata's sync driver as a plan with no input, context, role, pooler or scope check,
    returning a ``Success`` of the typed row. Its distance to ``find_by_id`` is what those checks
    and the public wrappers cost; its distance to raw psycopg building the typed row is what the
    plan, its driver and its Result cost."""
    from returns.result import Success

    from wxdata.core.drive import run
    from wxdata.core.effects import Execute
    from wxdata.core.reads import _by_id

    sql, _, build = _by_id(entity, False)

    def plan(sid: uuid.UUID) -> Any:
        rows = yield Execute(sql, {"_id": sid}, True)
        return Success(build(rows)[0])

    return lambda conn, sid: run(conn, plan(sid))


def _postmaster(backend_pid: int) -> int | None:
    """The pid of the postmaster whose child ``backend_pid`` (``pg_backend_pid()``, not the key
    a pooler hands out) is, when both are PostgreSQL's processes on this machine, else None."""
    try:
        stat = Path(f"/proc/{backend_pid}/stat").read_text()
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        names = {Path(f"/proc/{pid}/comm").read_text().strip() for pid in (backend_pid, parent)}
    except (OSError, ValueError, IndexError):
        return None
    return parent if names == {"postgres"} else None


def server_processes(postmaster: int) -> list[int]:
    """The postmaster and its children now (backends, WAL writer, checkpointer...)."""
    found = [postmaster]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        if parent == postmaster:
            found.append(int(entry.name))
    return found


def _server_cpu_ns(postmaster: int) -> int:
    """Nanoseconds every process of the server (:func:`server_processes`) has spent on a CPU so
    far (``/proc/<pid>/schedstat``). A process that exits between two readings takes its time
    with it."""
    total = 0
    for pid in server_processes(postmaster):
        try:
            total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total


def _cached_reader(backend: str, **options: Any) -> tuple[Callable[..., Any], Any]:
    """``students.find_by_id`` cached on ``backend`` (``options``: more of its settings), on a
    namespace of this run, and the cache (closed by the caller)."""
    from wxdata.cache import cached
    from wxdata.cache.factory import build_cache
    from wxdata.config import settings
    from wxdata.domains import students

    cache = build_cache(attrs.evolve(settings(), cache_enabled=True, cache_backend=backend,
                                     **options),
                        prefix=f"wxbench-core-{uuid.uuid4().hex[:8]}", subscribe_writes=False,
                        publish_stats_every=None)
    if cache is None:
        raise RuntimeError(f"no {backend} cache was built")
    return cached(students.ENTITY, cache=cache, name=f"bench.core.student_by_id.{backend}")(
        students.find_by_id), cache


def _redis_reader(url: str) -> tuple[Callable[..., Any], Any]:
    """On Redis (PHI encrypted, a key of this run): what the cache's decision costs where a hit
    would cost more than the read."""
    import secrets

    return _cached_reader("redis", redis_url=url, cache_key=secrets.token_bytes(32),
                          cache_encrypt_phi=True)


def _memory_reader() -> tuple[Callable[..., Any], Any]:
    """In process memory: a hit serves the row and writes the disclosure record it owes, in a
    statement of its own."""
    return _cached_reader("memory")


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print the table."""
    from returns.result import Success

    from wxdata import ExecutionContext, Purpose, Role
    from wxdata.config import configure, settings
    from wxdata.domains import students
    from wxdata.tx.scope import context_statement
    from wxdata.tx.token import scope_key

    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--ops", type=int, default=2000)
    p.add_argument("--students", type=int, default=5000)
    p.add_argument("--redis-url", default=os.environ.get("REDIS_URL"),
                   help="times the owner's by-id read cached on this Redis too (unset: not)")
    p.add_argument("--only", metavar="LABEL", default=None, action="append",
                   help="time only this variant (repeatable), beside raw psycopg's by-id read")
    p.add_argument("--instructions", metavar="LABEL", default=None, action="append",
                   help="run only this variant's calls inside functools.reduce (for callgrind);"
                        " repeatable: each variant in turn")
    p.add_argument("--ops-again", type=int, default=None, metavar="N",
                   help="with --instructions: after the --ops calls, N more in a second reduce")
    args = parse_with_database_url(p, argv)
    try:
        from wxdata.aio.domains import students as astudents
    except ImportError:  # a wxdata without the async API
        astudents = None
    name, owner, app, school, ids = _setup(args.database_url, args.students)
    rng = random.Random(2026)
    ctx = ExecutionContext(user_id="u-bench-nurse", role=Role.NURSE, purpose=Purpose.TREATMENT,
                           school_ids={school}, request_id="req-bench-core")
    audit_on = settings()
    audit_off = attrs.evolve(audit_on, audit_enabled=False)
    # the owner's connection (no row security, no context statement), as the targets' workloads
    owner_off = attrs.evolve(audit_off, allow_privileged_connection=True)
    owner_on = attrs.evolve(audit_on, allow_privileged_connection=True)
    where = {"school_id": school}
    loop = asyncio.new_event_loop()
    load = [os.getloadavg()[0]]
    redis_cache: Any = None
    memory_cache: Any = None
    caches: list[Any] = []  # more caches of this run, closed at the end
    try:
        with psycopg.connect(owner, autocommit=True) as sup, \
                psycopg.connect(app, autocommit=True) as conn:
            aconn = loop.run_until_complete(psycopg.AsyncConnection.connect(app, autocommit=True))
            asup = loop.run_until_complete(psycopg.AsyncConnection.connect(owner, autocommit=True))
            cur = sup.cursor()

            def raw(sample: list[uuid.UUID]) -> None:
                for sid in sample:
                    cur.execute("SELECT * FROM students WHERE id = %s AND deleted_at IS NULL",
                                (sid,), prepare=True)
                    cur.fetchone()

            # ``SELECT *`` returns the stored order; each field is read from its position there
            from wxdata.schema._rows import row_maker

            entity = students.ENTITY
            make_row = row_maker(entity.row_type, tuple(entity.stored_names.index(c)
                                                        for c in entity.column_names))

            def raw_typed(sample: list[uuid.UUID]) -> None:
                # raw psycopg building the typed row wxdata returns, as wxdata builds it (what
                # the row alone costs)
                for sid in sample:
                    cur.execute("SELECT * FROM students WHERE id = %s AND deleted_at IS NULL",
                                (sid,), prepare=True)
                    make_row(cur.fetchone())

            bare_plan = _bare_plan(students.ENTITY)

            def owner_bare_plan(sample: list[uuid.UUID]) -> None:
                for sid in sample:
                    if not isinstance(bare_plan(sup, sid), Success):
                        raise RuntimeError("fetch failed")

            app_context, app_cur = conn.cursor(), conn.cursor()

            def raw_app(sample: list[uuid.UUID]) -> None:
                # the application role's floor: wxdata's context statement and the SELECT,
                # pipelined in one transaction, by hand
                for sid in sample:
                    statement, values = context_statement(ctx, scope_key())
                    with conn.pipeline():
                        app_context.execute(statement, values, prepare=True)
                        app_cur.execute("SELECT * FROM students WHERE id = %s"
                                        " AND deleted_at IS NULL", (sid,), prepare=True)
                    app_cur.fetchone()

            def by_id(sample: list[uuid.UUID]) -> None:
                for sid in sample:
                    if not isinstance(students.find_by_id(conn, ctx, sid), Success):
                        raise RuntimeError("fetch failed")

            def owner_by_id(sample: list[uuid.UUID]) -> None:
                for sid in sample:
                    if not isinstance(students.find_by_id(sup, ctx, sid), Success):
                        raise RuntimeError("fetch failed")

            memory_reader, memory_cache = _memory_reader()
            configure(owner_on)
            for sid in ids:  # every student in the cache: each call of the variant is a hit
                memory_reader(sup, ctx, sid).unwrap()

            def owner_memory_hit(sample: list[uuid.UUID]) -> None:
                # a hit from process memory and the disclosure record it owes (its own INSERT)
                for sid in sample:
                    if not isinstance(memory_reader(sup, ctx, sid), Success):
                        raise RuntimeError("fetch failed")

            from wxdata.cache.core import hit_record

            # the INSERT a hit on each student sends, built beforehand for raw psycopg to send
            hit_statements: dict[uuid.UUID, Any] = {}
            for sid in ids:
                due = hit_record(ctx, students.ENTITY, memory_reader(sup, ctx, sid).unwrap(),
                                 "bench.core.student_by_id.memory")
                if due is None:
                    raise RuntimeError("no record is due: is the audit on?")
                hit_statements[sid] = due.insert()

            def raw_hit_record(sample: list[uuid.UUID]) -> None:
                for sid in sample:
                    hit_cur.execute(*hit_statements[sid], prepare=True)

            hit_cur = sup.cursor()
            redis_reader = None
            if args.redis_url:
                redis_reader, redis_cache = _redis_reader(args.redis_url)

            def owner_by_id_redis(sample: list[uuid.UUID]) -> None:
                # wxdata's own by-id read cached on Redis: audited, it is not served from there
                assert redis_reader is not None
                for sid in sample:
                    if not isinstance(redis_reader(sup, ctx, sid), Success):
                        raise RuntimeError("fetch failed")

            def page_on(on: psycopg.Connection[Any]) -> Batch:
                def page(sample: list[uuid.UUID]) -> None:
                    for n, _ in enumerate(sample):
                        if not isinstance(students.find_many(on, ctx, where,
                                                             order_by=["last_name"],
                                                             page=1 + n % 5, limit=20), Success):
                            raise RuntimeError("page failed")
                return page

            page, owner_page = page_on(conn), page_on(sup)

            user = ctx.user_id
            district = sup.execute("SELECT district_id FROM schools WHERE id = %s",
                                   (school,)).fetchone()[0]
            grades = ("3", "4", "5")
            # creates go to a school of their own, so the paged school keeps its size all run
            intake = sup.execute(
                "INSERT INTO schools (name, code, district_id) VALUES ('Intake', %s, %s)"
                " RETURNING id", (f"BI-{uuid.uuid4().hex[:8]}", district)).fetchone()[0]
            intake_ctx = attrs.evolve(ctx, school_ids=frozenset({intake}))

            # Every update writes values other than the ones its row holds: the variants update
            # the same sample in turn, and a row given back the values it has is updated without
            # touching its indexes (a HOT update), which would favour whichever variant comes
            # after another. Each row's next values are the ones after those it was last given.
            turns: dict[uuid.UUID, int] = {}

            def turn(sid: uuid.UUID) -> int:
                turns[sid] = n = turns.get(sid, 0) + 1
                return n

            def raw_update(sample: list[uuid.UUID]) -> None:
                for sid in sample:
                    cur.execute("UPDATE students SET grade = %s, updated_by = %s,"
                                " updated_at = now(), version = version + 1"
                                " WHERE id = %s AND deleted_at IS NULL RETURNING *",
                                (grades[turn(sid) % 3], user, sid), prepare=True)
                    cur.fetchone()

            def update_on(on: psycopg.Connection[Any]) -> Batch:
                def update(sample: list[uuid.UUID]) -> None:
                    for sid in sample:
                        if not isinstance(students.update(on, ctx, sid,
                                                          {"grade": grades[turn(sid) % 3]}),
                                          Success):
                            raise RuntimeError("update failed")
                return update

            update, owner_update = update_on(conn), update_on(sup)

            # an update of seven columns: its audited statement is past the length psycopg caches
            # its parse of (wxdata sends it numbered); raw psycopg sends the same statement named
            firsts, lasts = ("Ada", "Grace", "Mary"), ("Lovelace", "Hopper", "Somerville")

            def seven(n: int) -> dict[str, Any]:
                return {"first_name": firsts[n % 3], "last_name": lasts[n % 3],
                        "grade": grades[n % 3], "gender": ("FEMALE", "OTHER", "MALE")[n % 3],
                        "photo": f"p{n % 3}.png", "is_active": n % 2 == 0,
                        "enrollment_date": date(2020, 9, 1 + n % 3)}

            def owner_update_seven(sample: list[uuid.UUID]) -> None:
                for sid in sample:
                    if not isinstance(students.update(sup, ctx, sid, seven(turn(sid))), Success):
                        raise RuntimeError("update failed")

            from wxdata.cache.invalidation import subscribe, unsubscribe

            def invalidating(cache: Any, batch: Batch) -> Batch:
                # a cache of its own subscribed to committed writes for this batch alone: each
                # update then invalidates its row's tags after the commit (the other variants run
                # with no cache listening)
                def timed(sample: list[uuid.UUID]) -> None:
                    subscribe(cache)
                    try:
                        batch(sample)
                    finally:
                        unsubscribe(cache)
                return timed

            _, memory_invalidated = _memory_reader()
            caches.append(memory_invalidated)
            memory_update = invalidating(memory_invalidated, owner_update)
            redis_update = None
            if args.redis_url:
                _, redis_invalidated = _redis_reader(args.redis_url)
                caches.append(redis_invalidated)
                redis_update = invalidating(redis_invalidated, owner_update)

            from benchmarks import common

            def sent_statement(
                conninfo: str, config: Any, call: Callable[[psycopg.Connection[Any]], Any],
                marker: str = "audit_log",
            ) -> tuple[str, Any]:
                """:func:`benchmarks.common.sent_statement` under ``config``."""
                configure(config)
                return common.sent_statement(conninfo, call, marker)

            seven_sql, seven_params = sent_statement(
                owner, owner_on, lambda c: students.update(c, ctx, ids[0], seven(1)))
            seven_cur = sup.cursor()

            # the audited by-id read's statement (the read and its riding record), sent by raw
            # psycopg with the id of each call: what wxdata's client adds to the same statement
            read_sql, read_params = sent_statement(
                owner, owner_on, lambda c: students.find_by_id(c, ctx, ids[0]))
            read_cur = sup.cursor()

            def raw_read_audited(sample: list[uuid.UUID]) -> None:
                for sid in sample:
                    read_cur.execute(read_sql, {**read_params, "_id": sid}, prepare=True)
                    read_cur.fetchall()

            # the audited page's statement (rows, total and riding record), captured as the
            # application role sends it, sent by raw psycopg as the owner (no context statement)
            page_sql, page_params = sent_statement(
                app, audit_on, lambda c: students.find_many(c, ctx, where, order_by=["last_name"],
                                                            page=1, limit=20))
            page_cur = sup.cursor()

            def raw_page_audited(sample: list[uuid.UUID]) -> None:
                for _ in sample:
                    page_cur.execute(page_sql, page_params, prepare=True)
                    page_cur.fetchall()

            def raw_update_seven(sample: list[uuid.UUID]) -> None:
                for sid in sample:
                    params = {**seven_params, "_id": sid,
                              **seven(turn(sid))}
                    seven_cur.execute(seven_sql, params, prepare=True)
                    seven_cur.fetchall()

            def values() -> dict[str, Any]:
                return {"student_number": "BC-" + uuid.uuid4().hex[:12],
                        "first_name": "Ada", "last_name": "Lovelace",
                        "date_of_birth": date(2014, 5, 17), "grade": "5",
                        "gender": "FEMALE", "enrollment_date": date(2020, 9, 1),
                        "school_id": intake, "district_id": district}

            def create_on(on: psycopg.Connection[Any]) -> Batch:
                def create(sample: list[uuid.UUID]) -> None:
                    for _ in sample:
                        if not isinstance(students.create(on, intake_ctx, values()), Success):
                            raise RuntimeError("create failed")
                return create

            create, owner_create = create_on(conn), create_on(sup)

            # the owner's create as wxdata sends it with the audit off (the key left to its
            # default), its values bound as wxdata binds them: what wxdata's client adds to it
            create_sql, _ = sent_statement(
                owner, owner_off, lambda c: students.create(c, intake_ctx, values()),
                marker='INSERT INTO "students"')
            create_cur = sup.cursor()

            def raw_create_sent(sample: list[uuid.UUID]) -> None:
                for _ in sample:
                    params = values()
                    params["created_by"] = params["updated_by"] = user
                    create_cur.execute(create_sql, params, prepare=True)
                    create_cur.fetchall()

            def raw_create(sample: list[uuid.UUID]) -> None:
                for _ in sample:
                    v = values()
                    cur.execute(
                        "INSERT INTO students (id, student_number, first_name, last_name,"
                        " date_of_birth, grade, gender, enrollment_date, school_id, district_id,"
                        " created_by, updated_by) VALUES"
                        " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
                        (uuid.uuid4(), *v.values(), user, user), prepare=True)
                    cur.fetchone()

            # one disclosure record per call (autocommit: each its own transaction), as the owner
            from wxdata.audit import log_read
            from wxdata.audit.log import build_record
            from wxdata.audit.record import AuditAction
            from wxdata.audit.sql import positional
            from wxdata.audit.sql import record_insert as audit_insert

            def owner_log_read(sample: list[uuid.UUID]) -> None:
                for sid in sample:
                    if not isinstance(log_read(sup, ctx, students.ENTITY, [sid]), Success):
                        raise RuntimeError("log_read failed")

            # raw psycopg sending the INSERT log_read sends, its parameters prepared beforehand
            disclosed = build_record(ctx, students.ENTITY, AuditAction.READ, ids=ids[:1],
                                     subjects=ids[:1], fields=students.ENTITY.column_names)
            record_sql, record_params = audit_insert(ctx, disclosed)
            positional_sql, positional_params = positional(record_sql, record_params)
            record_cur = sup.cursor()

            def raw_record(sample: list[uuid.UUID]) -> None:
                for _ in sample:
                    record_cur.execute(positional_sql, positional_params, prepare=True)

            # a hand-written statement returning a value computed in SQL (no table column: no
            # record owed), through crud.fetch and through raw psycopg
            from wxdata import crud

            counted = "SELECT count(*) FROM students WHERE id = %(id)s AND deleted_at IS NULL"
            count_cur = sup.cursor()

            def raw_count(sample: list[uuid.UUID]) -> None:
                for sid in sample:
                    count_cur.execute(counted, {"id": sid}, prepare=True)
                    count_cur.fetchone()

            def owner_fetch(sample: list[uuid.UUID]) -> None:
                for sid in sample:
                    if not isinstance(crud.fetch(sup, ctx, counted, {"id": sid}), Success):
                        raise RuntimeError("fetch failed")

            def a_by_id_on(on: psycopg.AsyncConnection[Any]) -> Batch:
                def a_by_id(sample: list[uuid.UUID]) -> None:
                    async def go() -> None:
                        for sid in sample:
                            if not isinstance(await astudents.find_by_id(on, ctx, sid), Success):
                                raise RuntimeError("fetch failed")
                    loop.run_until_complete(go())
                return a_by_id

            a_by_id, owner_a_by_id = a_by_id_on(aconn), a_by_id_on(asup)
            acur = asup.cursor()

            def raw_async(sample: list[uuid.UUID]) -> None:
                # raw psycopg's async shell: what awaiting a prepared fetch costs on its own
                async def go() -> None:
                    for sid in sample:
                        await acur.execute(
                            "SELECT * FROM students WHERE id = %s AND deleted_at IS NULL", (sid,),
                            prepare=True)
                        await acur.fetchone()
                loop.run_until_complete(go())

            variants: list[tuple[str, Batch, Any]] = [
                ("raw psycopg find by id (superuser, prepared)", raw, audit_off),
                ("raw psycopg find by id (app role, context pipelined)", raw_app, audit_off),
                ("raw psycopg find by id, typed row (superuser, prepared)", raw_typed, audit_off),
                ("find_by_id's statement as a plan with no checks, owner", owner_bare_plan,
                 owner_off),
                ("sync find_by_id, audit off", by_id, audit_off),
                ("sync find_by_id, audited", by_id, audit_on),
                ("sync find_by_id, audit off, owner", owner_by_id, owner_off),
                ("sync find_by_id, audited, owner", owner_by_id, owner_on),
                ("raw psycopg sending that read's statement (superuser, prepared)",
                 raw_read_audited, owner_on),
                ("sync find_by_id, memory-cache hit + its record, owner", owner_memory_hit,
                 owner_on),
                ("raw psycopg INSERT of a hit's record (superuser, prepared)", raw_hit_record,
                 owner_on),
                *([("sync find_by_id cached on Redis, audited, owner", owner_by_id_redis,
                    owner_on)] if redis_reader is not None else []),
                ("sync find_many 20 + total, audit off", page, audit_off),
                ("sync find_many 20 + total, audited", page, audit_on),
                ("sync find_many 20 + total, audited, owner", owner_page, owner_on),
                ("raw psycopg sending that page's statement (superuser, prepared)",
                 raw_page_audited, audit_on),
                ("raw psycopg update by id (superuser, prepared)", raw_update, audit_off),
                ("sync update, audit off", update, audit_off),
                ("sync update, audited", update, audit_on),
                ("sync update, audit off, owner", owner_update, owner_off),
                ("sync update, audited, owner", owner_update, owner_on),
                ("sync update of seven columns, audited, owner", owner_update_seven, owner_on),
                ("sync update, audited, owner, a memory cache invalidated", memory_update,
                 owner_on),
                *([("sync update, audited, owner, a Redis cache invalidated", redis_update,
                    owner_on)] if redis_update is not None else []),
                ("raw psycopg sending that update's statement (superuser, prepared)",
                 raw_update_seven, owner_on),
                ("raw psycopg create (superuser, prepared)", raw_create, audit_off),
                ("sync create, audit off", create, audit_off),
                ("sync create, audited", create, audit_on),
                ("sync create, audit off, owner", owner_create, owner_off),
                ("sync create, audited, owner", owner_create, owner_on),
                ("raw psycopg sending that create's statement (superuser, prepared)",
                 raw_create_sent, owner_off),
                ("raw psycopg audit record INSERT (superuser, prepared)", raw_record, audit_off),
                ("sync log_read, the owner", owner_log_read, owner_on),
                ("raw psycopg hand-written count (superuser, prepared)", raw_count, audit_off),
                ("sync crud.fetch of the same count, audited, owner", owner_fetch, owner_on),
            ]
            if astudents is not None:
                variants += [("async find_by_id, audit off", a_by_id, audit_off),
                             ("async find_by_id, audited", a_by_id, audit_on),
                             ("raw psycopg async find by id (superuser, prepared)", raw_async,
                              audit_off),
                             ("async find_by_id, audit off, owner", owner_a_by_id, owner_off),
                             ("async find_by_id, audited, owner", owner_a_by_id, owner_on)]
            if args.instructions is not None:
                by_label = {v[0]: v for v in variants}
                unknown = [label for label in args.instructions if label not in by_label]
                if unknown:
                    p.error("--instructions takes one of: " + "; ".join(by_label))
                for label in args.instructions:
                    _, batch, config = by_label[label]
                    configure(config)
                    batch(ids[:200])  # warm-up, outside the collected calls
                    for ops in (args.ops, args.ops_again):
                        if ops is not None:  # each reduce: one callgrind dump with --dump-after
                            sample = [rng.choice(ids) for _ in range(ops)]
                            # every batch starts from the same collector state, the set-up's
                            # objects out of its reach: the collections a batch pays for are
                            # those its own calls' allocations trigger, not one that the run's
                            # history happens to land in it
                            gc.collect()
                            gc.freeze()
                            functools.reduce(lambda _, sid: batch([sid]), sample, None)
                configure(audit_on)
                loop.run_until_complete(aconn.close())
                loop.run_until_complete(asup.close())
                return 0
            if args.only is not None:
                by_label = {v[0]: v for v in variants}
                unknown = [label for label in args.only if label not in by_label]
                if unknown:
                    p.error("--only takes one of: " + "; ".join(by_label))
                variants = [variants[0], *(by_label[label] for label in args.only
                                           if label != variants[0][0])]
            cpu: dict[str, list[float]] = {v[0]: [] for v in variants}
            wall: dict[str, list[float]] = {v[0]: [] for v in variants}
            server: dict[str, list[float]] = {v[0]: [] for v in variants}
            postmaster = _postmaster(sup.execute("SELECT pg_backend_pid()").fetchone()[0])
            for _, batch, config in variants:  # warm-up: prepared statements, caches
                configure(config)
                batch(ids[:200])
            for _ in range(args.reps):
                sample = [rng.choice(ids) for _ in range(args.ops)]
                for label, batch, config in variants:
                    configure(config)
                    s0 = _server_cpu_ns(postmaster) if postmaster is not None else 0
                    c0, w0 = time.process_time(), time.perf_counter()
                    batch(sample)
                    cpu[label].append((time.process_time() - c0) / args.ops * 1e6)
                    wall[label].append((time.perf_counter() - w0) / args.ops * 1e6)
                    if postmaster is not None:
                        server[label].append((_server_cpu_ns(postmaster) - s0) / args.ops / 1e3)
            configure(audit_on)
            loop.run_until_complete(aconn.close())
            loop.run_until_complete(asup.close())
    finally:
        configure(audit_on)  # the settings this run found, whatever happened (an unknown label)
        loop.close()
        if redis_cache is not None:
            redis_cache.close()
        if memory_cache is not None:
            memory_cache.close()
        for cache in caches:
            cache.close()
        _drop(args.database_url, name, app)
    load.append(os.getloadavg()[0])
    floor = cpu[variants[0][0]]
    print(f"{args.reps} interleaved reps x {args.ops} calls, app role (RLS), {args.students} "
          f"students; load average {load[0]:.2f} -> {load[1]:.2f}")
    print("  per call: client CPU µs median (min-max) | excess over raw CPU, median "
          "| wall µs median (min-max)"
          + (" | PostgreSQL CPU µs median (min-max)" if server[variants[0][0]] else ""))
    for label, _, _ in variants:
        t, w, on_server = cpu[label], wall[label], server[label]
        excess = [a - b for a, b in zip(t, floor, strict=True)]
        print(f"  {label:46} {statistics.median(t):7.1f} ({min(t):.1f}-{max(t):.1f}) | "
              f"+{statistics.median(excess):6.1f} | {statistics.median(w):7.1f} "
              f"({min(w):.1f}-{max(w):.1f})"
              + (f" | {statistics.median(on_server):7.1f} ({min(on_server):.1f}-"
                 f"{max(on_server):.1f})" if on_server else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
