"""The hot path builds each query shape once and sends nothing it does not need.

Counted, never timed: memo misses per shape, context statements built per call. The flat-filter
fast path is compared with the general parser on generated filters, error for error.
"""

from __future__ import annotations

import asyncio
import builtins
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql as psql
from returns.result import Failure, Success

import wxdata.aio as aio
import wxdata.domains  # noqa: F401 - registers every entity
from tests.conftest import student_values
from wxdata import ExecutionContext
from wxdata.aio.domains import students as astudents
from wxdata.audit import sql as audit_sql
from wxdata.audit.record import text_array
from wxdata.cache import cached
from wxdata.cache.aio import cached as acached
from wxdata.cache.aio import reset_async_cache
from wxdata.cache.factory import reset_default
from wxdata.cache.totals import cache_totals, uncache_totals
from wxdata.config import configure
from wxdata.config import settings as wx_settings
from wxdata.core import reads
from wxdata.domains import students
from wxdata.errors import Forbidden, InvalidQuery
from wxdata.query.filters import (
    MAX_FILTER_TEXT,
    bind,
    bind_where,
    flat_params,
    flat_shape,
    parse,
)
from wxdata.schema import STUDENTS
from wxdata.schema.spec import Entity, Kind, registered
from wxdata.tx import RollbackScope, unit_of_work
from wxdata.tx import scope as tx_scope


def _with_arrays() -> Entity[Any]:
    return next(e for e in registered() if any(c.kind is Kind.TEXT_ARRAY for c in e.columns))


ENTITIES = (STUDENTS, _with_arrays())


def _names(entity: Entity[Any]) -> st.SearchStrategy[str]:
    return st.sampled_from([*entity.by_name, "and", "or", "not", "nope", "Grade", ""])


_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.text(max_size=12),
    st.text(min_size=MAX_FILTER_TEXT + 1, max_size=MAX_FILTER_TEXT + 2), st.uuids(),
    st.uuids().map(str), st.dates(), st.just("a\x00b"), st.lists(st.text(max_size=3), max_size=2),
    st.fixed_dictionaries({"eq": st.text(max_size=3)}), st.just({"bogus": 1}), st.just({}),
)


@st.composite
def _filters(draw: st.DrawFn) -> tuple[Entity[Any], dict[Any, Any]]:
    entity = draw(st.sampled_from(ENTITIES))
    return entity, draw(st.dictionaries(_names(entity), _values, min_size=0, max_size=10))


@given(_filters())
@settings(max_examples=400, deadline=None)
def test_flat_filter_fast_path_answers_exactly_what_the_general_path_answers(
    case: tuple[Entity[Any], dict[Any, Any]],
) -> None:
    entity, where = case
    general = parse(where).bind(lambda node: bind(entity, node))
    assert bind_where(entity, where) == general


@given(_filters())
@settings(max_examples=400, deadline=None)
def test_a_flat_filters_parameters_are_what_the_general_path_binds(
    case: tuple[Entity[Any], dict[Any, Any]],
) -> None:
    """The statement's parameters taken without containers: the general path's shape and values
    (as ``p0``, ``p1``...) whenever it gives any, and nothing for any filter the general path
    refuses (which then names the field and rule)."""
    entity, where = case
    general = parse(where).bind(lambda node: bind(entity, node))
    flat = flat_params(entity, where)
    if flat is None:
        return
    shape, params = flat
    bound = general.unwrap()  # a filter the fast path binds, the general path binds too
    assert shape == bound.shape
    assert params == {f"p{i}": v for i, v in enumerate(bound.values)}
    assert list(params) == [f"p{i}" for i in range(len(bound.values))]


def test_the_fast_path_binds_every_plain_equality_filter() -> None:
    """Equality on declared scalar columns, the common filter, never falls to the general path."""
    school = uuid.uuid4()
    assert flat_params(STUDENTS, {"school_id": school}) == (
        ("c", "school_id", "eq"), {"p0": school})
    assert flat_params(STUDENTS, {"grade": "5", "last_name": "Lovelace"}) == (
        ("and", ("c", "grade", "eq"), ("c", "last_name", "eq")),
        {"p0": "5", "p1": "Lovelace"})
    for general_only in ({}, {"grade": None}, {"grade": {"in": ["5"]}}, {"nope": "5"},
                         {"or": [{"grade": "5"}]}, {"grade": "x" * (MAX_FILTER_TEXT + 1)}):
        assert flat_params(STUDENTS, general_only) is None


