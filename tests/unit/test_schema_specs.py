"""The entity specs hold together without a database: every entity registered once, every column
classified (secrets never readable), PHI entities soft-delete, student-linked entities reference
``students``. ``tests/integration/test_schema_drift.py`` compares the same specs with the migrated tables."""

from __future__ import annotations

from typing import Any

import pytest

import wxdata.domains  # noqa: F401 - registers every entity
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
