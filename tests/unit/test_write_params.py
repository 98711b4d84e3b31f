"""A write's bound parameters: every value under its column's name, JSON columns wrapped as jsonb.

A write binds each clean value under its column's own name, unchanged, except a JSON column's
non-null value, which is wrapped so that it binds as jsonb, in a new dict the write adds its other
parameters to. Checked for every registered entity and any subset of its columns, with JSON values
and NULLs. No column may be named as the other parameters are (``_id``, ``a_user_id``, ``p0``):
such an entity is refused when it is declared.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

import wxdata.domains  # noqa: F401 - registers every entity
from wxdata.core.writes import _write_params
from wxdata.schema.spec import (
    Column,
    ColumnRules,
    DataClass,
    Entity,
    Kind,
    entity,
    pk,
    registered,
    row,
)

ENTITIES = sorted(registered(), key=lambda e: e.name)


@st.composite
def _clean_values(draw: st.DrawFn) -> tuple[Entity[Any], dict[str, Any]]:
    entity = draw(st.sampled_from(ENTITIES))
    names = draw(st.lists(st.sampled_from(sorted(entity.by_name)), unique=True, max_size=12))
    values = {name: draw(st.one_of(st.none(), st.integers(), st.text(max_size=5),
                                   st.dictionaries(st.text(max_size=3), st.integers(),
                                                   max_size=2)))
              for name in names}
    return entity, values


@given(_clean_values())
def test_each_value_binds_under_its_columns_name(case: tuple[Entity[Any], dict[str, Any]]) -> None:
    entity, clean = case
    params = _write_params(entity, clean)
    assert list(params) == list(clean)
    assert params is not clean  # the write adds its other parameters to its own dict
    for name, value in clean.items():
        bound = params[name]
        if value is not None and entity.by_name[name].kind is Kind.JSON:
            assert isinstance(bound, Jsonb) and bound.obj is value
        else:
            assert bound is value


def test_some_entity_has_a_json_column() -> None:
    """The property above reaches the jsonb wrapping (an entity with a JSON column exists)."""
    assert any(c.kind is Kind.JSON for e in ENTITIES for c in e.by_name.values())


@row
class _Clash:
    id: UUID = pk()


@given(st.sampled_from(["_id", "_uid", "_version", "_k0", "_limit", "_x", "a_user_id", "a_tags",
                        "p0", "p17"]))
def test_a_column_named_as_a_statement_parameter_is_refused(name: str) -> None:
    column = Column(name, Kind.TEXT, "text", True, ColumnRules(DataClass.GENERAL))
    with pytest.raises(ValueError, match="named as wxdata's own statement parameters"):
        entity(_Clash, table="clash_t", name="Clash", secrets=(column,))


@given(st.sampled_from(["p", "pa", "p0x", "ap_x", "grade", "apple", "b_", "page"]))
def test_a_name_only_like_a_parameters_is_a_column(name: str) -> None:
    column = Column(name, Kind.TEXT, "text", True, ColumnRules(DataClass.GENERAL))
    with pytest.raises(ValueError, match="registered twice"):  # got past the column checks
        entity(_Clash, table="clash_t", name=ENTITIES[0].name, secrets=(column,))


def test_every_registered_column_binds_under_its_own_name() -> None:
    """No registered entity names a column as a statement's other parameters are."""
    own = {"_id", "_uid", "_version", "_limit", "_offset"}
    for e in ENTITIES:
        for name in e.by_name:
            assert name not in own and not name.startswith(("_", "a_"))
            assert not (name[:1] == "p" and name[1:].isdigit())
