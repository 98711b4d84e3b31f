"""Async clients side by side: raw psycopg async, wxdata async, asyncpg, SQLAlchemy 2 AsyncSession.

``python -m benchmarks.bench_async [--scale 20000] [--config A|B|both] [--reps 7] [--quick]
[--tasks 1,32] [--output FILE.md]``

Self-contained: creates, migrates and seeds its own database (benchmarks/seed.py), measures, drops
it. The suite (``python -m benchmarks``) also picks this module up through :func:`run`.

Workloads (each at 1 and at 32 concurrent tasks):

1. **fetch by id** (a student: wxdata audits it, the record rides in the read's statement);
2. **page of 20 + total** (students of a grade, ordered by name);
3. **create** (one student, no audit record: wxdata with ``AUDIT_ENABLED=false``);
4. **audited create** (one student and its CREATE record, one transaction);
5. **PHI read + record** (a health record and its READ record).

Variants: ``raw psycopg async`` (hand-written SQL, ``prepare=True``; the baseline of every ratio),
``raw psycopg async + same audit SQL`` (the exact statement wxdata sends, captured once and replayed
with the parameters of each call: the floor of the audited operation), ``wxdata async`` (audited,
and with ``AUDIT_ENABLED=false``), ``asyncpg`` (its statement cache prepares every query; audited
operations as SELECT/INSERT + audit INSERT in one transaction) and ``SQLAlchemy 2 AsyncSession
ORM`` (a session per operation over ``postgresql+psycopg``, ``expire_on_commit=False``). Fetch by
id also runs wxdata async on the raw psycopg pool (no checkout check), which separates the cost of
``wxdata.aio.create_pool``'s connection check on every checkout from the layer's own.

Clients: each variant has its own pool of as many connections as there are tasks (psycopg_pool
``AsyncConnectionPool``, ``wxdata.aio.create_pool``, ``asyncpg.create_pool``, SQLAlchemy's
``AsyncAdaptedQueuePool``) and every operation checks a connection out and gives it back, as a
request handler does. A batch of ``n`` operations is shared by the tasks (each takes the next
input); its figure is the batch's wall time divided by ``n``.

Method: the harness's (benchmarks/common.py) -- each repetition runs one batch of every variant, the
order rotating between repetitions; inputs are prepared before the clock starts; every operation's
result is checked (a failed one aborts the run). Reported: the median over repetitions of the mean
µs per operation, the min-max of those means, the ratio of medians to raw psycopg async of the same
workload and task count, and the load average before and after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shlex
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from benchmarks import sqla_models as m
from benchmarks import workloads as w
from benchmarks.common import (
    NO_PIN_HELP,
    BenchmarkError,
    Env,
    Options,
    Result,
    audit_disabled,
    capture,
    configuration,
    finalize,
    fmt_us,
    server_url,
    statement,
)

TASKS = (1, 32)
RAW = "raw psycopg async"
RAW_AUDIT = "raw psycopg async + same audit SQL"
WX = "wxdata async (audited)"
WX_OFF = "wxdata async (AUDIT_ENABLED=false)"
WX_OFF_PLAIN = "wxdata async (AUDIT_ENABLED=false), raw psycopg pool"
APG = "asyncpg"
ORM = "SQLAlchemy 2 AsyncSession ORM"

AsyncOp = Callable[[Any], Awaitable[object]]


@dataclass
class AVariant:
    """One client's way of doing the operation: ``make(clients)`` returns ``async op(input)``."""

    name: str
    family: str
    make: Callable[[Clients], Awaitable[AsyncOp]]
    baseline: bool = False
    around: Callable[[], contextlib.AbstractContextManager[Any]] | None = None


@dataclass
class AWorkload:
    """An operation, its variants and the inputs of a batch (drawn outside the clock)."""

    key: str
    title: str
    variants: list[AVariant]
    inputs: Callable[[Env, int], list[Any]]
    note: str = ""


# --- the clients of one task count -----------------------------------------------------------------


