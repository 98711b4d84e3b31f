"""A write's bound parameters: every value under ``c_<column>``, JSON columns wrapped as jsonb.

The parameter names are made once per entity; a write binds each clean value under its column's
name, unchanged, except a JSON column's non-null value, which is wrapped so that it binds as jsonb.
Checked for every registered entity and any subset of its columns, with JSON values and NULLs.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

import wxdata.domains  # noqa: F401 - registers every entity
from wxdata.core.writes import _write_params
from wxdata.schema.spec import Entity, Kind, registered

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
    assert list(params) == [f"c_{name}" for name in clean]
    for name, value in clean.items():
        bound = params[f"c_{name}"]
        if value is not None and entity.by_name[name].kind is Kind.JSON:
            assert isinstance(bound, Jsonb) and bound.obj is value
        else:
            assert bound is value


def test_some_entity_has_a_json_column() -> None:
    """The property above reaches the jsonb wrapping (an entity with a JSON column exists)."""
    assert any(c.kind is Kind.JSON for e in ENTITIES for c in e.by_name.values())


def test_a_name_that_is_no_column_still_binds_under_its_prefix() -> None:
    entity = ENTITIES[0]
    assert _write_params(entity, {"_not_a_column": 1}) == {"c__not_a_column": 1}
