"""Cache hits vs the database, through ``wxdata.cache.cached``.

``python -m benchmarks.bench_cache [--scale 20000] [--config A|B|both] [--reps 7] [--quick]``

Self-contained: creates, migrates and seeds its own database (benchmarks/seed.py: students over 8
schools, health records), adds 5,000 reference schools sharing one city (so a page + total of
schools has thousands of matching rows), measures, and drops everything; Redis at ``REDIS_URL``
(the Redis variants are skipped with a note when it is unset or unreachable), on a namespace of
its own that is deleted afterwards. The suite (``python -m benchmarks``) also picks this module up
through :func:`run`.

Method: the harness's (benchmarks/common.py) — every variant runs one batch per repetition, the
order rotating between repetitions, inputs prepared outside the clock; figures are the median over
repetitions of the mean µs per operation, with the min-max of those means. Every cached variant is
warmed first, so each timed call is a hit.

Workloads:

1. reference data (schools) by id: raw psycopg prepared fetch (baseline) vs wxdata (uncached) vs
   a memory-tier hit through ``cached`` vs a bare ``cachetools`` lookup of the same entry (the
   floor: the difference is the hit path's own cost) vs a tiered (memory) hit vs a Redis hit;
2. schools page of 20 + total over 5,000 matching rows: raw psycopg (page + count, 2 prepared
   statements) vs wxdata (one statement) vs Redis and memory hits, and ``find_many`` with its
   total from the cache (:mod:`wxdata.cache.totals`: the page's rows read, the total a hit);
3. schools search (ILIKE on the name, page + total): the same variants;
4. PHI read by id with its audit record: wxdata (the record rides in the read's statement) vs
   ``find_by_id`` itself cached: a memory hit + its record (one INSERT), and on Redis the read
   the cache lets through (it does not serve that read from Redis: a hit would cost more); a
   function of one's own over ``find_by_id`` cached on Redis (each call the way measured cheaper:
   a Redis hit + its record, or the read, :mod:`wxdata.cache.costs`); a memory
   hit with the audit off (what the record costs); the floor beside them: a raw psycopg INSERT
   of the same record on the same autocommit connection (durable: one WAL flush, as every variant
   needs);
5. PHI page of 20 + total (students of one school, thousands of rows) with its audit record;
6. async (``wxdata.cache.aio.cached`` on an AsyncConnection): raw prepared fetch vs memory and
   Redis hits vs a hand-written ``redis.asyncio`` GET + AES-GCM decrypt + decode, each one
   coroutine run on the same private event loop.

Workload 1 also holds ``cachetools.cached`` over the same read (the cost a hand-rolled memo would
have) and a hand-written redis-py GET + AES-GCM decrypt + decode of the same rows (a client made
as the cache makes its own); the report prints the ratios of :data:`COMPARISONS`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import random
import threading
import uuid
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import psycopg
from cachetools import TLRUCache
from cachetools import cached as ct_cached
from returns.result import Success

from benchmarks.common import (
    NO_PIN_HELP,
    Env,
    Options,
    Result,
    Variant,
    Workload,
    audit_disabled,
    configuration,
    finalize,
    fmt_us,
    measure,
    server_url,
)

#: wxdata's own by-id read cached on Redis with its reads audited: not served from Redis (a hit
#: would cost a round trip more than the read), so this measures the read the cache lets through.
REDIS_ROW = "cached on redis: find_by_id read, not served from Redis"
#: A function of one's own over find_by_id, keyed by id and cached on Redis: each call takes the
#: way measured cheaper (a Redis hit + its record INSERT, or the read; wxdata.cache.costs).
OWN_REDIS_HIT = "own by-id function cached on redis: the cheaper of hit + INSERT and the read"

#: (workload, variant, compared with, target ratio of medians)
COMPARISONS = (
    ("schools by id (reference data)", "cached: memory hit", "cachetools.cached over find_by_id",
     2.0),
    ("schools by id (reference data)", "cached: redis hit",
     "hand-written redis GET + AES-GCM + decode", 1.10),
    ("PHI student by id, with its audit record", "cached: memory hit + audit INSERT",
     "wxdata find_by_id + riding audit record", 0.6),
    ("PHI student by id, with its audit record", REDIS_ROW,
     "wxdata find_by_id + riding audit record", 0.6),
    ("PHI student by id, with its audit record", "cached: memory hit + audit INSERT",
     "floor: raw psycopg INSERT of the record", 1.15),
    ("PHI student by id, with its audit record", OWN_REDIS_HIT,
     "wxdata find_by_id + riding audit record", 0.6),
    ("schools page of 20 + total (5,000 matching)", "find_many, total from the redis cache",
     "raw psycopg page + count", 1.0),
    ("async: schools by id (reference data)", "async cached: redis hit",
     "async hand-written redis GET + AES-GCM + decode", 1.10),
)
REFERENCE_SCHOOLS = 5000
WARM_IDS = 100
PAGES = 10
TARGETS = (
    ("schools by id (reference data)", "cached: memory hit", 30.0),
    ("schools page of 20 + total (5,000 matching)", "cached: redis hit", 3.0),
)


def _redis_url() -> str | None:
    url = os.environ.get("REDIS_URL")
    if not url:
        return None
    from wxdata.cache.backends.clients import FAULTS, make_client, resolve

    try:
        client = resolve(make_client(url, socket_timeout=1, connect_timeout=1))
        client.ping()
        client.close()
    except FAULTS:
        return None
    return url


class Caches:
    """The backends under test, on a private namespace."""

    def __init__(self, redis_url: str | None) -> None:
        from wxdata.cache import Envelope, KeyBuilder, MemoryCache, RedisCache, TieredCache
        from wxdata.cache import make_client as redis_client
        from wxdata.cache.crypto import key_hash_key

        secret = os.urandom(32)
        self.namespace = f"wxbench-{uuid.uuid4().hex[:10]}"
        self.keys = KeyBuilder(key_hash_key(secret), self.namespace)
        self.memory = MemoryCache(self.keys, max_size=100_000)
        self.redis: Any = None
        self.tiered: Any = None
        self.url = redis_url
        if redis_url is not None:
            # timeouts a loaded test machine keeps within (the library's own fail fast)
            timeouts = {"connect_timeout": 2.0, "socket_timeout": 2.0}
            self.redis = RedisCache(redis_client(redis_url, **timeouts), self.keys,
                                    Envelope(secret))
            self.tiered = TieredCache(MemoryCache(self.keys, max_size=100_000),
                                      RedisCache(redis_client(redis_url, **timeouts),
                                                 self.keys, Envelope(secret)))
            self.tiered.bus.wait_ready(5)

    def close(self) -> None:
        for c in (self.redis, self.tiered):
            if c is not None:
                c.close()
        if self.url is not None:
            from wxdata.cache.backends.clients import make_client, resolve

            client = resolve(make_client(self.url, socket_timeout=5, connect_timeout=5))
            for key in client.scan_iter(match=f"{self.namespace}:*", count=1000):
                client.unlink(key)  # one key at a time: a cluster's keys live in many slots
            client.close()


def _seed_reference(env: Env) -> tuple[str, list[uuid.UUID], list[str]]:
    """5,000 schools in one city (thousands of matching rows); returns (city, ids, name fragments)."""
    conn = env.connection("cache-seed")
    city = f"Benchville {env.tag}"
    district = conn.execute(
        "INSERT INTO districts (name, code) VALUES (%s, %s) RETURNING id",
        (f"Bench district {env.tag}", f"BD-{env.tag}")).fetchone()
    assert district is not None
    words = ("Oak", "Maple", "Cedar", "River", "Hill", "Lake", "Park", "Valley", "Pine", "Summit")
    rows = [(uuid.uuid4(), f"{words[i % 10]} {words[(i // 10) % 10]} School {i}",
             f"BS-{env.tag}-{i:05d}", district[0], city, i % 900 + 100)
            for i in range(REFERENCE_SCHOOLS)]
    with conn.cursor() as cur, cur.copy(
            "COPY schools (id, name, code, district_id, city, total_enrollment) FROM STDIN") as cp:
        for r in rows:
            cp.write_row(r)
    conn.execute("ANALYZE schools")
    return city, [r[0] for r in rows], ["Oak Map", "River", "Lake Pi", "ummit", "Cedar Hill"]


def _drop_reference(env: Env, city: str) -> None:
    conn = env.connection("cache-seed")
    conn.execute("DELETE FROM schools WHERE city = %s", (city,))
    conn.execute("DELETE FROM districts WHERE code = %s", (f"BD-{env.tag}",))


@contextlib.contextmanager
def _audit_on() -> Iterator[None]:
    from wxdata.config import configure, settings

    previous = settings()
    import attrs

    configure(attrs.evolve(previous, audit_enabled=True, audit_phi_access=True))
    try:
        yield
    finally:
        configure(previous)


@contextlib.contextmanager
def _totals_from(cache: Any, entity: Any) -> Iterator[None]:
    """``find_many`` of ``entity`` with its total from ``cache`` (the process cache meanwhile)."""
    from wxdata.cache import cache_totals, configure_cache, reset_default, uncache_totals

    previous = configure_cache(cache, close_previous=False)
    cache_totals(entity)
    try:
        yield
    finally:
        uncache_totals(entity)
        if previous is None:  # none was set: built from settings on next use, as before
            reset_default(close_previous=False)
        else:
            configure_cache(previous, close_previous=False)


def workloads(env: Env, caches: Caches, city: str, school_ids: list[uuid.UUID],
              fragments: list[str]) -> list[Workload]:
    """The cache workloads over the seeded data."""
    from wxdata.cache import by_id, cached, search
    from wxdata.domains import students
    from wxdata.domains.organisation import schools
    from wxdata.schema import SCHOOLS, STUDENTS

    ctx = env.ctx
    n_warm = 10 if env.options.quick else WARM_IDS
    warm = school_ids[:n_warm]
    student_ids = env.data.student_ids[:n_warm]
    school_of_students = env.data.schools[0][0]
    columns = ",".join(f'"{c}"' for c in SCHOOLS.column_names)
    backends: dict[str, Any] = {"memory": caches.memory}
    if caches.redis is not None:
        backends["redis"] = caches.redis
        backends["tiered"] = caches.tiered

    def school_reader(cache: Any) -> Callable[..., Any]:
        @cached(SCHOOLS, key=lambda conn, ctx, sid: by_id(sid), cache=cache,
                name=f"bench.school_by_id.{cache.name}")
        def read(conn: Any, ctx: Any, sid: uuid.UUID) -> Any:
            return schools.find_by_id(conn, ctx, sid)

        return read

    def school_pages(cache: Any) -> Callable[..., Any]:
        @cached(SCHOOLS, cache=cache, name=f"bench.school_pages.{cache.name}")
        def read(conn: Any, ctx: Any, page: int) -> Any:
            return schools.find_many(conn, ctx, {"city": city}, order_by=["name"], page=page)

        return read

    def school_search(cache: Any) -> Callable[..., Any]:
        @cached(SCHOOLS, key=lambda conn, ctx, frag: search(), cache=cache,
                name=f"bench.school_search.{cache.name}")
        def read(conn: Any, ctx: Any, frag: str) -> Any:
            return schools.find_many(conn, ctx, {"name": {"ilike": frag}}, order_by=["name"])

        return read

    def student_reader(cache: Any) -> Callable[..., Any]:
        """wxdata's own by-id read, cached as it is (how a by-id read is cached)."""
        return cached(STUDENTS, cache=cache,
                      name=f"bench.student_by_id.{cache.name}")(students.find_by_id)

    def own_student_reader(cache: Any) -> Callable[..., Any]:
        """A function of one's own over it, keyed by id: the cache measures what it costs."""
        @cached(STUDENTS, key=lambda conn, ctx, sid: by_id(sid), cache=cache,
                name=f"bench.own_student_by_id.{cache.name}")
        def read(conn: Any, ctx: Any, sid: uuid.UUID) -> Any:
            return students.find_by_id(conn, ctx, sid)

        return read

    def student_pages(cache: Any) -> Callable[..., Any]:
        @cached(STUDENTS, cache=cache, name=f"bench.student_pages.{cache.name}")
        def read(conn: Any, ctx: Any, page: int) -> Any:
            return students.find_many(conn, ctx, {"school_id": school_of_students},
                                      order_by=["last_name", "first_name"], page=page)

        return read

    readers = {name: {
        "school": school_reader(c), "pages": school_pages(c), "search": school_search(c),
        "student": student_reader(c), "own_student": own_student_reader(c),
        "student_pages": student_pages(c),
    } for name, c in backends.items()}

    def warmed(kind: str, inputs: list[Any]) -> None:
        with _audit_on():
            for per in readers.values():
                for x in inputs:
                    per[kind](env.wx, ctx, x).unwrap()

    warmed("school", warm)
    pages = list(range(1, (3 if env.options.quick else PAGES) + 1))
    warmed("pages", pages)
    warmed("search", fragments)
    warmed("student", student_ids)
    warmed("own_student", student_ids)
    warmed("student_pages", pages)

    def pick(values: list[Any]) -> Callable[[Env, int], list[Any]]:
        def inputs(env: Env, n: int) -> list[Any]:
            return [env.rng.choice(values) for _ in range(n)]

        return inputs

    def via(kind: str, backend: str) -> Callable[[Env], Callable[[Any], object]]:
        def make(env: Env) -> Callable[[Any], object]:
            fn = readers[backend][kind]
            conn = env.wx
            return lambda x: fn(conn, ctx, x)

        return make

    def raw_school(env: Env) -> Callable[[Any], object]:
        cur = env.raw.cursor()
        sql = f"SELECT {columns} FROM schools WHERE id = %s"
        return lambda x: cur.execute(sql, (x,), prepare=True).fetchone()

    def bare_lookup(env: Env) -> Callable[[Any], object]:
        """The floor of a memory hit: one TLRUCache lookup of a precomputed key, under a lock."""
        cache: TLRUCache[str, Any] = TLRUCache(100_000, lambda k, v, now: now + 86400)
        lock = threading.Lock()
        found = readers["memory"]["school"]
        by_sid: dict[Any, str] = {}
        for sid in warm:
            by_sid[sid] = f"white-cross:school:{sid}:{uuid.uuid4().hex}{uuid.uuid4().hex}"
            cache[by_sid[sid]] = found(env.wx, ctx, sid)

        def op(x: Any) -> object:
            with lock:
                return cache[by_sid[x]]

        return op

    def raw_page(where_sql: str, order: str, param: Callable[[Any], Any]) -> Callable[
            [Env], Callable[[Any], object]]:
        def make(env: Env) -> Callable[[Any], object]:
            cur = env.raw.cursor()
            page_sql = (f"SELECT {columns} FROM schools WHERE {where_sql} ORDER BY {order} "
                        "LIMIT 20 OFFSET %s")
            count_sql = f"SELECT count(*) FROM schools WHERE {where_sql}"

            def op(x: Any) -> object:
                value, offset = param(x)
                rows = cur.execute(page_sql, (value, offset), prepare=True).fetchall()
                total = cur.execute(count_sql, (value,), prepare=True).fetchone()
                return rows and total

            return op

        return make

    def uncached(fn: Callable[..., Any]) -> Callable[[Env], Callable[[Any], object]]:
        def make(env: Env) -> Callable[[Any], object]:
            conn = env.wx
            return lambda x: fn(conn, ctx, x)

        return make

    def cachetools_cached(env: Env) -> Callable[[Any], object]:
        """``cachetools.cached`` over the same read: a TLRU cache under a lock, keyed by id."""
        store: TLRUCache[Any, Any] = TLRUCache(100_000, lambda k, v, now: now + 86400)
        read = ct_cached(store, key=lambda conn, ctx, sid: sid, lock=threading.Lock())(
            lambda conn, ctx, sid: schools.find_by_id(conn, ctx, sid))
        conn = env.wx
        for sid in warm:
            read(conn, ctx, sid)
        return lambda x: read(conn, ctx, x)

    def hand_written_redis(env: Env) -> Callable[[Any], object]:
        """redis-py GET + AES-GCM decrypt + deserialise of the same rows, by hand: a client made
        as the cache makes its own (same timeouts), the value sealed with the Redis key as AAD."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        from wxdata.cache.backends.clients import make_client, resolve
        from wxdata.cache.serde import dumps, loads

        client = resolve(make_client(caches.url or "", connect_timeout=2.0, socket_timeout=2.0))
        aead = AESGCM(os.urandom(32))
        found = readers["memory"]["school"]
        names: dict[Any, tuple[str, bytes]] = {}
        for sid in warm:
            name = f"{caches.namespace}:hand:{sid}"
            nonce = os.urandom(12)
            value = found(env.wx, ctx, sid).unwrap()
            client.set(name, nonce + aead.encrypt(nonce, dumps(value), name.encode()), ex=3600)
            names[sid] = (name, name.encode())
        env.on_close(client.close)

        def op(x: Any) -> object:
            name, aad = names[x]
            blob = client.get(name)
            return Success(loads(aead.decrypt(blob[:12], blob[12:], aad)))

        return op

    redis_variants = caches.redis is not None
    out: list[Workload] = []

    v1 = [
        Variant("raw psycopg prepared fetch", "raw", raw_school, baseline=True),
        Variant("wxdata find_by_id (uncached)", "wxdata",
                uncached(lambda c, x, sid: schools.find_by_id(c, x, sid))),
        Variant("cached: memory hit", "cache", via("school", "memory")),
        Variant("bare cachetools lookup (floor)", "floor", bare_lookup),
        Variant("cachetools.cached over find_by_id", "floor", cachetools_cached),
    ]
    if redis_variants:
        v1 += [Variant("cached: tiered (memory tier) hit", "cache", via("school", "tiered")),
               Variant("cached: redis hit", "cache", via("school", "redis")),
               Variant("hand-written redis GET + AES-GCM + decode", "floor",
                       hand_written_redis)]
    out.append(Workload("cache-school", "schools by id (reference data)", v1, pick(warm)))

    v2 = [
        Variant("raw psycopg page + count", "raw",
                raw_page("city = %s", "name, id", lambda p: (city, (p - 1) * 20)), baseline=True),
        Variant("wxdata find_many (uncached)", "wxdata", uncached(
            lambda c, x, p: schools.find_many(c, x, {"city": city}, order_by=["name"], page=p))),
        Variant("cached: memory hit", "cache", via("pages", "memory")),
    ]
    if redis_variants:
        v2.append(Variant("cached: redis hit", "cache", via("pages", "redis")))
    totals = [("memory", caches.memory)] + ([("redis", caches.redis)] if redis_variants else [])
    for label, backend in totals:
        with _totals_from(backend, SCHOOLS):  # warm: each page's filter has one total entry
            for p in pages:
                schools.find_many(env.wx, ctx, {"city": city}, order_by=["name"], page=p).unwrap()
        v2.append(Variant(
            f"find_many, total from the {label} cache", "cache",
            uncached(lambda c, x, p: schools.find_many(c, x, {"city": city}, order_by=["name"],
                                                       page=p)),
            around=functools.partial(_totals_from, backend, SCHOOLS)))
    out.append(Workload("cache-pages", "schools page of 20 + total (5,000 matching)", v2,
                        pick(pages)))

    v3 = [
        Variant("raw psycopg ILIKE page + count", "raw",
                raw_page("name ILIKE %s", "name, id", lambda f: (f"%{f}%", 0)), baseline=True),
        Variant("wxdata find_many ilike (uncached)", "wxdata", uncached(
            lambda c, x, f: schools.find_many(c, x, {"name": {"ilike": f}}, order_by=["name"]))),
        Variant("cached: memory hit", "cache", via("search", "memory")),
    ]
    if redis_variants:
        v3.append(Variant("cached: redis hit", "cache", via("search", "redis")))
    out.append(Workload("cache-search", "schools search ILIKE, page + total", v3, pick(fragments)))

    def raw_record_insert(env: Env) -> Callable[[Any], object]:
        """The floor of a PHI hit's record: the statement a hit sends for each student (the same
        READ record, built as a hit builds it, before the clock starts), sent by raw psycopg as
        one prepared INSERT on the same autocommit connection (durable before it returns)."""
        from wxdata.cache.core import hit_record

        statements = {}
        with _audit_on():
            for sid in student_ids:
                row = readers["memory"]["student"](env.wx, ctx, sid).unwrap()
                due = hit_record(ctx, STUDENTS, row, "bench.student_by_id")
                if due is None:
                    raise RuntimeError("no record is due: is the audit on?")
                statements[sid] = due.insert()
        cur = env.wx.cursor()

        def op(x: Any) -> object:
            cur.execute(*statements[x], prepare=True)
            return cur.rowcount == 1

        return op

    v4 = [
        Variant("floor: raw psycopg INSERT of the record", "floor", raw_record_insert,
                around=_audit_on),
        Variant("wxdata find_by_id + riding audit record", "wxdata",
                uncached(lambda c, x, sid: students.find_by_id(c, x, sid)), baseline=True,
                around=_audit_on),
        Variant("cached: memory hit + audit INSERT", "cache", via("student", "memory"),
                around=_audit_on),
        Variant("cached: memory hit, AUDIT_ENABLED=false", "cache", via("student", "memory"),
                around=audit_disabled),
    ]
    if redis_variants:
        v4.append(Variant(REDIS_ROW, "cache", via("student", "redis"), around=_audit_on))
        v4.append(Variant(OWN_REDIS_HIT, "cache", via("own_student", "redis"), around=_audit_on))
    out.append(Workload("cache-phi", "PHI student by id, with its audit record", v4,
                        pick(student_ids)))

    v5 = [
        Variant("wxdata find_many + riding audit record", "wxdata", uncached(
            lambda c, x, p: students.find_many(c, x, {"school_id": school_of_students},
                                               order_by=["last_name", "first_name"], page=p)),
                baseline=True, around=_audit_on),
        Variant("cached: memory hit + audit INSERT", "cache", via("student_pages", "memory"),
                around=_audit_on),
    ]
    if redis_variants:
        v5.append(Variant("cached: redis hit + audit INSERT", "cache",
                          via("student_pages", "redis"), around=_audit_on))
    out.append(Workload("cache-phi-page", "PHI students page of 20 + total, with audit", v5,
                        pick(pages)))
    return out


def async_workload(env: Env, caches: Caches, warm: list[uuid.UUID]) -> Workload:
    """Reference rows by id from ``async def`` code: every variant is one coroutine run to
    completion on the same private event loop (the loop's own cost is in every figure)."""
    import asyncio

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from wxdata import aio
    from wxdata.aio import crud as acrud
    from wxdata.cache import aio as acache
    from wxdata.cache.backends.aio import AsyncMemoryCache, AsyncRedisCache
    from wxdata.cache.backends.clients import make_async_client
    from wxdata.cache.keys import by_id
    from wxdata.cache.serde import dumps, loads
    from wxdata.schema import SCHOOLS

    ctx = env.ctx
    loop = asyncio.new_event_loop()
    aconn = loop.run_until_complete(aio.connect(env.conninfo))
    columns = ",".join(f'"{c}"' for c in SCHOOLS.column_names)
    clients: list[Any] = []

    def closing() -> None:
        for c in clients:
            loop.run_until_complete(c.aclose())
        loop.run_until_complete(aconn.close())
        loop.close()

    env.on_close(closing)
    backends: dict[str, Any] = {"memory": AsyncMemoryCache(caches.memory)}
    if caches.redis is not None:
        client = make_async_client(caches.url or "", connect_timeout=2.0, socket_timeout=2.0)
        clients.append(client)
        backends["redis"] = AsyncRedisCache(caches.redis, client)

    def reader(cache: Any) -> Callable[..., Any]:
        @acache.cached(SCHOOLS, key=lambda conn, ctx, sid: by_id(sid), cache=cache,
                       name=f"bench.async_school_by_id.{cache.name}")
        async def read(conn: Any, ctx: Any, sid: uuid.UUID) -> Any:
            return await acrud.find_by_id(conn, ctx, SCHOOLS, sid)

        return read

    readers = {name: reader(c) for name, c in backends.items()}
    for read in readers.values():
        for sid in warm:
            loop.run_until_complete(read(aconn, ctx, sid)).unwrap()

    def via(name: str) -> Callable[[Env], Callable[[Any], object]]:
        def make(env: Env) -> Callable[[Any], object]:
            read = readers[name]
            return lambda x: loop.run_until_complete(read(aconn, ctx, x))

        return make

    def raw_fetch(env: Env) -> Callable[[Any], object]:
        sql = f"SELECT {columns} FROM schools WHERE id = %s"

        async def fetch(x: Any) -> Any:
            cur = await aconn.execute(sql, (x,), prepare=True)
            return await cur.fetchone()

        return lambda x: loop.run_until_complete(fetch(x))

    def hand_written(env: Env) -> Callable[[Any], object]:
        client = make_async_client(caches.url or "", connect_timeout=2.0, socket_timeout=2.0)
        clients.append(client)
        aead = AESGCM(os.urandom(32))
        names: dict[Any, tuple[str, bytes]] = {}

        async def seed() -> None:
            for sid in warm:
                name = f"{caches.namespace}:ahand:{sid}"
                value = (await readers["memory"](aconn, ctx, sid)).unwrap()
                nonce = os.urandom(12)
                await client.set(name, nonce + aead.encrypt(nonce, dumps(value), name.encode()),
                                 ex=3600)
                names[sid] = (name, name.encode())

        loop.run_until_complete(seed())

        async def get(x: Any) -> Any:
            name, aad = names[x]
            blob = await client.get(name)
            return Success(loads(aead.decrypt(blob[:12], blob[12:], aad)))

        return lambda x: loop.run_until_complete(get(x))

    variants = [
        Variant("async raw psycopg prepared fetch", "raw", raw_fetch, baseline=True),
        Variant("async cached: memory hit", "cache", via("memory")),
    ]
    if "redis" in backends:
        variants += [
            Variant("async cached: redis hit", "cache", via("redis")),
            Variant("async hand-written redis GET + AES-GCM + decode", "floor", hand_written),
        ]

    def inputs(env: Env, n: int) -> list[Any]:
        return [env.rng.choice(warm) for _ in range(n)]

    return Workload("cache-async", "async: schools by id (reference data)", variants, inputs)


def run(env: Env) -> list[Result]:
    """The suite hook: measure every cache workload in ``env``'s configuration."""
    redis_url = _redis_url()
    caches = Caches(redis_url)
    city, ids, fragments = _seed_reference(env)
    try:
        results: list[Result] = []
        for wl in workloads(env, caches, city, ids, fragments):
            results.extend(measure(env, wl))
        with audit_disabled():
            warm = ids[:10 if env.options.quick else WARM_IDS]
            async_wl = async_workload(env, caches, warm)
        results.extend(measure(env, async_wl))
        for name in ("redis", "tiered"):
            backend = getattr(caches, name)
            if backend is not None:  # a "hit" that was a fault is a database read: say so
                t = backend.stats().total
                print(f"  [{env.config}] {name} backend: hits {t.hits} (redis {t.hits_redis}), "
                      f"misses {t.misses}, errors {t.errors}, unavailable {t.unavailable}")
        for r in results:  # section stays "main": the suite files it under extra:bench_cache
            if redis_url is None:
                r.extra["note"] = "REDIS_URL unset or unreachable: Redis variants skipped"
        return results
    finally:
        caches.close()
        _drop_reference(env, city)


def micro(repeat: int = 5, number: int = 200_000) -> dict[str, float]:
    """Hit-path pieces timed in a tight loop (best of ``repeat``, µs per call), no database."""
    import timeit

    timed, check = hit_paths()
    out = {name: min(timeit.repeat(fn, repeat=repeat, number=number)) / number * 1e6
           for name, fn in timed.items()}
    check()
    return out


def hit_paths() -> tuple[dict[str, Callable[[], Any]], Callable[[], None]]:
    """The hit-path pieces :func:`micro` times, and a check that every decorator call was a hit.

    The harness's per-operation overhead (~1 µs) is in every figure of the workloads above; these
    isolate the cache's own cost: a bare ``TLRUCache`` lookup under a lock (the floor), the memory
    backend's lookup, a complete ``cached`` hit on a non-PHI entity (key memo, scope check,
    lookup, prebuilt ``Success``), and the Python cost of a Redis hit against a hand-written
    GET + AES-GCM decrypt + decode, both on an in-process stand-in for the client; and the
    client work of a PHI hit's disclosure record (its statement and parameters) from the shared
    template against the same record built in full.
    """
    from returns.result import Success

    from wxdata import ExecutionContext, Role, _connstate
    from wxdata.cache import KeyBuilder, MemoryCache, by_id, cached
    from wxdata.schema import SCHOOLS

    class NoConnection:
        """A hit sends nothing; the connection's role is known as an application role's (not
        privileged), as after wxdata's one-off probe of a real connection, and it is between
        transactions, as an autocommit connection is between calls."""

        pgconn = SimpleNamespace(transaction_status=psycopg.pq.TransactionStatus.IDLE)

    sid = uuid.uuid4()
    mem = MemoryCache(KeyBuilder(os.urandom(32)), max_size=1000)
    tlru: TLRUCache[str, Any] = TLRUCache(1000, lambda k, v, now: now + 3600)
    lock = threading.Lock()
    tlru["k"] = ("row",)
    mem.set("k", ("row",), entity="School")
    ctx = ExecutionContext(user_id="u-bench", role=Role.NURSE)
    conn: Any = NoConnection()
    _connstate.of(conn).role = _connstate.RoleFacts(privileged=False, fingerprint=None,
                                                    migrated=True)
    calls = [0]

    @cached(SCHOOLS, key=lambda conn, ctx, sid: by_id(sid), cache=mem, name="bench.micro",
             unkeyed=("calls",))
    def stub(conn: Any, ctx: Any, sid: uuid.UUID) -> Any:
        calls[0] += 1
        return Success(("row",))

    stub(conn, ctx, sid)  # the one miss: fills the entry

    def bare() -> Any:
        with lock:
            return tlru["k"]

    store: TLRUCache[Any, Any] = TLRUCache(1000, lambda k, v, now: now + 3600)
    memo = ct_cached(store, key=lambda conn, ctx, sid: sid, lock=threading.Lock())(
        lambda conn, ctx, sid: Success(("row",)))
    memo(conn, ctx, sid)

    class InProcessRedis:
        """A stand-in for a Redis client answering from a dict: what is left is the Python cost
        of a Redis hit (the network round trip is the same for both variants timed with it)."""

        def __init__(self) -> None:
            self.data: dict[str, bytes] = {}

        def get(self, key: str) -> bytes | None:
            return self.data.get(key)

        def evalsha(self, sha: str, n: int, *keys_args: Any) -> int:
            self.data[keys_args[0]] = keys_args[n + 2]  # the guarded fill's entry (no tags here)
            return 1

        def close(self) -> None:
            """Nothing to release."""

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from wxdata.cache import Envelope, RedisCache
    from wxdata.cache.serde import dumps, loads

    secret = os.urandom(32)
    fake = InProcessRedis()
    red = RedisCache(fake, KeyBuilder(os.urandom(32), "wxmicro"), Envelope(secret))

    @cached(SCHOOLS, key=lambda conn, ctx, sid: by_id(sid), cache=red, name="bench.micro.redis",
             unkeyed=("calls",))
    def stub_redis(conn: Any, ctx: Any, sid: uuid.UUID) -> Any:
        calls[0] += 1
        return Success(("row",))

    stub_redis(conn, ctx, sid)  # the one miss: fills the entry
    aead = AESGCM(os.urandom(32))
    nonce = os.urandom(12)
    fake.data["hand"] = nonce + aead.encrypt(nonce, dumps(("row",)), b"hand")

    def hand() -> Any:
        blob = fake.get("hand")
        assert blob is not None
        return Success(loads(aead.decrypt(blob[:12], blob[12:], b"hand")))

    from wxdata.audit.decorator import extract
    from wxdata.audit.log import build_record
    from wxdata.audit.record import AuditAction
    from wxdata.audit.sql import positional, record_insert
    from wxdata.cache.core import hit_record
    from wxdata.schema import STUDENTS

    student = STUDENTS.row_type(**{**dict.fromkeys(STUDENTS.column_names), "id": uuid.uuid4()})

    def phi_record() -> Any:
        due = hit_record(ctx, STUDENTS, student, "bench.micro")
        if due is None:
            raise RuntimeError("no record is due: is the audit on?")
        return due.insert()

    def phi_record_in_full() -> Any:  # what a hit did before its record had a template
        found = extract(STUDENTS, [student])
        return positional(*record_insert(ctx, build_record(
            ctx, STUDENTS, AuditAction.READ, ids=found.ids, subjects=found.subjects,
            fields=found.fields, metadata={"cache": "hit", "operation": "bench.micro"})))

    if phi_record() != phi_record_in_full():
        raise RuntimeError("the templated record is not the record built in full")

    timed = {
        "bare TLRUCache lookup under a lock (floor)": bare,
        "MemoryCache.lookup": lambda: mem.lookup("k", "School", False),
        "cached() hit, non-PHI entity": lambda: stub(conn, ctx, sid),
        "cachetools.cached hit over the same stub": lambda: memo(conn, ctx, sid),
        "in-process Redis stand-in: hand-written GET + AES-GCM + decode": hand,
        "in-process Redis stand-in: cached() hit": lambda: stub_redis(conn, ctx, sid),
        "PHI hit's disclosure record and its INSERT (template)": phi_record,
        "the same record built in full (walk, build_record, record_insert)": phi_record_in_full,
    }

    def check() -> None:
        if calls[0] != 2:
            raise RuntimeError("the timed decorator calls were not all hits")

    return timed, check


def hit_loop(name: str, calls: int) -> None:
    """Run one piece of :func:`hit_paths` ``calls`` times (for instruction counts under
    ``valgrind --tool=callgrind``: the difference between two call counts is the per-call cost,
    deterministic under any load)."""
    timed, check = hit_paths()
    matching = [fn for label, fn in timed.items() if name in label]
    if len(matching) != 1:
        raise SystemExit(f"--hit-loop: name one of {sorted(timed)} (a unique part of it)")
    fn = matching[0]
    for _ in range(calls):
        fn()
    check()


def report(results: list[Result]) -> str:
    """A plain-text summary: every variant with median, min-max and ratio, then the targets."""
    finalize(results)
    lines = []
    for config in sorted({r.config for r in results}):
        lines.append(f"\nconfiguration {config}")
        for workload in dict.fromkeys(r.workload for r in results if r.config == config):
            lines.append(f"  {workload}")
            group = [r for r in results if r.config == config and r.workload == workload]
            for r in group:
                ratio = f"{r.ratio:6.3f}x" if r.ratio is not None else "   -   "
                speed = f"{1 / r.ratio:7.1f}x faster" if r.ratio else ""
                lines.append(f"    {r.variant:<44} {fmt_us(r.median):>10} "
                             f"({fmt_us(r.lo)} - {fmt_us(r.hi)})  {ratio} {speed}")
        floor = next((r for r in results if r.config == config and r.family == "floor"), None)
        hit = next((r for r in results if r.config == config and
                    r.workload == "schools by id (reference data)" and
                    r.variant == "cached: memory hit"), None)
        if floor and hit:
            lines.append(f"  hit-path overhead over a bare cachetools lookup: "
                         f"{hit.median - floor.median:.2f} µs ({hit.median / floor.median:.1f}x)")
        for workload, variant, versus, target in COMPARISONS:
            a = next((x for x in results if x.config == config and x.workload == workload
                      and x.variant == variant), None)
            b = next((x for x in results if x.config == config and x.workload == workload
                      and x.variant == versus), None)
            if a is not None and b is not None:
                ok = "met" if a.median <= target * b.median else "NOT met"
                lines.append(f"  {variant} / {versus}: {a.median / b.median:.2f}x "
                             f"(target <= {target:.2f}x: {ok})")
        for workload, variant, target in TARGETS:
            r = next((x for x in results if x.config == config and x.workload == workload
                      and x.variant == variant), None)
            if r is not None and r.ratio:
                ok = "met" if 1 / r.ratio >= target else "NOT met"
                lines.append(f"  target {variant} >= {target:.0f}x faster than "
                             f"{workload.split(' (')[0]} baseline: {1 / r.ratio:.1f}x ({ok})")
    return "\n".join(lines)


def measure_all(db_url: str, data: Any, options: Options) -> list[Result]:
    """Every cache workload in each configuration of ``options`` on a seeded database."""
    results: list[Result] = []
    for config in options.configs:
        with configuration(config, db_url, options) as (conninfo, notes):
            for note in notes:
                print(f"{config}: {note}")
            env = Env(config, conninfo, options, data)
            try:
                results.extend(run(env))
            finally:
                env.close()
    return results


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_cache", description=__doc__)
    p.add_argument("--scale", type=int, default=20_000, help="students to seed (default 20000)")
    p.add_argument("--config", choices=("A", "B", "both"), default="A")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--batch-seconds", type=float, default=0.2)
    p.add_argument("--quick", action="store_true", help="2,000 students, 2 repetitions")
    p.add_argument("--database-url", default=None)
    p.add_argument("--no-pin", action="store_true", help=NO_PIN_HELP)
    p.add_argument("--hit-loop", default=None, metavar="PIECE",
                   help="only run one hit-path piece (e.g. 'stand-in: cached') --calls times")
    p.add_argument("--calls", type=int, default=10_000)
    return p


def options_from(argv: list[str] | None) -> Options:
    """Options of the standalone run."""
    a = _parser().parse_args(argv)
    options = Options(quick=a.quick)
    options.scale = 2000 if a.quick and a.scale == 20_000 else a.scale
    options.reps = 2 if a.quick and a.reps == 7 else a.reps
    options.batch_seconds = 0.02 if a.quick and a.batch_seconds == 0.2 else a.batch_seconds
    options.database_url = a.database_url
    options.pin = not a.no_pin
    options.configs = ("A", "B") if a.config == "both" else (a.config,)
    return options


def main(argv: list[str] | None = None) -> int:
    """Create, seed, measure, report, drop."""
    from benchmarks.seed import bench_database

    os.environ.setdefault("WXDATA_ENV", "bench")
    loop_only = _parser().parse_args(argv)
    if loop_only.hit_loop is not None:
        hit_loop(loop_only.hit_loop, loop_only.calls)
        return 0
    options = options_from(argv)
    random.seed(options.seed)
    with bench_database(server_url(options), options, options.scale, 1) as (db_url, data):
        results = measure_all(db_url, data, options)
    print(report(results))
    print("\nhit path in a tight loop (best of 5, µs per call, no harness overhead):")
    for name, us in micro(number=20_000 if options.quick else 200_000).items():
        print(f"  {name:<64} {us:6.3f} µs")
    if _redis_url() is None:
        print("\nREDIS_URL unset or unreachable: Redis variants were skipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