def asyncpg_kwargs(conninfo: str) -> dict[str, Any]:
    """``asyncpg.connect`` arguments equivalent to a libpq conninfo (``-c`` options as settings)."""
    info = conninfo_to_dict(conninfo)
    settings: dict[str, str] = {}
    words = shlex.split(str(info.get("options", "")))
    for i, word in enumerate(words):
        value = word[2:] if word.startswith("-c") and len(word) > 2 else (
            words[i + 1] if word == "-c" and i + 1 < len(words) else None)
        if value and "=" in value:
            k, v = value.split("=", 1)
            settings[k] = v
    if info.get("application_name"):
        settings["application_name"] = str(info["application_name"])
    return {"host": info.get("host") or "127.0.0.1", "port": int(info.get("port") or 5432),
            "user": info.get("user"), "password": info.get("password"),
            "database": info.get("dbname"), "server_settings": settings}


@dataclass
class Clients:
    """The pools of every variant at one task count (opened lazily, closed by :meth:`close`)."""

    env: Env
    size: int
    _open: dict[str, Any] = field(default_factory=dict)
    _closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    async def raw(self) -> Any:
        """A psycopg_pool ``AsyncConnectionPool`` of autocommit connections."""
        if "raw" not in self._open:
            from psycopg_pool import AsyncConnectionPool

            pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                self.env.conninfo, min_size=self.size, max_size=self.size, open=False,
                kwargs={"autocommit": True})
            await pool.open(wait=True)
            self._open["raw"] = pool
            self._closers.append(pool.close)
        return self._open["raw"]

    async def wx(self) -> Any:
        """wxdata's async pool (``wxdata.aio.create_pool``) on the same conninfo."""
        if "wx" not in self._open:
            from wxdata import aio

            pool = await aio.create_pool(self.env.conninfo, min_size=self.size,
                                         max_size=self.size, name="wxdata-bench-async")
            await pool.wait()
            self._open["wx"] = pool
            self._closers.append(pool.close)
        return self._open["wx"]

    async def apg(self) -> Any:
        """An ``asyncpg`` pool (its per-connection statement cache prepares every query)."""
        if "apg" not in self._open:
            import asyncpg

            pool = await asyncpg.create_pool(min_size=self.size, max_size=self.size,
                                             **asyncpg_kwargs(self.env.conninfo))
            self._open["apg"] = pool
            self._closers.append(pool.close)
        return self._open["apg"]

    async def orm(self) -> Any:
        """An ``async_sessionmaker`` over a ``postgresql+psycopg`` async engine (pool of ``size``)."""
        if "orm" not in self._open:
            from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

            conninfo = self.env.conninfo

            async def creator() -> Any:
                return await psycopg.AsyncConnection.connect(conninfo)

            engine = create_async_engine("postgresql+psycopg://", async_creator=creator,
                                         pool_size=self.size, max_overflow=0)
            self._open["orm"] = async_sessionmaker(engine, expire_on_commit=False)
            self._closers.append(engine.dispose)
        return self._open["orm"]

    async def close(self) -> None:
        """Close every pool and engine, newest first."""
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                await closer()
        self._closers.clear()
        self._open.clear()


# --- timing --------------------------------------------------------------------------------------


async def _batch(op: AsyncOp, xs: list[Any], tasks: int) -> tuple[int, int]:
    """Run ``op`` over ``xs`` with ``tasks`` workers; (wall ns, failed operations)."""
    it = iter(xs)
    bad = 0

    async def worker() -> None:
        nonlocal bad
        for x in it:  # the iterator is shared: each worker takes the next input
            if not await op(x):
                bad += 1

    t0 = time.perf_counter_ns()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return time.perf_counter_ns() - t0, bad