def test_a_flat_filter_shape_is_checked_once_whatever_its_values() -> None:
    flat_shape.cache_clear()
    for grade in ("1", "2", "3", "4", "5") * 10:
        bound = bind_where(STUDENTS, {"grade": grade, "last_name": "Lovelace"}).unwrap()
        assert bound.values == (grade, "Lovelace")
        assert bound.shape == ("and", ("c", "grade", "eq"), ("c", "last_name", "eq"))
    assert flat_shape.cache_info().misses == 1
    assert flat_shape.cache_info().hits == 49
    bind_where(STUDENTS, {"last_name": "Lovelace", "grade": "5"})  # another order, another shape
    assert flat_shape.cache_info().misses == 2


def test_a_bad_value_in_a_flat_filter_names_the_field_and_rule_never_the_value() -> None:
    secret = "x" * (MAX_FILTER_TEXT + 1)
    failed = bind_where(STUDENTS, {"grade": "5", "last_name": secret})
    assert failed == Failure(InvalidQuery(
        field="last_name", rule=f"filter strings must be at most {MAX_FILTER_TEXT} characters"))
    assert secret not in repr(failed)


# --- through the data functions ------------------------------------------------------------------


@pytest.fixture
def three(make_student: Callable[..., Any]) -> list[Any]:
    return [make_student(grade=g, last_name=f"Hot{g}") for g in ("3", "4", "5")]


def test_by_id_and_page_statements_are_built_once_per_shape(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, three: list[Any],
    school: dict[str, uuid.UUID],
) -> None:
    reads._by_id.cache_clear()
    reads._page_statement.cache_clear()
    flat_shape.cache_clear()
    for s in three:
        assert students.find_by_id(conn, ctx, s.id) == Success(s)
    assert reads._by_id.cache_info().misses == 1
    for s in three:
        page = students.find_many(conn, ctx, {"school_id": school["school_id"], "grade": s.grade},
                                  order_by=["last_name"], limit=5).unwrap()
        assert [p.id for p in page.data] == [s.id]
        assert page.total == 1
    everyone = students.find_many(conn, ctx, {"school_id": school["school_id"]},
                                  order_by=["last_name"], limit=2, page=2).unwrap()
    assert (everyone.total, [p.id for p in everyone.data]) == (3, [three[2].id])
    assert reads._page_statement.cache_info().misses == 2
    assert flat_shape.cache_info().misses == 2


