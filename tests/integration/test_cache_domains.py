"""Every cached finder of ``wxdata.domains`` hits on its second call, on both shells, against the real
database.

The functions are found by walking the domain modules for the ``cached`` decorator's marker, so a
new cached finder without a case here fails the test instead of going unchecked (the health
summary, vaccination compliance and medication adherence once never hit: their value types could
not be stored, and every call was counted "not cacheable").
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import uuid
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import attrs
import psycopg
import pytest

import wxdata.domains
from tests.cache_support import memory, prefix, redis_backend, wipe
from wxdata import ExecutionContext, aio
from wxdata.cache import aio as acache
from wxdata.cache import using_cache
from wxdata.cache.backends.aio import AsyncMemoryCache
from wxdata.cache.backends.base import CacheManager
from wxdata.domains import (
    health_records,
    medication_logs,
    organisation,
    students,
    vaccinations,
)
from wxdata.schema import USERS

Conn = psycopg.Connection[Any]


def cached_functions() -> dict[int, tuple[str, Callable[..., Any]]]:
    """Every object carrying the cached marker in a ``wxdata.domains`` module (by identity)."""
    found: dict[int, tuple[str, Callable[..., Any]]] = {}
    for info in pkgutil.iter_modules(wxdata.domains.__path__):
        module = importlib.import_module(f"wxdata.domains.{info.name}")
        for attr, obj in vars(module).items():
            if getattr(obj, "__wxdata_cached__", False) is True:
                found.setdefault(id(obj), (f"{module.__name__}.{attr}", obj))
    return found


@attrs.frozen
class World:
    student_id: uuid.UUID
    student_number: str
    district_id: uuid.UUID
    district_code: str
    school_code: str
    email: str


#: function -> (entity counted in stats, the arguments after (conn, ctx))
CASES: dict[Any, tuple[str, Callable[[World], tuple[Any, ...]]]] = {
    health_records.student_health_summary: ("HealthRecord", lambda w: (w.student_id,)),
    vaccinations.compliance: ("Vaccination", lambda w: (w.student_id,)),
    medication_logs.adherence_rate: ("MedicationLog", lambda w: (w.student_id,)),
    students.find_by_student_number: ("Student", lambda w: (w.student_number,)),
    organisation.schools_in_district: ("School", lambda w: (w.district_id,)),
    organisation.find_district_by_code: ("District", lambda w: (w.district_code,)),
    organisation.find_school_by_code: ("School", lambda w: (w.school_code,)),
    organisation.find_user_by_email: ("User", lambda w: (w.email,)),
}


@pytest.fixture(params=["memory", "redis"])
def process_cache(request: pytest.FixtureRequest) -> Iterator[CacheManager]:
    """The process cache for one test: memory (values shared) or Redis (values serialised)."""
    namespace = prefix()
    url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    cache = memory(max_size=10_000) if not url else redis_backend(url, namespace)
    with using_cache(cache, close=True):
        yield cache
    if url:
        wipe(url, namespace)


def test_every_cached_domain_function_has_a_case() -> None:
    found = cached_functions()
    assert {id(f) for f in CASES} == set(found), sorted(
        name for key, (name, _) in found.items() if key not in {id(f) for f in CASES})


@pytest.mark.parametrize("fn", list(CASES), ids=lambda f: f.__qualname__)
def test_cached_domain_function_hits_on_its_second_call(
        conn: Conn, ctx: ExecutionContext, sys_ctx: ExecutionContext, make_student: Any,
        school: dict[str, uuid.UUID], process_cache: CacheManager, fn: Any) -> None:
    tag = uuid.uuid4().hex[:8]
    district = organisation.districts.create(
        conn, sys_ctx, {"name": f"District {tag}", "code": f"DC-{tag}"}).unwrap()
    mine = organisation.schools.create(
        conn, sys_ctx, {"name": f"School {tag}", "code": f"SC-{tag}",
                        "district_id": district.id}).unwrap()
    s = make_student()
    health_records.create(conn, sys_ctx, {
        "student_id": s.id, "record_type": "CHECKUP", "title": "Annual", "description": "well",
        "record_date": date(2024, 9, 1)}).unwrap()
    vaccinations.ops.create(conn, sys_ctx, {
        "student_id": s.id, "vaccine_name": "MMR", "administration_date": date(2020, 1, 1),
        "administered_by": "Clinic"}).unwrap()
    email = f"nurse-{tag}@example.org"
    from wxdata import crud

    crud.create(conn, sys_ctx, USERS, {
        "email": email, "first_name": "Nia", "last_name": "Nurse", "role": "NURSE",
        "password_hash": "x" * 60, "school_id": mine.id}).unwrap()
    world = World(s.id, s.student_number, district.id, district.code, mine.code, email)
    reader = attrs.evolve(ctx, school_ids={school["school_id"], mine.id})

    label, args = CASES[fn]
    first = fn(conn, reader, *args(world))
    assert first.unwrap() is not None
    before = process_cache.stats().entities[label]
    second = fn(conn, reader, *args(world))
    after = process_cache.stats().entities[label]
    assert second == first
    assert after.hits == before.hits + 1
    assert after.not_cacheable == 0


@pytest.mark.parametrize("fn", list(CASES), ids=lambda f: f.__qualname__)
def test_the_async_twin_of_a_cached_domain_function_hits_on_its_second_call(
        conn: Conn, db_url: str, ctx: ExecutionContext, sys_ctx: ExecutionContext,
        make_student: Any, school: dict[str, uuid.UUID], fn: Any) -> None:
    """The twin (``fn.aio``, what ``wxdata.aio.domains`` publishes) is cached by the async
    cache with the same entity: its second call is a hit, counted under the same entity."""
    tag = uuid.uuid4().hex[:8]
    district = organisation.districts.create(
        conn, sys_ctx, {"name": f"District {tag}", "code": f"DC-{tag}"}).unwrap()
    mine = organisation.schools.create(
        conn, sys_ctx, {"name": f"School {tag}", "code": f"SC-{tag}",
                        "district_id": district.id}).unwrap()
    s = make_student()
    health_records.create(conn, sys_ctx, {
        "student_id": s.id, "record_type": "CHECKUP", "title": "Annual", "description": "well",
        "record_date": date(2024, 9, 1)}).unwrap()
    email = f"nurse-{tag}@example.org"
    organisation.users.create(conn, sys_ctx, {
        "email": email, "first_name": "Nia", "last_name": "Nurse", "role": "NURSE",
        "password_hash": "x" * 60, "school_id": mine.id}).unwrap()
    world = World(s.id, s.student_number, district.id, district.code, mine.code, email)
    reader = attrs.evolve(ctx, school_ids={school["school_id"], mine.id})
    label, args = CASES[fn]
    mem = memory(max_size=10_000)
    acache.configure_async_cache(AsyncMemoryCache(mem))
    loop = asyncio.new_event_loop()
    try:
        aconn = loop.run_until_complete(aio.connect(db_url))
        first = loop.run_until_complete(fn.aio(aconn, reader, *args(world)))
        assert first.unwrap() is not None
        before = mem.stats().entities[label]
        second = loop.run_until_complete(fn.aio(aconn, reader, *args(world)))
        after = mem.stats().entities[label]
        loop.run_until_complete(aconn.close())
    finally:
        loop.close()
        acache.reset_async_cache()
    assert second == first
    assert after.hits == before.hits + 1
    assert after.not_cacheable == 0


@attrs.frozen
class _Tally:
    """A fact derived from a student's vaccinations that does not say whose it is."""

    doses: int