async def measure_async(env: Env, wl: AWorkload, clients: Clients, *,
                        log: Callable[[str], None] = print) -> list[Result]:
    """Every variant of ``wl`` at ``clients.size`` tasks, interleaved over ``reps`` repetitions."""
    opts, tasks = env.options, clients.size
    ops = {v.name: await v.make(clients) for v in wl.variants}

    async def batch(v: AVariant, n: int) -> float:
        xs = wl.inputs(env, n)
        around = v.around() if v.around is not None else contextlib.nullcontext()
        with around:
            ns, bad = await _batch(ops[v.name], xs, tasks)
        if bad:
            raise BenchmarkError(f"{wl.title} / {v.name}: {bad} of {n} operations failed")
        return ns / 1000 / n

    probe = max(tasks * 2, 3 if opts.quick else 20)
    slowest = 0.0
    for v in wl.variants:  # warm-up: fills every pool connection's statement cache, then calibrates
        await batch(v, probe)
        slowest = max(slowest, await batch(v, probe))
    n = int(opts.batch_seconds * 1e6 / max(slowest, 1.0))
    n = max(tasks * (2 if opts.quick else 4), min(opts.max_batch, n))
    samples: dict[str, list[float]] = {v.name: [] for v in wl.variants}
    for rep in range(opts.reps):
        k = rep % len(wl.variants)
        for v in wl.variants[k:] + wl.variants[:k]:
            samples[v.name].append(await batch(v, n))
    title = f"{wl.title} @ {tasks} task{'s' if tasks > 1 else ''}"
    extra: dict[str, Any] = {"tasks": tasks, "note": wl.note} if wl.note else {"tasks": tasks}
    out = [Result(title, v.name, env.config, samples[v.name], n, v.family, v.baseline, "main",
                  extra=dict(extra)) for v in wl.variants]
    base = next((r.median for r in out if r.baseline), None)
    for r in out:
        ratio = f"{r.median / base:5.2f}x" if base else "   - "
        log(f"  [{env.config}] {title:<34} {r.variant:<40} {fmt_us(r.median):>10} "
            f"({fmt_us(r.lo)}-{fmt_us(r.hi)})  {ratio}")
    return out


# --- captured wxdata SQL, replayed -------------------------------------------------------------------


def _captured(env: Env, key: str, run: Callable[[psycopg.Connection[Any]], object],
              contains: str = "INSERT INTO audit_log") -> tuple[str, dict[str, Any]]:
    return env.memo(f"async-captured-{key}", lambda: statement(capture(env, run), contains))  # type: ignore[no-any-return]


async def _raw_one(pool: Any, sql: str, params: Any) -> Any:
    async with pool.connection() as conn:
        cur = await conn.execute(sql, params, prepare=True)
        return await cur.fetchone()


# --- workloads ------------------------------------------------------------------------------------


def _wx_aio() -> Any:
    """The async domain modules (``wxdata.aio.domains``)."""
    from wxdata.aio import domains

    return domains


def fetch_by_id(env: Env) -> AWorkload:
    """Primary-key fetch of a student."""
    students, _, _ = w._wx()

    async def raw(c: Clients) -> AsyncOp:
        pool = await c.raw()
        return lambda sid: _raw_one(pool, w.FETCH_STUDENT, (sid,))

    async def raw_audit(c: Clients) -> AsyncOp:
        sample = env.data.student_ids[0]
        sql, params = _captured(env, "fetch", lambda conn: w._ok(
            students.find_by_id(conn, env.ctx, sample)))
        key, pool = w._slot(params, sample), await c.raw()
        return lambda sid: _raw_one(pool, sql, {**params, key: sid})

    async def wx(c: Clients) -> AsyncOp:
        aio, pool, ctx = _wx_aio(), await c.wx(), env.ctx
        find = aio.students.find_by_id

        async def op(sid: uuid.UUID) -> bool:
            async with pool.connection() as conn:
                return w._ok(await find(conn, ctx, sid))
        return op

    async def wx_plain(c: Clients) -> AsyncOp:
        aio, pool, ctx = _wx_aio(), await c.raw(), env.ctx
        find = aio.students.find_by_id

        async def op(sid: uuid.UUID) -> bool:
            async with pool.connection() as conn:
                return w._ok(await find(conn, ctx, sid))
        return op

    async def apg(c: Clients) -> AsyncOp:
        pool, sql = await c.apg(), _dollar(w.FETCH_STUDENT)

        async def op(sid: uuid.UUID) -> Any:
            async with pool.acquire() as conn:
                return await conn.fetchrow(sql, sid)
        return op

    async def orm(c: Clients) -> AsyncOp:
        sessions = await c.orm()

        async def op(sid: uuid.UUID) -> bool:
            async with sessions() as s:
                obj = await s.get(m.Student, sid)
                return obj is not None and obj.deleted_at is None
        return op

    return AWorkload("fetch", "fetch by id", [
        AVariant(RAW, "raw", raw, baseline=True), AVariant(RAW_AUDIT, "raw_audit", raw_audit),
        AVariant(WX, "wx", wx), AVariant(WX_OFF, "wx_noaudit", wx, around=audit_disabled),
        AVariant(WX_OFF_PLAIN, "wx_noaudit_plain", wx_plain, around=audit_disabled),
        AVariant(APG, "asyncpg", apg), AVariant(ORM, "orm", orm),
    ], w._random_ids, note="wxdata records the read (its audit record rides in the SELECT); raw, "
                          "asyncpg and the ORM do not")


