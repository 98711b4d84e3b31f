"""Records written from a memoised template are the records built in full, as stored.

``log_read`` and ``log_export`` without metadata, and the success records of ``audited``, write
their record from a template memoised per entity, action, fields, metadata and break-glass flag
(who acts and which rows are bound per call). Each test here writes the same facts both ways on
the real database, through the template and through :func:`wxdata.audit.write_record` with the
record :func:`wxdata.audit.build_record` builds, and compares the two stored rows column by
column (all but those that tell two rows apart: ``seq``, ``id``, ``created_at``,
``transaction_id`` and the request id used to find them).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

import attrs
import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from returns.result import Result, Success

from wxdata import ExecutionContext, Purpose, Role
from wxdata.audit import AuditAction, audited, build_record, log_export, log_read, write_record
from wxdata.audit.log import DISCLOSURES
from wxdata.errors import DataError
from wxdata.schema import HEALTH_RECORDS, STUDENTS
from wxdata.schema.spec import Entity

Conn = psycopg.Connection[Any]

_APART = frozenset({"seq", "id", "created_at", "transaction_id", "request_id"})
_ENTITIES = {"students": STUDENTS, "health_records": HEALTH_RECORDS}
_POOL = [uuid.UUID(int=n) for n in range(1, 4)]
#: Characters the log can store: any but NUL and lone surrogates (a record holding one is refused
#: by name, ``test_audit_unstorable_text.py``).
_STORABLE = st.characters(exclude_characters="\x00", exclude_categories=("Cs",))
_IDS = st.lists(st.none() | st.sampled_from(_POOL) | st.uuids(), max_size=3)
_METADATA = st.none() | st.dictionaries(
    st.sampled_from(["operation", "cache", "count", "token"]),
    st.one_of(st.text(_STORABLE, max_size=4), st.integers(-2, 2), st.booleans(), st.none(),
              st.lists(st.text(_STORABLE, max_size=2), max_size=2)), max_size=3)
_FIELDS = st.none() | st.lists(st.sampled_from(["id", "grade", "notes", "api_key"]), max_size=3,
                               unique=True)


def _ctx(break_glass: bool) -> ExecutionContext:
    ctx = ExecutionContext(user_id="u-tpl", role=Role.NURSE, purpose=Purpose.TREATMENT,
                           ip_address="10.0.0.7", request_id=f"req-{uuid.uuid4().hex[:12]}")
    return ctx.break_glass("student collapsed at recess") if break_glass else ctx


def _stored(conn: Conn, ctx: ExecutionContext) -> list[dict[str, Any]]:
    cur = conn.execute("SELECT * FROM audit_log WHERE request_id = %s ORDER BY seq",
                       (ctx.request_id,))
    names = [d.name for d in cur.description or ()]
    return [{k: v for k, v in zip(names, row, strict=True) if k not in _APART}
            for row in cur.fetchall()]


def _in_full(conn: Conn, ctx: ExecutionContext, entity: Entity[Any], action: AuditAction,
             ids: Sequence[UUID | None], subjects: Sequence[UUID | None],
             fields: Sequence[str], metadata: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The same facts written through the record built in full, under a request id of its own."""
    twin = attrs.evolve(ctx, request_id=f"req-{uuid.uuid4().hex[:12]}")
    record = build_record(twin, entity, action, ids=ids, subjects=subjects, fields=fields,
                          metadata=metadata)
    write_record(conn, twin, record, disclosure=action in DISCLOSURES).unwrap()
    return _stored(conn, twin)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entity=st.sampled_from(sorted(_ENTITIES)), export=st.booleans(), ids=_IDS,
       subjects=_IDS, fields=_FIELDS, metadata=_METADATA, break_glass=st.booleans())
def test_an_explicit_disclosure_is_stored_as_the_record_built_in_full(
    conn: Conn, entity: str, export: bool, ids: list[UUID | None], subjects: list[UUID | None],
    fields: list[str] | None, metadata: dict[str, Any] | None, break_glass: bool,
) -> None:
    """``log_read`` and ``log_export`` for any ids (repeated, missing), subjects, fields and
    metadata (absent: from the template; given: built in full), with and without breaking the
    glass: one row each, equal to the record built in full."""
    spec = _ENTITIES[entity]
    ctx = _ctx(break_glass)
    disclosed = spec.column_names if fields is None else tuple(fields)
    if export:
        log_export(conn, ctx, spec, ids=ids, subjects=subjects, fields=fields,  # type: ignore[arg-type]
                   metadata=metadata).unwrap()
        action, named = AuditAction.EXPORT, subjects
    else:
        log_read(conn, ctx, spec, ids, subjects=subjects, fields=fields,  # type: ignore[arg-type]
                 metadata=metadata).unwrap()
        # log_read's rule: a student names itself when no subject is given
        action, named = AuditAction.READ, subjects or (ids if spec.subject == spec.pk else [])
    stored = _stored(conn, ctx)
    assert len(stored) == 1
    assert stored == _in_full(conn, ctx, spec, action, ids, named, disclosed, metadata)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(action=st.sampled_from([AuditAction.READ, AuditAction.VIEW, AuditAction.PRINT,
                               AuditAction.EXPORT, AuditAction.CREATE, AuditAction.UPDATE,
                               AuditAction.IMPORT]),
       ids=st.lists(st.sampled_from(_POOL) | st.uuids(), min_size=1, max_size=3),
       break_glass=st.booleans())
def test_an_audited_calls_record_is_stored_as_the_record_built_in_full(
    conn: Conn, action: AuditAction, ids: list[UUID], break_glass: bool,
) -> None:
    """A call under ``audited`` that returns rows' ids: its success record, for disclosures and
    changes alike, equals the record built in full from the same facts and its label."""
    ctx = _ctx(break_glass)

    @audited(STUDENTS, action, ids=lambda value: value, subjects=lambda value: value,
             fields=("id", "grade"))
    def touch(c: Conn, x: ExecutionContext) -> Result[list[UUID], DataError]:
        return Success(ids)

    assert touch(conn, ctx).unwrap() == ids
    stored = _stored(conn, ctx)
    assert len(stored) == 1
    label = stored[0]["metadata"]["operation"]
    assert label.endswith("touch")
    fields = ("id", "grade") if action in DISCLOSURES else ()
    assert stored == _in_full(conn, ctx, STUDENTS, action, ids, ids, fields, {"operation": label})