@contextmanager
def _counted_imports(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The names of the modules imported while the block runs."""
    imported: list[str] = []
    real = builtins.__import__

    def counting(name: str, *args: Any, **kwargs: Any) -> Any:
        imported.append(name)
        return real(name, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(builtins, "__import__", counting)
        yield imported


def _imports_of(monkeypatch: pytest.MonkeyPatch, calls: Callable[[], None]) -> list[str]:
    """The modules ``calls()`` imports the third time it runs (the first runs may import what
    they use: a cached read misses on the first, and is first served from the cache on the
    second)."""
    calls()
    calls()
    with _counted_imports(monkeypatch) as imported:
        calls()
    return imported


async def _imports_of_async(monkeypatch: pytest.MonkeyPatch,
                            calls: Callable[[], Awaitable[None]]) -> list[str]:
    """:func:`_imports_of` for an async ``calls``."""
    await calls()
    await calls()
    with _counted_imports(monkeypatch) as imported:
        await calls()
    return imported


def test_a_warmed_data_call_runs_no_import_statement(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, three: list[Any],
    school: dict[str, uuid.UUID], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once a call has run, running it again executes no ``import`` statement: a function-level
    import resolves its module on every call (for a module of a package, several times the
    instructions of the function it sits in), so none may sit on a data call's path: single
    statements, failed writes, units of work committed, read-only and rolled back."""
    def calls() -> None:
        for s in three:
            assert students.find_by_id(conn, ctx, s.id).unwrap().id == s.id
        page = students.find_many(conn, ctx, {"school_id": school["school_id"]},
                                  order_by=["last_name"]).unwrap()
        assert page.total == 3
        made = students.create(conn, ctx, student_values(school, last_name="Imports")).unwrap()
        assert students.update(conn, ctx, made.id, {"grade": "6"}).unwrap().grade == "6"
        assert students.delete(conn, ctx, made.id) == Success(None)
        assert students.find_by_id(conn, ctx, made.id).failure().code == "NOT_FOUND"
        # a failed write: its record goes to audit lane 2
        assert students.update(conn, ctx, made.id, {"grade": "7"}).failure().code == "NOT_FOUND"
        with unit_of_work(conn, ctx, audit=True):  # its outcome recorded at COMMIT
            assert students.find_by_id(conn, ctx, three[0].id).unwrap().id == three[0].id
            assert students.update(conn, ctx, three[1].id, {"grade": "4"}).unwrap().grade == "4"
        with unit_of_work(conn, ctx, read_only=True):  # its reads' records go to lane 2
            assert students.find_by_id(conn, ctx, three[2].id).unwrap().id == three[2].id
        with unit_of_work(conn, ctx, audit=True):  # rolled back: its outcome on lane 2
            assert students.find_by_id(conn, ctx, three[0].id).unwrap().id == three[0].id
            raise RollbackScope

    assert _imports_of(monkeypatch, calls) == []


def test_a_warmed_async_call_runs_no_import_statement(
    db_url: str, ctx: ExecutionContext, three: list[Any], school: dict[str, uuid.UUID],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same for the async shell."""
    async def main() -> list[str]:
        async with await aio.connect(db_url) as conn:
            async def calls() -> None:
                for s in three:
                    assert (await astudents.find_by_id(conn, ctx, s.id)).unwrap().id == s.id
                page = (await astudents.find_many(conn, ctx, {"school_id": school["school_id"]},
                                                  order_by=["last_name"])).unwrap()
                assert page.total == 3
                made = (await astudents.create(
                    conn, ctx, student_values(school, last_name="AsyncImports"))).unwrap()
                changed = await astudents.update(conn, ctx, made.id, {"grade": "6"})
                assert changed.unwrap().grade == "6"
                assert await astudents.delete(conn, ctx, made.id) == Success(None)
                failed = await astudents.update(conn, ctx, made.id, {"grade": "7"})
                assert failed.failure().code == "NOT_FOUND"
                async with aio.unit_of_work(conn, ctx, audit=True):
                    found = await astudents.find_by_id(conn, ctx, three[0].id)
                    assert found.unwrap().id == three[0].id
                    moved = await astudents.update(conn, ctx, three[1].id, {"grade": "4"})
                    assert moved.unwrap().grade == "4"
                async with aio.unit_of_work(conn, ctx, read_only=True):
                    found = await astudents.find_by_id(conn, ctx, three[2].id)
                    assert found.unwrap().id == three[2].id

            return await _imports_of_async(monkeypatch, calls)

    assert asyncio.run(main()) == []


@pytest.fixture
def default_memory_cache() -> Iterator[None]:
    previous = configure(attrs.evolve(wx_settings(), cache_enabled=True, cache_backend="memory"))
    reset_default()
    reset_async_cache()
    try:
        yield
    finally:
        uncache_totals(STUDENTS)
        configure(previous)
        reset_default()
        reset_async_cache()


def test_a_warmed_cached_call_runs_no_import_statement(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, three: list[Any],
    school: dict[str, uuid.UUID], monkeypatch: pytest.MonkeyPatch, default_memory_cache: None,
) -> None:
    """The same for the cache's paths: a hit and a miss of a read cached on the process cache
    built from the settings, and a page whose total is served from it."""
    read = cached(STUDENTS, name="tests.hot_path.imports")(students.find_by_id)
    cache_totals(STUDENTS)
    where = {"school_id": school["school_id"]}

    def calls() -> None:
        for s in three:
            assert read(conn, ctx, s.id) == Success(s)  # a miss the first time, then hits
        assert read(conn, ctx, uuid.uuid4()).failure().code == "NOT_FOUND"  # never stored
        assert students.find_many(conn, ctx, where, order_by=["last_name"]).unwrap().total == 3

    assert _imports_of(monkeypatch, calls) == []


@pytest.fixture
def counted_context_statements(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = tx_scope.context_statement

    def counting(*args: Any, **kwargs: Any) -> tuple[str, dict[str, str]]:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(tx_scope, "context_statement", counting)
    return calls


@pytest.fixture
def privileged_allowed() -> Iterator[None]:
    previous = configure(attrs.evolve(wx_settings(), allow_privileged_connection=True,
                                      pooler="none"))
    try:
        yield
    finally:
        configure(previous)


def test_a_privileged_direct_connection_builds_no_context_statement(
    admin_conn: psycopg.Connection[Any], ctx: ExecutionContext, three: list[Any],
    counted_context_statements: list[int], privileged_allowed: None,
) -> None:
    for s in three:
        assert students.find_by_id(admin_conn, ctx, s.id) == Success(s)
    assert counted_context_statements == []


def test_a_privileged_connection_is_still_refused_without_building_a_statement(
    admin_conn: psycopg.Connection[Any], ctx: ExecutionContext, three: list[Any],
    counted_context_statements: list[int],
) -> None:
    previous = configure(attrs.evolve(wx_settings(), allow_privileged_connection=False,
                                      pooler="none"))
    try:
        found = students.find_by_id(admin_conn, ctx, three[0].id)
        page = students.find_many(admin_conn, ctx, {"grade": "5"})
    finally:
        configure(previous)
    assert isinstance(found.failure(), Forbidden)
    assert isinstance(page.failure(), Forbidden)
    assert counted_context_statements == []


def test_the_application_role_applies_its_context_with_every_statement(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, three: list[Any],
    counted_context_statements: list[int],
) -> None:
    for s in three:
        assert students.find_by_id(conn, ctx, s.id) == Success(s)
    assert len(counted_context_statements) == 3
    other = attrs.evolve(ctx, school_ids=frozenset({uuid.uuid4()}))
    assert students.find_by_id(conn, other, three[0].id).failure().code == "NOT_FOUND"


def test_context_settings_follow_the_context_not_a_stale_memo(ctx: ExecutionContext) -> None:
    from wxdata.context import context_settings

    first = context_settings(ctx)
    first["app.user_id"] = "changed by a caller"
    assert context_settings(ctx)["app.user_id"] == ctx.user_id
    glass = ctx.break_glass("a fire drill in the east wing, nurse on site")
    assert context_settings(glass)["app.bypass_scope"] == "on"
    assert context_settings(ctx)["app.bypass_scope"] == "off"
    later = attrs.evolve(ctx, school_ids=frozenset({uuid.uuid4()}), timestamp=ctx.timestamp)
    assert context_settings(later)["app.school_ids"] != context_settings(ctx)["app.school_ids"]


_DB_TEXT = st.text(alphabet=st.characters(blacklist_characters="\x00",
                                          blacklist_categories=("Cs",)))  # what text can hold


@given(st.lists(_DB_TEXT, max_size=6))
@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_text_array_round_trips_through_postgresql(
    conn: psycopg.Connection[Any], items: list[str],
) -> None:
    row = conn.execute("SELECT %s::text[], %s::varchar(255)[]",
                       (text_array(items), text_array([i[:255] for i in items]))).fetchone()
    assert row == (items, [i[:255] for i in items])
    # the same text written into a statement as a riding record's constant field
    literal = psql.SQL("SELECT {}, {}").format(
        audit_sql._constant("fields_disclosed", text_array(items)),
        audit_sql._constant("tags", text_array([i[:255] for i in items])))
    assert conn.execute(literal.as_string()).fetchone() == row  # rendered once, with no connection


def test_an_audited_read_records_its_fields_and_tags_as_arrays(
    conn: psycopg.Connection[Any], admin_conn: psycopg.Connection[Any], ctx: ExecutionContext,
    three: list[Any],
) -> None:
    assert wx_settings().audit_enabled and wx_settings().audit_phi_access
    assert students.find_by_id(conn, ctx, three[0].id) == Success(three[0])
    rows = admin_conn.execute(
        "SELECT fields_disclosed, tags, entity_id FROM audit_log WHERE request_id = %s"
        " AND action = 'READ'", (ctx.request_id,)).fetchall()
    assert rows == [(["*"], ["student", "read"], three[0].id)]


def test_unknown_filter_keys_are_never_kept_by_the_shape_memo() -> None:
    flat_shape.cache_clear()
    for n in range(20):
        junk = f"not_a_column_{n}_" + "x" * 10_000
        failed = bind_where(STUDENTS, {"grade": "5", junk: "1"})
        assert failed == Failure(InvalidQuery(field="<invalid field name>",
                                              rule="is not a filterable column of Student"))
    assert flat_shape.cache_info().currsize == 0


@given(st.lists(st.uuids(), max_size=5))
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_uuid_array_round_trips_and_text_cannot_add_elements(
    conn: psycopg.Connection[Any], ids: list[uuid.UUID],
) -> None:
    from wxdata.audit.record import uuid_array

    assert conn.execute("SELECT %s::uuid[]", (uuid_array(ids),)).fetchone() == (ids,)
    assert uuid_array([str(i) for i in ids]) == uuid_array(ids)
    if len(ids) >= 2:  # two ids smuggled in one string are refused, not split into two elements
        with pytest.raises(ValueError):
            uuid_array([f"{ids[0]},{ids[1]}"])


def test_a_warmed_async_cached_call_runs_no_import_statement(
    db_url: str, ctx: ExecutionContext, three: list[Any], monkeypatch: pytest.MonkeyPatch,
    default_memory_cache: None,
) -> None:
    """The same for the async cache: a read's miss and hit on the process's async cache, and a
    write whose committed event invalidates it."""
    read = acached(STUDENTS, name="tests.hot_path.async_imports")(astudents.find_by_id)

    async def main() -> list[str]:
        async with await aio.connect(db_url) as conn:
            async def calls() -> None:
                for s in three:
                    assert (await read(conn, ctx, s.id)).unwrap().id == s.id
                async with aio.unit_of_work(conn, ctx):
                    moved = await astudents.update(conn, ctx, three[0].id, {"grade": "3"})
                    assert moved.unwrap().grade == "3"

            return await _imports_of_async(monkeypatch, calls)

    assert asyncio.run(main()) == []