def page_with_total(env: Env) -> AWorkload:
    """Page p (1 to 5) of 20 students of a grade, ordered by name, with the total count."""
    students, _, _ = w._wx()

    def inputs(env: Env, n: int) -> list[tuple[str, int]]:
        return [(env.rng.choice(w.GRADES), env.rng.randint(1, 5)) for _ in range(n)]

    async def raw(c: Clients) -> AsyncOp:
        pool = await c.raw()

        async def op(x: tuple[str, int]) -> bool:
            async with pool.connection() as conn:
                cur = await conn.execute(w.PAGE_STUDENTS, (x[0], 20, (x[1] - 1) * 20), prepare=True)
                rows = await cur.fetchall()
                cur = await conn.execute(w.COUNT_STUDENTS, (x[0],), prepare=True)
                return rows is not None and await cur.fetchone() is not None
        return op

    async def raw_audit(c: Clients) -> AsyncOp:
        # wxdata writes the window of the first pages into the statement: one statement per page
        by_page = {page: _captured(env, f"page-{page}", lambda conn, p=page: w._ok(
            students.find_many(conn, env.ctx, {"grade": "7"}, order_by=w.ORDER, page=p,
                               limit=20))) for page in range(1, 6)}
        g, pool = w._slot(by_page[1][1], "7"), await c.raw()

        async def op(x: tuple[str, int]) -> bool:
            sql, params = by_page[x[1]]
            async with pool.connection() as conn:
                cur = await conn.execute(sql, {**params, g: x[0]}, prepare=True)
                return await cur.fetchall() is not None
        return op

    async def wx(c: Clients) -> AsyncOp:
        aio, pool, ctx = _wx_aio(), await c.wx(), env.ctx
        find = aio.students.find_many

        async def op(x: tuple[str, int]) -> bool:
            async with pool.connection() as conn:
                return w._ok(await find(conn, ctx, {"grade": x[0]}, order_by=w.ORDER, page=x[1],
                                        limit=20))
        return op

    async def apg(c: Clients) -> AsyncOp:
        pool, page, count = await c.apg(), _dollar(w.PAGE_STUDENTS), _dollar(w.COUNT_STUDENTS)

        async def op(x: tuple[str, int]) -> bool:
            async with pool.acquire() as conn:
                rows = await conn.fetch(page, x[0], 20, (x[1] - 1) * 20)
                return rows is not None and await conn.fetchval(count, x[0]) is not None
        return op

    async def orm(c: Clients) -> AsyncOp:
        from sqlalchemy import func, select

        sessions, S = await c.orm(), m.Student

        async def op(x: tuple[str, int]) -> bool:
            async with sessions() as s:
                where = (S.grade == x[0], S.deleted_at.is_(None))
                rows = (await s.scalars(select(S).where(*where).order_by(
                    S.last_name, S.first_name, S.id).limit(20).offset((x[1] - 1) * 20))).all()
                total = await s.scalar(select(func.count()).select_from(S).where(*where))
                return rows is not None and total is not None
        return op

    return AWorkload("page", "page of 20 + total", [
        AVariant(RAW + " (2 queries)", "raw", raw, baseline=True),
        AVariant(RAW_AUDIT + " (1 statement)", "raw_audit", raw_audit),
        AVariant(WX, "wx", wx), AVariant(WX_OFF, "wx_noaudit", wx, around=audit_disabled),
        AVariant(APG + " (2 queries)", "asyncpg", apg), AVariant(ORM, "orm", orm),
    ], inputs, note="grade filter, ~1/13 of the students match")


def _student_params(v: dict[str, Any], user: str) -> tuple[Any, ...]:
    return w._student_tuple(v, user)


