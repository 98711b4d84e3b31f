"""Clinical free text never reaches the audit trail, for every entity that has any.

For every entity having such columns (the pinned list, ``tests/clinical_text.py``), a unique
sentinel written through create, update and delete never appears in any column of any
``audit_log`` row (compared as text), while the records of those writes exist and name the masked
fields. That the pinned list is exactly the columns classified as clinical free text is checked in
``tests/unit/test_clinical_text_classification.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from returns.result import Failure, Success

import wxdata.domains  # noqa: F401 - registers every entity
from tests.clinical_text import CLINICAL_TEXT
from tests.integration.test_domains_crud import Builder
from wxdata import crud
from wxdata.audit.redact import MASK
from wxdata.context import ExecutionContext
from wxdata.errors import ValidationFailed
from wxdata.schema.spec import Entity, Kind, registered

ENTITIES = sorted((e for e in registered() if e.table in CLINICAL_TEXT), key=lambda e: e.table)


@pytest.fixture
def admin(server_url: str, db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A privileged connection to the test database, to read the whole audit trail."""
    url = make_conninfo(server_url, dbname=conninfo_to_dict(db_url)["dbname"])
    with psycopg.connect(url, autocommit=True) as c:
        yield c


def _last_seq(admin: psycopg.Connection[Any]) -> int:
    row = admin.execute("SELECT COALESCE(max(seq), 0) FROM audit_log").fetchone()
    assert row is not None
    return int(row[0])


def _leaks(admin: psycopg.Connection[Any], marker: str, after: int) -> list[tuple[Any, ...]]:
    """Audit rows written after ``after`` whose text form (every column) contains ``marker``
    (the marker is new, so no earlier row can hold it: the scan stays the size of one example)."""
    return admin.execute(
        "SELECT seq, action, entity_type FROM audit_log a WHERE a.seq > %s "
        "AND strpos(a::text, %s) > 0", (after, marker)).fetchall()


def _sentinel(kind: Kind, text: str) -> Any:
    """The sentinel in the shape the column holds (text, a list of texts, or a JSON document)."""
    if kind is Kind.TEXT_ARRAY:
        return [text, f"{text}-second"]
    if kind is Kind.JSON:
        return {"entry": text, "more": [text]}
    return text


def _sentinel_values(entity: Entity[Any], marker: str, step: str) -> dict[str, Any]:
    return {name: _sentinel(entity.by_name[name].kind, f"{marker}-{step}-{name}")
            for name in CLINICAL_TEXT[entity.table]}


@settings(max_examples=2, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
@pytest.mark.parametrize("entity", ENTITIES, ids=lambda e: e.table)
@given(data=st.data())
def test_clinical_text_never_reaches_the_audit_trail(
    conn: psycopg.Connection[Any], sys_ctx: ExecutionContext, admin: psycopg.Connection[Any],
    entity: Entity[Any], data: st.DataObject,
) -> None:
    marker = f"CLINSENTINEL{uuid.uuid4().hex}"
    start = _last_seq(admin)
    builder = Builder(conn, sys_ctx, data.draw)
    values = {**builder.values(entity), **_sentinel_values(entity, marker, "create")}
    created = builder.create(entity, values)
    for name in CLINICAL_TEXT[entity.table]:
        assert getattr(created, name) == values[name], f"{entity.table}.{name} not stored"

    changes = _sentinel_values(entity, marker, "update")
    updated = crud.update(conn, sys_ctx, entity, created.id, changes)
    assert isinstance(updated, Success), f"{entity.table}: update failed: {updated}"
    first = CLINICAL_TEXT[entity.table][0]
    assert getattr(updated.unwrap(), first) == changes[first]
    nullable = {n: None for n in CLINICAL_TEXT[entity.table] if entity.by_name[n].nullable}
    cleared = crud.update(conn, sys_ctx, entity, created.id, nullable) if nullable else None
    if isinstance(cleared, Failure) and isinstance(cleared.failure(), ValidationFailed):
        # A cross-field rule may require one of them (an amended note needs its reason): keep
        # those, clear the rest.
        kept = {e.field for e in cleared.failure().errors}
        nullable = {n: None for n in nullable if n not in kept}
        cleared = crud.update(conn, sys_ctx, entity, created.id, nullable) if nullable else None
    assert cleared is None or isinstance(cleared, Success), f"{entity.table}: clearing failed"
    assert crud.delete(conn, sys_ctx, entity, created.id) == Success(None)

    assert _leaks(admin, marker, start) == [], f"{entity.table}: clinical text in the audit trail"

    records = admin.execute(
        "SELECT action, changes FROM audit_log WHERE entity_id = %s AND entity_type = %s "
        "ORDER BY seq", (created.id, entity.name)).fetchall()
    actions = [a for a, _ in records]
    assert actions[:2] == ["CREATE", "UPDATE"] and "DELETE" in actions, actions
    update_changes = records[1][1]
    for name in CLINICAL_TEXT[entity.table]:
        assert update_changes[name]["changed"] is True, f"{entity.table}.{name} not recorded"
        assert update_changes[name]["after"] == MASK, f"{entity.table}.{name} not masked"
