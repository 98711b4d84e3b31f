"""Helpers shared by the cache tests (no tests here): backends on private namespaces, cleanup."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg import sql

from wxdata.cache.backends.clients import resolve
from wxdata.cache.backends.memory import MemoryCache
from wxdata.cache.backends.redis import CircuitBreaker, RedisCache, make_client
from wxdata.cache.backends.tiered import TieredCache
from wxdata.cache.crypto import Envelope, key_hash_key
from wxdata.cache.keys import KeyBuilder

SECRET = os.urandom(32)


def prefix() -> str:
    """A namespace of one test (shared Redis stays clean of other tests' keys)."""
    return f"wxt-{uuid.uuid4().hex[:12]}"


def keys(namespace: str = "white-cross", secret: bytes = SECRET) -> KeyBuilder:
    """A key builder keyed like a configured process."""
    return KeyBuilder(key_hash_key(secret), namespace)


def memory(max_size: int = 1000, **kw: Any) -> MemoryCache:
    """A memory backend."""
    return MemoryCache(keys(), max_size=max_size, **kw)


@contextlib.contextmanager
def heard(cache: Any) -> Iterator[Any]:
    """``cache`` subscribed to write events (invalidated after every commit) while inside."""
    from wxdata.cache.invalidation import subscribe, unsubscribe

    subscribe(cache)
    try:
        yield cache
    finally:
        unsubscribe(cache)


def redis_backend(url: str, namespace: str, *, encrypt: bool = True, secret: bytes = SECRET,
                  breaker: CircuitBreaker | None = None, timeout: float = 0.25) -> RedisCache:
    """A Redis backend on its own namespace."""
    client = make_client(url, connect_timeout=timeout, socket_timeout=timeout)
    return RedisCache(client, keys(namespace, secret), Envelope(secret, encrypt=encrypt),
                      breaker=breaker or CircuitBreaker(cooldown=0.05, max_cooldown=0.2))


def tiered(url: str, namespace: str, *, lease: float = 1.0, ping_every: float = 0.05,
           breaker: CircuitBreaker | None = None, timeout: float = 0.25,
           wait: bool = True) -> TieredCache:
    """A two-tier cache (a simulated application process) with its own memory tier."""
    cache = TieredCache(MemoryCache(keys(namespace), max_size=1000),
                        redis_backend(url, namespace, breaker=breaker, timeout=timeout),
                        lease=lease, ping_every=ping_every)
    if wait:
        assert cache.bus.wait_ready(5), "bus never got its first lease"
    return cache


def raw_client(url: str) -> Any:
    """A plain redis-py client of any topology's URL (a cluster client scans every primary)."""
    return resolve(make_client(url, connect_timeout=2.0, socket_timeout=2.0))


def all_keys(url: str, pattern: str) -> list[bytes]:
    """Every key matching ``pattern`` on every primary of the topology."""
    client = raw_client(url)
    try:
        return list(client.scan_iter(match=pattern, count=1000))
    finally:
        client.close()


def wipe(url: str, namespace: str) -> None:
    """Delete every key of a namespace (SCAN, every primary)."""
    client = raw_client(url)
    try:
        for key in client.scan_iter(match=f"{namespace}:*", count=1000):
            client.unlink(key)
    finally:
        client.close()


@contextlib.contextmanager
def records_refused(admin_conn: psycopg.Connection[Any], request_id: str) -> Iterator[None]:
    """Inside the block PostgreSQL refuses to store any audit record of ``request_id`` (a
    trigger raising on its INSERT), wherever it is written from; dropped on leaving."""
    fn = f"wxdata_test_refuse_{uuid.uuid4().hex[:8]}"
    admin_conn.execute(sql.SQL(
        "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'refused'; END $$").format(sql.Identifier(fn)))
    admin_conn.execute(sql.SQL(
        "CREATE TRIGGER {} BEFORE INSERT ON audit_log FOR EACH ROW "
        "WHEN (NEW.request_id = {}) EXECUTE FUNCTION {}()").format(
            sql.Identifier(fn), sql.Literal(request_id), sql.Identifier(fn)))
    try:
        yield
    finally:
        admin_conn.execute(sql.SQL("DROP TRIGGER {} ON audit_log").format(sql.Identifier(fn)))
        admin_conn.execute(sql.SQL("DROP FUNCTION {}()").format(sql.Identifier(fn)))


def audit_rows(conn: psycopg.Connection[Any], request_id: str | None,
               entity: str | None = None) -> list[tuple[Any, ...]]:
    """(action, metadata, entity_ids, subject_ids) of one request's audit records, in order."""
    return conn.execute(
        "SELECT action, metadata, entity_ids, subject_ids FROM audit_log "
        "WHERE request_id = %s AND (%s::text IS NULL OR entity_type = %s) "
        "ORDER BY created_at, id",
        (request_id, entity, entity),
    ).fetchall()


def cache_hits(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The records of cache hits among audit rows."""
    return [r for r in rows if r[1] and r[1].get("cache") == "hit"]


def reader(cache: Any) -> tuple[Callable[..., Any], list[int]]:
    """A cached by-id read of students on ``cache``, counting the calls that reached PostgreSQL."""
    from wxdata.cache import by_id, cached
    from wxdata.domains import students
    from wxdata.schema import STUDENTS

    calls = [0]

    @cached(STUDENTS, key=lambda conn, ctx, sid: by_id(sid), cache=cache, unkeyed=("calls",))
    def get(conn: psycopg.Connection[Any], ctx: Any, sid: Any) -> Any:
        calls[0] += 1
        return students.find_by_id(conn, ctx, sid)

    return get, calls


def poll(condition: Callable[[], bool], attempts: int = 600, pause: float = 0.025) -> bool:
    """Bounded wait for a condition (never a timing assertion)."""
    for _ in range(attempts):
        if condition():
            return True
        time.sleep(pause)
    return False