def create(env: Env) -> AWorkload:
    """Insert one student and return the stored row, without an audit record."""
    user = env.ctx.user_id

    async def raw(c: Clients) -> AsyncOp:
        pool = await c.raw()
        return lambda v: _raw_one(pool, w.INSERT_STUDENT, _student_params(v, user))

    async def wx(c: Clients) -> AsyncOp:
        aio, pool, ctx = _wx_aio(), await c.wx(), env.ctx
        make = aio.students.create

        async def op(v: dict[str, Any]) -> bool:
            async with pool.connection() as conn:
                return w._ok(await make(conn, ctx, v))
        return op

    async def apg(c: Clients) -> AsyncOp:
        pool, sql = await c.apg(), _dollar(w.INSERT_STUDENT)

        async def op(v: dict[str, Any]) -> Any:
            async with pool.acquire() as conn:
                return await conn.fetchrow(sql, *_student_params(v, user))
        return op

    async def orm(c: Clients) -> AsyncOp:
        sessions = await c.orm()

        async def op(v: dict[str, Any]) -> bool:
            async with sessions() as s:
                obj = m.Student(**v, created_by=user, updated_by=user)
                s.add(obj)
                await s.commit()
                return obj.created_at is not None
        return op

    return AWorkload("create", "create (no audit record)", [
        AVariant(RAW, "raw", raw, baseline=True),
        AVariant(WX_OFF, "wx_noaudit", wx, around=audit_disabled),
        AVariant(APG, "asyncpg", apg), AVariant(ORM, "orm", orm),
    ], w._create_inputs)


def audited_create(env: Env) -> AWorkload:
    """Insert one student and its CREATE record, atomically."""
    user = env.ctx.user_id

    def audit_params(row: Any, v: dict[str, Any]) -> tuple[Any, ...]:
        return w.audit_tuple(env, "CREATE", "Student", row[0], row[0], (), w._snapshot(v))

    async def raw(c: Clients) -> AsyncOp:
        pool = await c.raw()

        async def op(v: dict[str, Any]) -> Any:
            async with pool.connection() as conn, conn.transaction():
                cur = await conn.execute(w.INSERT_STUDENT, _student_params(v, user), prepare=True)
                row = await cur.fetchone()
                await conn.execute(w.INSERT_AUDIT, audit_params(row, v), prepare=True)
                return row
        return op

    async def raw_audit(c: Clients) -> AsyncOp:
        sql, params = env.memo("async-captured-create", lambda: statement(
            w._captured_create(env), "INSERT INTO audit_log"))
        pool = await c.raw()

        async def op(v: dict[str, Any]) -> Any:
            p = {**params, "id": uuid.uuid4()}
            for k in w.VALUE_FIELDS:
                p[k] = v[k]
            return await _raw_one(pool, sql, p)
        return op

    async def wx(c: Clients) -> AsyncOp:
        aio, pool, ctx = _wx_aio(), await c.wx(), env.ctx
        make = aio.students.create

        async def op(v: dict[str, Any]) -> bool:
            async with pool.connection() as conn:
                return w._ok(await make(conn, ctx, v))
        return op

    async def apg(c: Clients) -> AsyncOp:
        pool, ins, aud = await c.apg(), _dollar(w.INSERT_STUDENT), _dollar(w.INSERT_AUDIT)

        async def op(v: dict[str, Any]) -> Any:
            async with pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(ins, *_student_params(v, user))
                await conn.execute(aud, *audit_params(row, v))
                return row
        return op

    async def orm(c: Clients) -> AsyncOp:
        sessions = await c.orm()

        async def op(v: dict[str, Any]) -> bool:
            async with sessions() as s:
                obj = m.Student(**v, id=uuid.uuid4(), created_by=user, updated_by=user)
                s.add(obj)
                s.add(m.AuditLog(**w.audit_dict(env, "CREATE", "Student", obj.id, obj.id, (),
                                                {k: str(x) for k, x in v.items()})))
                await s.commit()
                return obj.created_at is not None
        return op

    return AWorkload("audited_create", "audited create", [
        AVariant(RAW + " INSERT + audit INSERT, 1 tx", "raw", raw, baseline=True),
        AVariant(RAW_AUDIT + " (1 statement)", "raw_audit", raw_audit),
        AVariant(WX, "wx", wx),
        AVariant(APG + " INSERT + audit INSERT, 1 tx", "asyncpg", apg),
        AVariant(ORM + " student + audit row + commit", "orm", orm),
    ], w._create_inputs)


