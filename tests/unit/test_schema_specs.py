"""The entity specs hold together without a database: every entity registered once, every column
classified (secrets never readable), PHI entities soft-delete, student-linked entities reference
``students``. ``tests/integration/test_schema_drift.py`` compares the same specs with the migrated tables."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import wxdata.domains  # noqa: F401 - registers every entity
from wxdata.core.execute import _rows_builder
from wxdata.schema.spec import DataClass, Entity, registered

ENTITIES = sorted(registered(), key=lambda e: e.table)


def test_entities_are_registered() -> None:
    assert len(ENTITIES) >= 98
    assert len({e.table for e in ENTITIES}) == len(ENTITIES), "two entities share a table"


@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.table)
def test_every_column_is_classified(entity: Entity[Any]) -> None:
    for column in (*entity.columns, *entity.secrets):
        assert isinstance(column.data_class, DataClass), f"{entity.table}.{column.name}"
    for column in entity.secrets:
        assert column.data_class is DataClass.SECRET, f"{entity.table}.{column.name}"
        assert column.name not in entity.column_names, f"{entity.table}.{column.name} is readable"


def test_phi_entities_soft_delete() -> None:
    offenders = [e.table for e in ENTITIES if e.is_phi and e.managed("deleted_at") is None]
    assert not offenders, f"PHI entities without deleted_at: {offenders}"


def test_student_linked_specs_reference_students() -> None:
    for e in ENTITIES:
        if e.subject is not None and e.table != "students":
            assert e.by_name[e.subject].rules.references == "students", e.table


@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.table)
def test_stored_order_is_the_own_columns_then_the_inherited(entity: Entity[Any]) -> None:
    inherited = _inherited(entity)
    stored = entity.stored_names
    assert sorted(stored) == sorted(entity.column_names)
    flags = [name in inherited for name in stored]
    assert flags == sorted(flags)  # own columns first, inherited ones last
    for part in (True, False):  # each part in the row's order
        assert [n for n in stored if (n in inherited) is part] == [
            n for n in entity.column_names if (n in inherited) is part]


def _inherited(entity: Entity[Any]) -> set[str]:
    import attrs

    return {f.name for base in entity.row_type.__mro__[1:] if attrs.has(base)
            for f in attrs.fields(base)}


@given(st.sampled_from(ENTITIES), st.randoms(use_true_random=False), st.integers(1, 3),
       st.integers(0, 2))
def test_a_row_fetched_in_any_order_is_built_as_in_the_rows_own(
    entity: Entity[Any], rnd: Any, count: int, offset: int,
) -> None:
    """Rows fetched in another column order (the stored one, or any), after ``offset`` leading
    columns (a page's total), are built with every value under its own column, the same as rows
    fetched in the row's order."""
    names = list(entity.column_names)
    rnd.shuffle(names)
    fetch = tuple(names)
    lead = tuple(object() for _ in range(offset))
    values = [{name: object() for name in entity.column_names} for _ in range(count)]
    built = _rows_builder(entity, fetch, None, offset)(
        [lead + tuple(v[n] for n in fetch) for v in values])
    own = _rows_builder(entity, entity.column_names, None, offset)(
        [lead + tuple(v[n] for n in entity.column_names) for v in values])
    for row, same, v in zip(built, own, values, strict=True):
        for name in entity.column_names:
            assert getattr(row, name) is v[name] is getattr(same, name), (entity.table, name)


@given(st.sampled_from(ENTITIES), st.data())
def test_every_columns_value_is_converted_or_refused_with_a_rule(
    entity: Entity[Any], data: st.DataObject,
) -> None:
    """Every kind of every column has its conversion: any value is converted or refused with a
    rule (``_Bad``), never another exception."""
    from wxdata.schema.validate import _Bad, coerce_value

    column = data.draw(st.sampled_from(entity.columns))
    value = data.draw(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                                st.text(max_size=8), st.uuids(), st.dates(), st.datetimes(),
                                st.lists(st.text(max_size=3), max_size=3)))
    try:
        coerce_value(column, value)
        rule = "converted"
    except _Bad as bad:
        rule = bad.rule
    assert rule


def test_a_students_age_is_counted_on_the_day_not_future_is_checked_against(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both date rules of a student read the same day (UTC, :func:`utc_today`): a child turning
    three that day is accepted, one turning three the day after is refused."""
    from datetime import date

    from wxdata.schema import students, validate

    assert students.utc_today is validate.utc_today
    monkeypatch.setattr(students, "utc_today", lambda: date(2025, 1, 15))
    assert list(students._age_in_range({"date_of_birth": date(2022, 1, 15)})) == []
    refused = list(students._age_in_range({"date_of_birth": date(2022, 1, 16)}))
    assert [(e.field, e.rule) for e in refused] == [("date_of_birth", "age must be between 3 and 22")]


def test_every_kind_has_its_conversion() -> None:
    from wxdata.schema.spec import Kind
    from wxdata.schema.validate import _COERCE

    assert set(_COERCE) == set(Kind)