@attrs.frozen
class _NamedTally:
    """The same fact carrying the student it concerns."""

    doses: int
    student_id: uuid.UUID


def test_a_derived_phi_value_is_stored_only_when_its_hit_can_name_the_student(
        conn: Conn, ctx: ExecutionContext, admin_conn: Conn, make_student: Any,
        school: dict[str, uuid.UUID]) -> None:
    """A cache hit of an audited entity's value owes a record naming what it discloses; a value
    naming no row and no student could only leave a record that names no one, so it is never
    stored (every call reads, and records, it); one carrying its student is, and its hits name
    the student."""
    from wxdata.cache import cached, register_value_type
    from wxdata.schema.student_health import VACCINATIONS

    register_value_type(_Tally)
    register_value_type(_NamedTally)
    s = make_student()
    reader = attrs.evolve(ctx, school_ids={school["school_id"]})
    cache = memory(max_size=100)

    @cached(VACCINATIONS, cache=cache, name="test.unnamed_tally")
    def unnamed(c: Conn, x: ExecutionContext, sid: uuid.UUID) -> Any:
        return vaccinations.ops.count(c, x, {"student_id": sid}).map(_Tally)

    @cached(VACCINATIONS, cache=cache, name="test.named_tally")
    def named(c: Conn, x: ExecutionContext, sid: uuid.UUID) -> Any:
        return vaccinations.ops.count(c, x, {"student_id": sid}).map(
            lambda n: _NamedTally(n, sid))

    for _ in range(2):
        assert unnamed(conn, reader, s.id).unwrap() == _Tally(0)
    stats = cache.stats()
    assert stats.hits == 0
    assert named(conn, reader, s.id).unwrap() == _NamedTally(0, s.id)
    hit = attrs.evolve(reader, request_id=f"req-{uuid.uuid4().hex[:8]}")
    assert named(conn, hit, s.id).unwrap() == _NamedTally(0, s.id)
    assert cache.stats().hits == 1
    rows = admin_conn.execute("SELECT subject_ids FROM audit_log WHERE request_id = %s",
                              (hit.request_id,)).fetchall()
    assert rows == [([s.id],)]