def phi_read(env: Env) -> AWorkload:
    """Read one health record by id and record the disclosure."""
    _, health_records, _ = w._wx()
    from wxdata.schema import HEALTH_RECORDS

    fields = HEALTH_RECORDS.column_names

    def inputs(env: Env, n: int) -> list[uuid.UUID]:
        return [env.rng.choice(env.data.record_ids) for _ in range(n)]

    async def raw(c: Clients) -> AsyncOp:
        pool = await c.raw()

        async def op(rid: uuid.UUID) -> Any:
            async with pool.connection() as conn, conn.transaction():
                cur = await conn.execute(w.FETCH_RECORD, (rid,), prepare=True)
                row = await cur.fetchone()
                if row is None:
                    return False
                await conn.execute(w.INSERT_AUDIT, w.audit_tuple(
                    env, "READ", "HealthRecord", row[0], row[1], fields), prepare=True)
                return row
        return op

    async def raw_audit(c: Clients) -> AsyncOp:
        sample = env.data.record_ids[0]
        sql, params = _captured(env, "phi", lambda conn: w._ok(
            health_records.find_by_id(conn, env.ctx, sample)))
        key, pool = w._slot(params, sample), await c.raw()
        return lambda rid: _raw_one(pool, sql, {**params, key: rid})

    async def wx(c: Clients) -> AsyncOp:
        aio, pool, ctx = _wx_aio(), await c.wx(), env.ctx
        find = aio.health_records.find_by_id

        async def op(rid: uuid.UUID) -> bool:
            async with pool.connection() as conn:
                return w._ok(await find(conn, ctx, rid))
        return op

    async def apg(c: Clients) -> AsyncOp:
        pool, sel, aud = await c.apg(), _dollar(w.FETCH_RECORD), _dollar(w.INSERT_AUDIT)

        async def op(rid: uuid.UUID) -> Any:
            async with pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(sel, rid)
                if row is None:
                    return False
                await conn.execute(aud, *w.audit_tuple(env, "READ", "HealthRecord", row[0], row[1],
                                                        fields))
                return row
        return op

    async def orm(c: Clients) -> AsyncOp:
        sessions = await c.orm()

        async def op(rid: uuid.UUID) -> bool:
            async with sessions() as s:
                obj = await s.get(m.HealthRecord, rid)
                if obj is None or obj.deleted_at is not None:
                    return False
                s.add(m.AuditLog(**w.audit_dict(env, "READ", "HealthRecord", obj.id,
                                                obj.student_id, fields)))
                await s.commit()
                return True
        return op

    return AWorkload("phi_read", "PHI read + record", [
        AVariant(RAW + " SELECT + audit INSERT, 1 tx", "raw", raw, baseline=True),
        AVariant(RAW_AUDIT + " (1 statement)", "raw_audit", raw_audit),
        AVariant(WX, "wx", wx),
        AVariant(APG + " SELECT + audit INSERT, 1 tx", "asyncpg", apg),
        AVariant(ORM + " get + audit row + commit", "orm", orm),
    ], inputs)


WORKLOADS: dict[str, Callable[[Env], AWorkload]] = {
    "fetch": fetch_by_id, "page": page_with_total, "create": create,
    "audited_create": audited_create, "phi_read": phi_read,
}
_PLACEHOLDER = re.compile(r"%s")


def _dollar(sql: str) -> str:
    """``%s`` placeholders as asyncpg's ``$1, $2, ...``."""
    counter = iter(range(1, 1000))
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


def wxdata_async_available() -> str | None:
    """Why the wxdata async variants cannot run here (None when they can)."""
    try:
        aio = _wx_aio()
    except ImportError as exc:
        return f"wxdata.aio is not importable ({exc})"
    missing = [name for name in ("students", "health_records") if not hasattr(aio, name)]
    return f"wxdata.aio.domains lacks {', '.join(missing)}" if missing else None


# --- driver --------------------------------------------------------------------------------------


