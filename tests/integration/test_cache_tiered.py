"""Two tiers across simulated processes: invalidation reaches every memory tier; no PHI in Redis."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import redis
from returns.result import Result

from tests.cache_support import prefix, tiered, wipe
from wxdata import ExecutionContext, crud
from wxdata.cache import by_id, cached, search, summary
from wxdata.cache.backends.tiered import TieredCache
from wxdata.cache.invalidation import subscribe, unsubscribe
from wxdata.domains import health_records, students
from wxdata.errors import DataError
from wxdata.query.paging import Page
from wxdata.schema import HEALTH_RECORDS, STUDENTS

Conn = psycopg.Connection[Any]


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    ns = prefix()
    yield ns
    wipe(redis_url, ns)


@pytest.fixture
def pair(redis_url: str, namespace: str) -> Iterator[tuple[TieredCache, TieredCache]]:
    a, b = tiered(redis_url, namespace), tiered(redis_url, namespace)
    yield a, b
    a.close()
    b.close()


def reader(cache: TieredCache) -> Any:
    @cached(STUDENTS, key=lambda conn, ctx, sid: by_id(sid), cache=cache)
    def get(conn: Conn, ctx: ExecutionContext, sid: Any) -> Result[Any, DataError]:
        return students.find_by_id(conn, ctx, sid)

    return get


def test_a_write_in_one_process_reaches_the_other_memory_tier(
        db_url: str, conn: Conn, ctx: ExecutionContext, pair: tuple[TieredCache, TieredCache],
        make_student: Any) -> None:
    a, b = pair
    subscribe(a)  # only process A sees its own write events; B learns through Redis pub/sub
    try:
        s = make_student(grade="5")
        read_a, read_b = reader(a), reader(b)
        with psycopg.connect(db_url, autocommit=True) as conn_b:
            assert read_b(conn_b, ctx, s.id).unwrap().grade == "5"  # DB -> Redis + B memory
            assert read_b(conn_b, ctx, s.id).unwrap().grade == "5"  # B memory
            assert b.memory.stats().total.hits_memory == 1
            assert read_a(conn, ctx, s.id).unwrap().grade == "5"  # Redis hit, promoted in A
            assert a.redis.stats().total.hits_redis == 1
            students.update(conn, ctx, s.id, {"grade": "6"})  # returns after B acknowledged
            assert read_b(conn_b, ctx, s.id).unwrap().grade == "6"
            assert read_a(conn, ctx, s.id).unwrap().grade == "6"
        assert a.bus.timeouts == 0
    finally:
        unsubscribe(a)


def test_memory_tier_is_bypassed_without_a_lease(db_url: str, conn: Conn, ctx: ExecutionContext,
                                                 pair: tuple[TieredCache, TieredCache],
                                                 make_student: Any) -> None:
    a, _ = pair
    s = make_student()
    read = reader(a)
    read(conn, ctx, s.id)
    read(conn, ctx, s.id)
    assert a.memory.stats().total.hits_memory == 1
    a.bus.close()  # the subscription is gone: this process could miss invalidations
    assert not a.bus.lease_valid()
    read(conn, ctx, s.id)
    assert a.memory.stats().total.hits_memory == 1  # served by Redis instead
    assert a.redis.stats().total.hits_redis == 1


def test_redis_holds_no_phi_in_clear_after_a_phi_workload(
        db_url: str, redis_url: str, namespace: str, conn: Conn, ctx: ExecutionContext,
        make_student: Any) -> None:
    """Scan every key and value (and every pub/sub message) after caching students and records."""
    cache = tiered(redis_url, namespace)
    subscribe(cache)
    messages: list[bytes] = []
    listener = redis.Redis.from_url(redis_url).pubsub()
    listener.psubscribe(f"{namespace}:*")
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            msg = listener.get_message(timeout=0.05)
            if msg and msg["type"] == "pmessage":
                messages.append(msg["data"])

    thread = threading.Thread(target=listen)
    thread.start()
    try:
        people = [make_student(first_name=f"Quentin{i}", last_name=f"Zyxwerth{i}",
                               medical_record_num=f"MR-{uuid.uuid4().hex[:6].upper()}")
                  for i in range(3)]
        for p in people:
            health_records.create(conn, ctx, {
                "student_id": p.id, "record_type": "ILLNESS", "title": "Visit",
                "description": "Wheezing after recess", "record_date": p.enrollment_date,
                "diagnosis": "Exercise-induced bronchospasm", "diagnosis_code": "J45.990"})

        @cached(STUDENTS, key=lambda conn, ctx, sid: by_id(sid), cache=cache)
        def student(conn: Conn, ctx: ExecutionContext, sid: Any) -> Result[Any, DataError]:
            return students.find_by_id(conn, ctx, sid)

        @cached(STUDENTS, key=lambda conn, ctx, name: search(), cache=cache)
        def find(conn: Conn, ctx: ExecutionContext, name: str) -> Result[Page[Any], DataError]:
            return students.find_many(conn, ctx, {"last_name": {"ilike": name}})

        @cached(HEALTH_RECORDS, key=lambda conn, ctx, sid: summary(sid, "records"),
                tags=lambda conn, ctx, sid: [f"student:{sid}"], cache=cache)
        def records(conn: Conn, ctx: ExecutionContext, sid: Any) -> Result[Page[Any], DataError]:
            return health_records.find_many(conn, ctx, {"student_id": sid})

        @cached(STUDENTS, cache=cache)
        def names(conn: Conn, ctx: ExecutionContext, sid: Any) -> Result[Page[Any], DataError]:
            return crud.find_projected(conn, ctx, STUDENTS, ("first_name", "date_of_birth"),
                                       {"id": sid})

        for p in people:
            assert student(conn, ctx, p.id).unwrap().id == p.id
            assert records(conn, ctx, p.id).unwrap().total == 1
            assert names(conn, ctx, p.id).unwrap().total == 1
            assert find(conn, ctx, p.last_name).unwrap().total == 1
        students.update(conn, ctx, people[0].id, {"grade": "6"})  # an invalidation message

        raw = redis.Redis.from_url(redis_url)
        found = list(raw.scan_iter(match=f"{namespace}:*", count=1000))
        assert len(found) > 12
        blobs = list(found)
        for key in found:
            kind = raw.type(key)
            if kind == b"string":
                blobs.append(raw.get(key) or b"")
            elif kind == b"set":
                blobs.extend(raw.smembers(key))
        blobs.extend(messages)
        assert messages, "the invalidation broadcast was not observed"
        secrets: list[bytes] = [b"Exercise-induced", b"bronchospasm", b"Wheezing", b"J45.990"]
        for p in people:
            secrets += [str(p.id).encode(), p.id.hex.encode(), p.id.hex.upper().encode(),
                        p.first_name.encode(), p.last_name.encode(),
                        p.date_of_birth.isoformat().encode(), p.student_number.encode(),
                        (p.medical_record_num or "").encode()]
        for blob in blobs:
            for needle in secrets:
                assert needle not in blob, "PHI in clear in Redis"
    finally:
        stop.set()
        thread.join()
        listener.close()
        unsubscribe(cache)
        cache.close()
