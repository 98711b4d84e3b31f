"""``cached`` against real PostgreSQL: hits, transaction awareness, races, stampedes, audit, secrets."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import attrs
import psycopg
import pytest
from returns.result import Failure, Result, Success

from tests.cache_support import audit_rows, cache_hits, heard, memory
from wxdata import ExecutionContext, Purpose, Role, crud
from wxdata.audit.decorator import audited
from wxdata.audit.ownership import owning
from wxdata.cache import by_id, cached, student_tag
from wxdata.cache.backends.memory import MemoryCache
from wxdata.cache.policy import ORIGINAL_ENTITY_TTL, PHI_TTL_CEILING, ttl_for
from wxdata.config import configure, load_settings
from wxdata.domains import health_records, students
from wxdata.domains.organisation import users
from wxdata.errors import DataError, NotFound
from wxdata.query.paging import Page
from wxdata.schema import HEALTH_RECORDS, SCHOOLS, STUDENTS, USERS, CacheTTL
from wxdata.schema.spec import registered
from wxdata.tx import Isolation, RollbackScope, transactional, unit_of_work

Conn = psycopg.Connection[Any]


@pytest.fixture
def mem() -> Iterator[MemoryCache]:
    with heard(memory()) as cache:
        yield cache


class Counted:
    """A cached student-by-id read that counts the reads reaching PostgreSQL."""

    def __init__(self, cache: MemoryCache, gate: Callable[[], None] | None = None) -> None:
        self.calls = 0
        self._lock = threading.Lock()

        @cached(STUDENTS, key=lambda conn, ctx, sid: by_id(sid), cache=cache, unkeyed=("self", "gate"))
        def get(conn: Conn, ctx: ExecutionContext, sid: Any) -> Result[Any, DataError]:
            with self._lock:
                self.calls += 1
            result = students.find_by_id(conn, ctx, sid)
            if gate is not None:
                gate()
            return result

        self.get = get


def test_hits_skip_the_database_and_failures_are_never_cached(conn: Conn, ctx: ExecutionContext,
                                                              mem: MemoryCache,
                                                              make_student: Any) -> None:
    s = make_student()
    read = Counted(mem)
    assert read.get(conn, ctx, s.id) == Success(s)
    assert read.get(conn, ctx, s.id) == Success(s)
    assert read.calls == 1
    missing = uuid.uuid4()
    assert read.get(conn, ctx, missing) == Failure(NotFound(entity="Student"))
    assert read.get(conn, ctx, missing) == Failure(NotFound(entity="Student"))
    assert read.calls == 3
    bad = read.get(conn, ctx, "1' OR '1'='1")
    assert isinstance(bad, Failure) and read.calls == 4
    s_stats = mem.stats().entities["Student"]
    assert s_stats.hits == 1 and s_stats.misses == 4 and s_stats.sets == 1


def test_original_wrong_patient_bug_cannot_recur(conn: Conn, ctx: ExecutionContext,
                                                 mem: MemoryCache, make_student: Any) -> None:
    """student-crud.service findOne(id): after one lookup, every id returned the first student."""
    a, b = make_student(first_name="Alice"), make_student(first_name="Bob")

    @cached(STUDENTS, cache=mem)
    def find_one(conn: Conn, ctx: ExecutionContext, where: dict[str, Any]) -> Result[Any, DataError]:
        return students.find_one(conn, ctx, where)

    assert find_one(conn, ctx, {"id": a.id}).unwrap().first_name == "Alice"
    assert find_one(conn, ctx, {"id": b.id}).unwrap().first_name == "Bob"
    assert find_one(conn, ctx, {"id": a.id}).unwrap().id == a.id
    assert find_one(conn, ctx, {"id": b.id}).unwrap().id == b.id


def test_projection_is_part_of_the_key(conn: Conn, ctx: ExecutionContext, mem: MemoryCache,
                                       make_student: Any, school: dict[str, uuid.UUID]) -> None:
    """The original served a partial (projected) row to later callers of the same id."""
    s = make_student()

    @cached(STUDENTS, cache=mem)
    def projected(conn: Conn, ctx: ExecutionContext, select: tuple[str, ...] | None,
                  where: dict[str, Any]) -> Result[Page[Any], DataError]:
        if select is None:
            return students.find_many(conn, ctx, where)
        return crud.find_projected(conn, ctx, STUDENTS, select, where)

    narrow = projected(conn, ctx, ("id", "grade"), {"id": s.id}).unwrap()
    full = projected(conn, ctx, None, {"id": s.id}).unwrap()
    assert set(narrow.data[0]) == {"id", "grade"}
    assert full.data[0] == s


def test_reads_inside_a_writing_transaction_bypass_and_invalidation_waits_for_commit(
        db_url: str, conn: Conn, ctx: ExecutionContext, mem: MemoryCache,
        make_student: Any) -> None:
    s = make_student(grade="5")
    read = Counted(mem)
    assert read.get(conn, ctx, s.id).unwrap().grade == "5"  # cached
    with psycopg.connect(db_url, autocommit=True) as other:
        with unit_of_work(conn, ctx):
            students.update(conn, ctx, s.id, {"grade": "6"})
            calls = read.calls
            inside = read.get(conn, ctx, s.id).unwrap()
            assert inside.grade == "6" and read.calls == calls + 1  # bypassed: saw its own write
            assert mem.stats().entities["Student"].bypasses == 1
            # not committed: nothing invalidated, everyone else still gets the committed value
            assert read.get(other, ctx, s.id).unwrap().grade == "5"
            assert read.calls == calls + 1
        # COMMIT returned: the entry is gone before anyone can read it
        assert read.get(other, ctx, s.id).unwrap().grade == "6"
        assert read.calls == calls + 2


def test_rollback_and_savepoint_rollback_never_invalidate(conn: Conn, ctx: ExecutionContext,
                                                          mem: MemoryCache,
                                                          make_student: Any) -> None:
    s = make_student(grade="5")
    read = Counted(mem)
    read.get(conn, ctx, s.id)
    with unit_of_work(conn, ctx):
        students.update(conn, ctx, s.id, {"grade": "7"})
        raise RollbackScope
    assert read.get(conn, ctx, s.id).unwrap().grade == "5" and read.calls == 1  # still a hit
    with unit_of_work(conn, ctx) as scope:
        with unit_of_work(conn, ctx):
            students.update(conn, ctx, s.id, {"grade": "8"})
            raise RollbackScope
        assert not scope.has_written("Student")
        assert read.get(conn, ctx, s.id).unwrap().grade == "5"  # cache usable again, a hit
        assert read.calls == 1
    assert read.get(conn, ctx, s.id).unwrap().grade == "5" and read.calls == 1


def test_stronger_isolation_bypasses(conn: Conn, ctx: ExecutionContext, mem: MemoryCache,
                                     make_student: Any) -> None:
    s = make_student()
    read = Counted(mem)
    read.get(conn, ctx, s.id)
    with unit_of_work(conn, ctx, isolation=Isolation.REPEATABLE_READ):
        read.get(conn, ctx, s.id)
    assert read.calls == 2
    with unit_of_work(conn, ctx, isolation=Isolation.READ_COMMITTED):
        read.get(conn, ctx, s.id)
    assert read.calls == 2


def test_reader_that_read_before_a_commit_cannot_fill_after_its_invalidation(
        db_url: str, conn: Conn, ctx: ExecutionContext, mem: MemoryCache,
        make_student: Any) -> None:
    """Reader misses and reads the old row; writer commits and invalidates; reader then fills."""
    s = make_student(grade="5")
    read_done, release = threading.Event(), threading.Event()

    def gate() -> None:
        if threading.current_thread().name == "slow-reader":
            read_done.set()
            assert release.wait(10)

    read = Counted(mem, gate)
    seen: list[Any] = []

    def reader() -> None:
        with psycopg.connect(db_url, autocommit=True) as c:
            seen.append(read.get(c, ctx, s.id).unwrap().grade)

    t = threading.Thread(target=reader, name="slow-reader")
    t.start()
    assert read_done.wait(10)
    assert students.update(conn, ctx, s.id, {"grade": "6"}).unwrap().grade == "6"  # commit + inval
    release.set()
    t.join()
    assert seen == ["5"]  # it was concurrent with the write: the old value is fair
    assert read.get(conn, ctx, s.id).unwrap().grade == "6"  # but it never reached the cache
    assert mem.stats().entities["Student"].stale_fills_refused == 1


def test_stampede_reads_the_database_once_and_audits_every_caller(
        db_url: str, conn: Conn, ctx: ExecutionContext, mem: MemoryCache,
        make_student: Any) -> None:
    s = make_student()
    n = 32
    barrier = threading.Barrier(n)
    leader_in = threading.Event()

    def gate() -> None:
        leader_in.set()
        # keep the leader in flight until every caller has at least missed (bounded wait)
        for _ in range(200):
            if mem.flights.in_flight() and mem.stats().total.misses >= n:
                break
            threading.Event().wait(0.01)

    read = Counted(mem, gate)
    results: list[Any] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as c:
                barrier.wait(10)
                results.append(read.get(c, ctx, s.id))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert read.calls == 1
    assert results == [Success(s)] * n
    counts = mem.stats().entities["Student"]
    assert counts.coalesced + counts.hits == n - 1 and counts.sets == 1
    rows = audit_rows(conn, ctx.request_id, "Student")
    assert len(rows) == n and len(cache_hits(rows)) == n - 1  # one DB read record + 31 hits
    assert all(r[3] == [s.id] for r in rows)


def test_phi_hit_is_audited_exactly_once_without_an_owner(conn: Conn, ctx: ExecutionContext,
                                                          mem: MemoryCache,
                                                          make_student: Any) -> None:
    s = make_student()
    read = Counted(mem)
    read.get(conn, ctx, s.id)
    read.get(conn, ctx, s.id)
    rows = audit_rows(conn, ctx.request_id, "Student")
    assert [r[0] for r in rows] == ["READ", "READ"]
    hits = cache_hits(rows)
    assert len(hits) == 1 and hits[0][2] == [s.id] and hits[0][3] == [s.id]
    assert mem.stats().entities["Student"].audited_hits == 1


def test_phi_hit_is_audited_exactly_once_under_an_audited_decorator(
        conn: Conn, ctx: ExecutionContext, mem: MemoryCache, make_student: Any) -> None:
    s = make_student()
    inner_calls = [0]

    @audited(STUDENTS)
    @cached(STUDENTS, key=lambda conn, ctx, sid: by_id(sid), cache=mem, unkeyed=("inner_calls",))
    @transactional(read_only=True)
    def visible(conn: Conn, ctx: ExecutionContext, sid: Any) -> Result[Any, DataError]:
        inner_calls[0] += 1
        return students.find_by_id(conn, ctx, sid)

    assert visible(conn, ctx, s.id) == Success(s)
    assert visible(conn, ctx, s.id) == Success(s)
    assert inner_calls[0] == 1
    rows = audit_rows(conn, ctx.request_id, "Student")
    assert len(rows) == 2 and not cache_hits(rows)  # the decorator owns them: one per call
    assert all(r[3] == [s.id] for r in rows)
    with owning("test", reads=True):  # any owner of reads silences the cache's own record
        Counted(mem).get(conn, ctx, s.id)
    assert len(audit_rows(conn, ctx.request_id, "Student")) == 2


def test_decorator_order_contract(conn: Conn, ctx: ExecutionContext, mem: MemoryCache,
                                  make_student: Any) -> None:
    """audited -> cached -> transactional -> query: a hit opens no transaction; failures not cached."""
    s = make_student()
    body = [0]
    statuses: list[Any] = []

    @audited(STUDENTS)
    @cached(STUDENTS, cache=mem, unkeyed=("body", "statuses"))
    @transactional()
    def listing(conn: Conn, ctx: ExecutionContext, grade: str) -> Result[Page[Any], DataError]:
        body[0] += 1
        statuses.append(conn.info.transaction_status)
        if grade == "bad":
            return Failure(NotFound(entity="Student"))
        return students.find_many(conn, ctx, {"id": s.id, "grade": grade})

    assert listing(conn, ctx, s.grade).unwrap().data == (s,)
    assert listing(conn, ctx, s.grade).unwrap().data == (s,)
    assert body[0] == 1 and statuses == [psycopg.pq.TransactionStatus.INTRANS]
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    listing(conn, ctx, "bad")
    listing(conn, ctx, "bad")
    assert body[0] == 3
    assert len(audit_rows(conn, ctx.request_id, "Student")) == 2 + 2  # 2 reads + 2 failures


def test_hit_in_a_unit_of_work_that_rolls_back_is_still_recorded(
        conn: Conn, ctx: ExecutionContext, mem: MemoryCache, make_student: Any) -> None:
    s = make_student()
    read = Counted(mem)
    read.get(conn, ctx, s.id)
    with unit_of_work(conn, ctx):
        read.get(conn, ctx, s.id)  # hit, recorded in the transaction ...
        raise RollbackScope  # ... which rolls back: replayed on lane 2
    with unit_of_work(conn, ctx, read_only=True):
        read.get(conn, ctx, s.id)  # read-only: lane 2 directly
    assert len(cache_hits(audit_rows(conn, ctx.request_id, "Student"))) == 2


def test_secrets_are_never_cached(conn: Conn, sys_ctx: ExecutionContext, mem: MemoryCache) -> None:
    tag = uuid.uuid4().hex[:8]
    created = conn.execute(
        "INSERT INTO users (email, password_hash, first_name, last_name, role, mfa_secret) "
        "VALUES (%s, 'hash', 'N', 'Urse', 'NURSE', 'totp-seed') RETURNING id",
        (f"n{tag}@example.org",)).fetchone()
    assert created is not None

    @cached(USERS, key=lambda conn, ctx, uid: by_id(uid), cache=mem)
    def user(conn: Conn, ctx: ExecutionContext, uid: Any) -> Result[Any, DataError]:
        return users.find_by_id(conn, ctx, uid)

    row = user(conn, sys_ctx, created[0]).unwrap()
    assert not {c.name for c in USERS.secrets} & {f.name for f in attrs.fields(type(row))}
    assert user(conn, sys_ctx, created[0]).unwrap() == row

    @cached(USERS, cache=mem)
    def leaky(conn: Conn, ctx: ExecutionContext, uid: Any) -> Result[Any, DataError]:
        got = conn.execute("SELECT id, password_hash FROM users WHERE id = %s", (uid,)).fetchone()
        assert got is not None
        return Success({"id": got[0], "password_hash": got[1]})

    assert leaky(conn, sys_ctx, created[0]).unwrap()["password_hash"] == "hash"
    leaky(conn, sys_ctx, created[0])
    assert mem.stats().entities["User"].not_cacheable == 2
    assert all("hash" not in repr(v) for v in mem._store.values())


def test_scope_partitions_never_share_entries(conn: Conn, mem: MemoryCache,
                                              make_student: Any, school: dict[str, Any]) -> None:
    s = make_student()
    calls = [0]

    @cached(STUDENTS, cache=mem, unkeyed=("calls",))
    def by_grade(conn: Conn, ctx: ExecutionContext, grade: str) -> Result[Any, DataError]:
        calls[0] += 1
        return students.find_many(conn, ctx, {"grade": grade, "id": s.id})

    here = ExecutionContext(user_id="u1", role=Role.NURSE, school_ids={school["school_id"]})
    elsewhere = ExecutionContext(user_id="u2", role=Role.NURSE, school_ids={uuid.uuid4()})
    colleague = ExecutionContext(user_id="u3", role=Role.NURSE, school_ids={school["school_id"]})
    by_grade(conn, here, s.grade)
    by_grade(conn, elsewhere, s.grade)
    by_grade(conn, colleague, s.grade)
    assert calls[0] == 2


def test_custom_tags_and_subject_invalidation(conn: Conn, ctx: ExecutionContext, mem: MemoryCache,
                                              make_student: Any) -> None:
    """The README example: recent visits tagged by student; a new record invalidates them."""
    s = make_student()
    calls = [0]

    @cached(ttl=CacheTTL.SHORT, tags=lambda conn, ctx, sid: [f"student:{sid}"], cache=mem, unkeyed=("calls",))
    def recent(conn: Conn, ctx: ExecutionContext, sid: Any) -> Result[Any, DataError]:
        calls[0] += 1
        return health_records.find_many(conn, ctx, {"student_id": sid})

    assert recent(conn, ctx, s.id).unwrap().total == 0
    assert recent(conn, ctx, str(s.id).upper()).unwrap().total == 0
    health_records.create(conn, ctx, {
        "student_id": s.id, "record_type": "ILLNESS", "title": "Flu", "description": "fever",
        "record_date": s.enrollment_date})
    assert recent(conn, ctx, s.id).unwrap().total == 1
    assert calls[0] == 3
    assert student_tag(s.id) == f"student:{s.id}"


def test_cache_disabled_calls_through(conn: Conn, ctx: ExecutionContext, make_student: Any) -> None:
    s = make_student()
    previous = configure(load_settings({"CACHE_ENABLED": "false"}))
    from wxdata.cache.factory import reset_default

    reset_default()
    try:
        calls = [0]

        @cached(STUDENTS, unkeyed=("calls",))
        def get(conn: Conn, ctx: ExecutionContext, sid: Any) -> Result[Any, DataError]:
            calls[0] += 1
            return students.find_by_id(conn, ctx, sid)

        get(conn, ctx, s.id)
        get(conn, ctx, s.id)
        assert calls[0] == 2
    finally:
        configure(previous)
        reset_default()


def test_ttl_policy() -> None:
    assert ttl_for(STUDENTS, None, 900) == PHI_TTL_CEILING == 900  # LONG capped for PHI
    assert ttl_for(HEALTH_RECORDS, None, 900) == CacheTTL.SHORT
    assert ttl_for(SCHOOLS, None, 900) == CacheTTL.DAY
    assert ttl_for(STUDENTS, CacheTTL.DAY, 900) == PHI_TTL_CEILING  # explicit TTLs capped too
    assert ttl_for(SCHOOLS, 5, 900) == 5
    assert ttl_for(None, None, 600) == 600
    with pytest.raises(ValueError, match="positive"):
        ttl_for(SCHOOLS, 0, 900)
    import wxdata.domains  # noqa: F401  - register every entity

    declared = {e.name: e.cache_ttl for e in registered()}
    for name, ttl in ORIGINAL_ENTITY_TTL.items():
        if name in declared:
            assert declared[name] == ttl, name


def test_cached_needs_something_to_invalidate_it() -> None:
    with pytest.raises(ValueError, match="invalidate"):
        cached()


def test_values_from_the_cache_cannot_be_mutated_into_other_callers(
        conn: Conn, ctx: ExecutionContext, mem: MemoryCache, make_student: Any) -> None:
    s = make_student()
    health_records.create(conn, ctx, {
        "student_id": s.id, "record_type": "ILLNESS", "title": "Flu", "description": "fever",
        "record_date": s.enrollment_date, "metadata": {"temp": 38.5}})

    @cached(HEALTH_RECORDS, cache=mem)
    def records(conn: Conn, ctx: ExecutionContext, sid: Any) -> Result[Page[Any], DataError]:
        return health_records.find_many(conn, ctx, {"student_id": sid})

    first = records(conn, ctx, s.id).unwrap()
    first.data[0].metadata["temp"] = 99  # a caller scribbles on its result
    second = records(conn, ctx, s.id).unwrap()
    assert second.data[0].metadata == {"temp": 38.5}
    second.data[0].attachments.append("x")
    assert records(conn, ctx, s.id).unwrap().data[0].attachments == []


def test_break_glass_hits_are_audited_under_the_emergency_context(
        conn: Conn, mem: MemoryCache, make_student: Any) -> None:
    s = make_student()
    ctx = ExecutionContext(user_id="u-er", role=Role.NURSE, purpose=Purpose.TREATMENT,
                           request_id=f"req-{uuid.uuid4().hex[:8]}").break_glass(
        "anaphylaxis, need allergy list now")
    read = Counted(mem)
    read.get(conn, ctx, s.id)
    read.get(conn, ctx, s.id)
    row = conn.execute(
        "SELECT severity, break_glass_reason FROM audit_log WHERE request_id = %s "
        "AND metadata->>'cache' = 'hit'", (ctx.request_id,)).fetchone()
    assert row == ("CRITICAL", "anaphylaxis, need allergy list now")


def test_factory_made_functions_never_share_entries(conn: Conn, ctx: ExecutionContext,
                                                    mem: MemoryCache, make_student: Any) -> None:
    """Closures made by one factory have one qualname; what they close over keeps them apart."""
    s = make_student(grade="5")

    def make(grade: str) -> Any:
        @cached(STUDENTS, cache=mem)
        def read(conn: Conn, ctx: ExecutionContext, sid: Any) -> Result[Page[Any], DataError]:
            return students.find_many(conn, ctx, {"id": sid, "grade": grade})

        return read

    five, six = make("5"), make("6")
    assert five(conn, ctx, s.id).unwrap().total == 1
    assert six(conn, ctx, s.id).unwrap().total == 0
    assert five(conn, ctx, s.id).unwrap().total == 1