async def _run_async(env: Env, tasks: Sequence[int], keys: Sequence[str],
                     log: Callable[[str], None]) -> list[Result]:
    results: list[Result] = []
    why = wxdata_async_available()
    for size in tasks:
        clients = Clients(env, size)
        try:
            for key in keys:
                wl = WORKLOADS[key](env)
                if why is not None:
                    wl.variants = [v for v in wl.variants if not v.family.startswith("wx")]
                    wl.note = (wl.note + "; " if wl.note else "") + why
                results.extend(await measure_async(env, wl, clients, log=log))
        finally:
            await clients.close()
    return results


def run(env: Env, tasks: Sequence[int] = TASKS, keys: Sequence[str] | None = None, *,
        log: Callable[[str], None] = print) -> list[Result]:
    """The suite hook: every async workload at every task count in ``env``'s configuration."""
    return asyncio.run(_run_async(env, tasks, list(keys or WORKLOADS), log))


TARGETS = (
    ("fetch by id @ 1 task", WX_OFF, RAW, "<=", 1.15,
     "wxdata async (audit off) / raw psycopg async, fetch by id, 1 task"),
    ("fetch by id @ 1 task", WX_OFF_PLAIN, RAW, "<=", 1.15,
     "wxdata async (audit off) on a plain psycopg pool / raw psycopg async, fetch by id, 1 task"),
    ("fetch by id @ 1 task", WX, RAW_AUDIT, "<=", 1.15,
     "wxdata async (audited) / raw psycopg async + the same audit SQL, fetch by id, 1 task"),
    ("fetch by id @ 1 task", ORM, WX, ">=", 3.0,
     "SQLAlchemy AsyncSession ORM / wxdata async (audited), fetch by id, 1 task"),
    ("fetch by id @ 1 task", ORM, WX_OFF, ">=", 3.0,
     "SQLAlchemy AsyncSession ORM / wxdata async (audit off), fetch by id, 1 task"),
    ("fetch by id @ 1 task", ORM, WX_OFF_PLAIN, ">=", 3.0,
     "SQLAlchemy AsyncSession ORM / wxdata async (audit off) on a plain pool, fetch by id, 1 task"),
    ("fetch by id @ 32 tasks", WX_OFF, RAW, "<=", 1.15,
     "wxdata async (audit off) / raw psycopg async, fetch by id, 32 tasks"),
    ("fetch by id @ 32 tasks", WX_OFF_PLAIN, RAW, "<=", 1.15,
     "wxdata async (audit off) on a plain psycopg pool / raw psycopg async, fetch by id, 32 tasks"),
    ("fetch by id @ 32 tasks", ORM, WX, ">=", 3.0,
     "SQLAlchemy AsyncSession ORM / wxdata async (audited), fetch by id, 32 tasks"),
    ("fetch by id @ 32 tasks", ORM, WX_OFF, ">=", 3.0,
     "SQLAlchemy AsyncSession ORM / wxdata async (audit off), fetch by id, 32 tasks"),
    ("fetch by id @ 32 tasks", ORM, WX_OFF_PLAIN, ">=", 3.0,
     "SQLAlchemy AsyncSession ORM / wxdata async (audit off) on a plain pool, fetch by id, 32 tasks"),
)


def report(results: list[Result]) -> str:
    """Markdown: one table per configuration and workload, then the targets with a verdict."""
    finalize(results)
    lines: list[str] = []
    for config in sorted({r.config for r in results}):
        lines.append(f"### Configuration {config}\n")
        lines.append("| workload | variant | median µs/op | min-max | ratio to raw psycopg async |")
        lines.append("|---|---|---|---|---|")
        for r in (x for x in results if x.config == config):
            ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "—"
            lines.append(f"| {r.workload} | {r.variant} | {fmt_us(r.median)} | "
                         f"{fmt_us(r.lo)} - {fmt_us(r.hi)} | {ratio} |")
        lines.append("")
        lines.append("| target | measured | bound | verdict |")
        lines.append("|---|---|---|---|")
        for workload, num, den, op, bound, label in TARGETS:
            a = _pick(results, config, workload, num)
            b = _pick(results, config, workload, den)
            if a is None or b is None:
                lines.append(f"| {label} | not measured | {op} {bound:g} | — |")
                continue
            value = a.median / b.median
            met = value <= bound if op == "<=" else value >= bound
            lines.append(f"| {label} | {value:.2f}x | {op} {bound:g} | {'met' if met else 'MISSED'} |")
        apg_row = _pick(results, config, "fetch by id @ 1 task", APG)
        wx_row = _pick(results, config, "fetch by id @ 1 task", WX_OFF)
        if apg_row is not None and wx_row is not None:
            lines.append(f"| (for the record) asyncpg / wxdata async (audit off), fetch by id, 1 task "
                         f"| {apg_row.median / wx_row.median:.2f}x | — | — |")
        lines.append("")
    return "\n".join(lines)


