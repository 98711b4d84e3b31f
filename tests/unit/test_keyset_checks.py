"""Keyset pages refuse a sort they cannot step through, before any statement: a nullable sort
column is an ``InvalidQuery`` naming it (a keyset cannot step past a NULL), checked after the
limit and the sort itself, and nothing reaches the connection."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure

import wxdata.domains  # noqa: F401 - registers every entity
from wxdata import ExecutionContext, Purpose, Role
from wxdata.core import reads
from wxdata.errors import InvalidQuery
from wxdata.schema.spec import Entity, registered

pytestmark = pytest.mark.unit

ENTITIES = sorted(registered(), key=lambda e: e.table)
CTX = ExecutionContext(user_id="u-keyset", role=Role.NURSE, purpose=Purpose.TREATMENT,
                       school_ids={uuid.UUID(int=1)}, request_id="req-keyset")


def _answer(entity: Entity[Any], order_by: Any, limit: int = 20) -> Any:
    """The plan's answer when it ends before its first effect; fails the test if it asks for one."""
    plan = reads.find_after(None, CTX, entity, order_by=order_by, limit=limit)  # type: ignore[arg-type]
    try:
        effect = next(plan)
    except StopIteration as done:
        return done.value
    pytest.fail(f"the plan reached the connection: {type(effect).__name__}")


WITH_NULLABLE = [e for e in ENTITIES if any(c.sortable and c.nullable for c in e.columns)]


@st.composite
def sorts(draw: st.DrawFn, nullable: bool = False) -> tuple[Entity[Any], list[str]]:
    """An entity and one to four of its sortable columns (with ``nullable``: one at least is)."""
    entity = draw(st.sampled_from(WITH_NULLABLE if nullable else ENTITIES))
    sortable = [c.name for c in entity.columns if c.sortable]
    chosen = draw(st.lists(st.sampled_from(sortable), min_size=0, max_size=3, unique=True))
    if nullable:
        some = draw(st.sampled_from([c.name for c in entity.columns if c.sortable and c.nullable]))
        chosen = [c for c in chosen if c != some]
        chosen.insert(draw(st.integers(0, len(chosen))), some)
    return entity, chosen or sortable[:1]


def test_some_entities_have_nullable_sort_columns() -> None:
    assert len(WITH_NULLABLE) >= 10  # the property below has cases to draw from


@given(sorts(nullable=True))
def test_a_nullable_sort_column_is_refused_by_name(case: tuple[Entity[Any], list[str]]) -> None:
    entity, chosen = case
    nullable = [name for name in chosen if entity.by_name[name].nullable]
    answer = _answer(entity, chosen)
    assert isinstance(answer, Failure)
    error = answer.failure()
    assert isinstance(error, InvalidQuery)
    assert (error.field, error.rule) == (nullable[0], "keyset pagination needs non-null sort columns")


@given(sorts())
def test_the_limit_and_the_sort_are_checked_first(case: tuple[Entity[Any], list[str]]) -> None:
    entity, chosen = case
    too_many = _answer(entity, chosen, limit=0)
    assert isinstance(too_many, Failure) and too_many.failure().field == "limit"
    unknown = _answer(entity, [*chosen, "no_such_column"])
    assert isinstance(unknown, Failure) and unknown.failure().field == "no_such_column"