def _pick(results: list[Result], config: str, workload: str, variant: str) -> Result | None:
    return next((r for r in results if r.config == config and r.workload == workload
                 and r.variant == variant), None)


def options_from(argv: Sequence[str] | None) -> tuple[Options, tuple[int, ...], Path | None, list[str]]:
    """Options of the standalone run, the task counts, the output file and the workload keys."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_async", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=int, default=20_000, help="students to seed (default 20000)")
    p.add_argument("--config", choices=("A", "B", "both"), default="A")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--batch-seconds", type=float, default=0.25)
    p.add_argument("--tasks", default="1,32", help="concurrent task counts (default 1,32)")
    p.add_argument("--only", default=None, help="workloads: " + ",".join(WORKLOADS))
    p.add_argument("--quick", action="store_true", help="2,000 students, 2 repetitions, tiny batches")
    p.add_argument("--database-url", default=None)
    p.add_argument("--no-pin", action="store_true", help=NO_PIN_HELP)
    p.add_argument("--output", type=Path, default=None, help="write the Markdown report here")
    a = p.parse_args(argv)
    o = Options(quick=a.quick)
    o.scale = 2000 if a.quick and a.scale == 20_000 else a.scale
    o.reps = 2 if a.quick and a.reps == 7 else max(1, a.reps)
    o.batch_seconds = 0.02 if a.quick and a.batch_seconds == 0.25 else a.batch_seconds
    o.max_batch = 200 if a.quick else 4000
    o.database_url = a.database_url
    o.pin = not a.no_pin
    o.configs = ("A", "B") if a.config == "both" else (a.config,)
    keys = [k.strip() for k in (a.only or ",".join(WORKLOADS)).split(",") if k.strip()]
    unknown = set(keys) - set(WORKLOADS)
    if unknown:
        p.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    return o, tuple(int(t) for t in a.tasks.split(",") if t.strip()), a.output, keys


def main(argv: Sequence[str] | None = None, *, log: Callable[[str], None] = print) -> list[Result]:
    """Create, seed, measure, report (and write ``--output``), drop; returns the results."""
    from benchmarks.seed import bench_database

    os.environ.setdefault("WXDATA_ENV", "bench")
    options, tasks, output, keys = options_from(argv)
    random.seed(options.seed)
    load_start = os.getloadavg()
    started = datetime.now(UTC)
    results: list[Result] = []
    with bench_database(server_url(options), options, options.scale, 1, log=log) as (db_url, data):
        for config in options.configs:
            with configuration(config, db_url, options, log=log) as (conninfo, _notes):
                env = Env(config, conninfo, options, data)
                try:
                    results.extend(run(env, tasks, keys, log=log))
                finally:
                    env.close()
    load_end = os.getloadavg()
    text = report(results)
    header = "\n".join([
        f"- started {started.isoformat(timespec='seconds')}, {os.cpu_count()} CPUs, "
        f"load average {load_start[0]:.2f} / {load_start[1]:.2f} / {load_start[2]:.2f} at start, "
        f"{load_end[0]:.2f} / {load_end[1]:.2f} / {load_end[2]:.2f} at end (1 / 5 / 15 min)",
        f"- {options.scale} students, {options.reps} interleaved repetitions, task counts "
        f"{', '.join(map(str, tasks))}, configurations {', '.join(options.configs)}",
    ])
    log(header)
    log(text)
    if output is not None:
        output.write_text(header + "\n\n" + text + "\n", encoding="utf-8")
        log(f"wrote {output}")
    return results


if __name__ == "__main__":
    main()
    raise SystemExit(0)
