"""The statements that write one audit record: what is bound, what is a literal, what is left out.

A plain record INSERT writes the record's shape columns (action, entity, fields, classification,
outcome, tags) as literals and binds the context, the ids and the non-NULL free-form fields; the
metadata JSON of a flat mapping is rendered once per distinct content. These properties hold for
any record, so they are checked over generated ones.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from wxdata.audit.decorator import extract
from wxdata.audit.log import build_record, due_record, due_template
from wxdata.audit.record import (
    ALL_FIELDS,
    CONTEXT_COLUMNS,
    ID_COLUMNS,
    AuditAction,
    AuditRecord,
    AuditSeverity,
    ComplianceType,
    context_params,
    context_values,
    disclosed_fields,
    fields_named,
    params,
)
from wxdata.audit.redact import SECRET_MARK
from wxdata.audit.sql import SHAPE_COLUMNS, insert_record, positional, record_insert, shape_of
from wxdata.cache.core import hit_record, plan
from wxdata.context import ExecutionContext, Purpose, Role
from wxdata.core.auditing import _record, _riding
from wxdata.schema import STUDENTS, registered
from wxdata.schema.spec import Entity

_CTX = ExecutionContext(user_id="u-1", role=Role.NURSE, purpose=Purpose.TREATMENT,
                        ip_address="10.0.0.1", request_id="req-1")
_SCALARS = st.one_of(st.booleans(), st.integers(-3, 3), st.floats(-2, 2, allow_nan=False),
                     st.none(), st.text(max_size=8))
_FLAT = st.dictionaries(st.sampled_from(["k", "n", "operation", "password", "cache"]), _SCALARS,
                        max_size=4)
_RECORDS = st.builds(
    AuditRecord,
    action=st.sampled_from(list(AuditAction)),
    entity_type=st.sampled_from(["Student", "HealthRecord", "System"]),
    entity_ids=st.lists(st.uuids(), max_size=3).map(tuple),
    subject_ids=st.lists(st.uuids(), max_size=2).map(tuple),
    changes=st.none() | st.just({"grade": {"before": "5", "after": "6"}}),
    fields_disclosed=st.lists(st.sampled_from(["id", "grade", "a\"b", "c'd", "e\\f"]),
                              max_size=3, unique=True).map(tuple),
    is_phi=st.booleans(),
    compliance_type=st.sampled_from(list(ComplianceType)),
    severity=st.sampled_from(list(AuditSeverity)),
    success=st.booleans(),
    error_message=st.none() | st.just("CONFLICT"),
    metadata=st.none() | _FLAT,
    tags=st.lists(st.sampled_from(["x", "y"]), max_size=2, unique=True).map(tuple),
)


@given(_RECORDS)
def test_a_record_insert_binds_exactly_the_context_ids_and_present_free_fields(
    record: AuditRecord,
) -> None:
    every = params(_CTX, record)
    statement, bound = insert_record(every)
    placeholders = set(re.findall(r"%\((\w+)\)s", statement))
    assert placeholders == set(bound)
    free = {k for k, v in every.items() if v is not None
            and k[2:] not in (*SHAPE_COLUMNS, *CONTEXT_COLUMNS, *ID_COLUMNS)}
    assert set(bound) == {f"a_{c}" for c in (*CONTEXT_COLUMNS, *ID_COLUMNS)} | free
    assert all(bound[k] == every[k] for k in bound)
    for column in SHAPE_COLUMNS:  # written into the statement, never bound
        assert f"%(a_{column})s" not in statement
        assert (f'"{column}"' in statement) == (every[f"a_{column}"] is not None)
    for key, value in every.items():  # a NULL free field is left out (its column's default)
        if value is None and key[2:] not in (*CONTEXT_COLUMNS, *ID_COLUMNS):
            assert f'"{key[2:]}"' not in statement


@given(_RECORDS, _RECORDS)
def test_one_statement_per_shape_whatever_the_ids(first: AuditRecord, second: AuditRecord) -> None:
    same_shape = AuditRecord(**{**{f: getattr(first, f) for f in first.__slots__
                                   if not f.startswith("__")},
                                "entity_ids": second.entity_ids,
                                "subject_ids": second.subject_ids})
    assert insert_record(params(_CTX, first))[0] == insert_record(params(_CTX, same_shape))[0]


@given(st.lists(_FLAT, min_size=1, max_size=6))
def test_memoised_metadata_json_is_the_json_of_that_very_mapping(metas: list[dict[str, Any]]) -> None:
    for meta in metas:  # True, 1 and 1.0 are equal dictionary keys; their JSON differs
        record = AuditRecord(action=AuditAction.READ, entity_type="Student", metadata=meta)
        rendered = json.loads(params(_CTX, record)["a_metadata"])
        expected = {k: (SECRET_MARK if k == "password" else v) for k, v in meta.items()}
        assert rendered == expected
        assert [type(rendered[k]) for k in sorted(rendered)] == [
            type(expected[k]) for k in sorted(expected)]


def test_an_id_that_is_not_a_uuid_is_refused_before_any_statement() -> None:
    record = AuditRecord(action=AuditAction.READ, entity_type="Student",
                         entity_ids=(f"{uuid.uuid4()},{uuid.uuid4()}",))  # type: ignore[arg-type]
    try:
        params(_CTX, record)
    except ValueError:
        return
    raise AssertionError("two ids in one string were accepted")


# --- a record's template: built once, the same record and statement as one built in full -------

_CONTEXTS = st.builds(
    ExecutionContext,
    user_id=st.sampled_from(["u-1", "u-2"]), role=st.sampled_from([Role.NURSE, Role.ADMIN]),
    purpose=st.sampled_from([Purpose.TREATMENT, Purpose.OPERATIONS]),
    ip_address=st.sampled_from(["10.0.0.1", "10.0.0.2"]),
    request_id=st.sampled_from(["req-1", "req-2"]),
    break_glass_reason=st.none() | st.just("unconscious student, allergy check"),
)
_IDS = st.lists(st.none() | st.uuids(), max_size=3)
_FLAT_ITEMS = st.sampled_from([(), (("cache", "hit"), ("operation", "reader.by_id")),
                         (("operation", "reports.roster"),), (("password", "hunter2"),)])


@given(_CONTEXTS, st.sampled_from(sorted(registered(), key=lambda e: e.name)),
       st.sampled_from(list(AuditAction)), _IDS, _IDS,
       st.lists(st.sampled_from(["id", "grade", "a\"b", "notes"]), max_size=3,
                unique=True).map(tuple), _FLAT_ITEMS, st.booleans())
def test_a_due_record_is_the_record_and_statement_built_in_full(
    ctx: ExecutionContext, entity: Entity[Any], action: AuditAction,
    ids: list[uuid.UUID | None], subjects: list[uuid.UUID | None], fields: tuple[str, ...],
    metadata: tuple[tuple[str, str], ...], relaxed: bool,
) -> None:
    """The memoised template plus the rows' ids gives exactly the record :func:`build_record`
    builds and the INSERT :func:`record_insert` renders from it (bound positionally: the same
    text, the same values in their order), break-glass severity and scrubbed metadata included,
    whatever the action."""
    due = due_record(ctx, entity, action, ids, subjects, fields, metadata)
    full = build_record(ctx, entity, action, ids=ids, subjects=subjects, fields=fields,
                        metadata=dict(metadata) or None)
    assert due.action is action
    assert due.record() == full
    assert due.insert(relaxed) == positional(*record_insert(ctx, full, relaxed=relaxed))


def _row_of(entity: Entity[Any], rid: uuid.UUID, sid: uuid.UUID | None) -> Any:
    values: dict[str, Any] = dict.fromkeys(entity.column_names)
    values[entity.pk] = rid
    if entity.subject is not None and entity.subject != entity.pk:
        values[entity.subject] = sid
    return entity.row_type(**values)


@given(st.sampled_from(sorted((e for e in registered() if e.audit_reads), key=lambda e: e.name)),
       st.uuids(), st.none() | st.uuids())
def test_a_hit_on_one_row_owes_what_walking_the_row_finds(
    entity: Entity[Any], rid: uuid.UUID, sid: uuid.UUID | None,
) -> None:
    """One row of the entity is read directly (its id, subject and fields); what it discloses,
    and the record a cache hit on it owes, are what the general walk gives for the same row in a
    list."""
    row = _row_of(entity, rid, sid)
    ctx = _CTX
    due = hit_record(ctx, entity, row, "reader.by_id")
    walked = hit_record(ctx, entity, [row], "reader.by_id")  # a list: the general walk
    found = extract(entity, [row])
    assert extract(entity, row) == found
    assert due is not None and walked is not None
    assert due.record() == walked.record()
    assert due.insert() == walked.insert()
    assert (due.ids, due.subjects) == (found.ids, found.subjects)
    # a whole row discloses every readable column: stored as "*", read back as the columns
    assert set(found.fields) == set(entity.column_names)
    assert due.record().fields_disclosed == ALL_FIELDS
    assert fields_named(entity.name, due.record().fields_disclosed) == entity.column_names


def _by_id_reader(conn: Any, ctx: ExecutionContext, id: uuid.UUID) -> Any:
    """A read to cache (never called: only its plan is built)."""
    raise AssertionError("not called")


@given(st.sampled_from(sorted((e for e in registered() if e.audit_reads), key=lambda e: e.name)),
       st.lists(st.tuples(_CONTEXTS, st.uuids(), st.none() | st.uuids()), min_size=1, max_size=4),
       st.booleans())
def test_a_cached_reads_hit_on_one_row_owes_the_general_walks_record(
    entity: Entity[Any], hits: list[tuple[ExecutionContext, uuid.UUID, uuid.UUID | None]],
    relaxed: bool,
) -> None:
    """A cached read's hits on single rows, whoever reads them and in whatever order of break-glass
    and ordinary contexts, each owe the record and the INSERT the general walk gives for the same
    row in a list (the plan finds the record's template once per break-glass flag, not per hit);
    a value that is not one row of the entity takes the general walk itself."""
    p = plan(_by_id_reader, entity=entity, ttl=None, tags=None, key=None, depends=(),
             partition=None, name="reader.by_id", unkeyed=())
    for ctx, rid, sid in hits:
        row = _row_of(entity, rid, sid)
        due = p.hit_record(ctx, row)
        walked = hit_record(ctx, entity, [row], "reader.by_id")
        assert due is not None and walked is not None
        assert due.record() == walked.record()
        assert due.insert(relaxed) == walked.insert(relaxed)
        listed = p.hit_record(ctx, [row])
        assert listed is not None and listed.record() == walked.record()


_ENTITIES = st.sampled_from(sorted(registered(), key=lambda e: e.name))


@given(_ENTITIES, st.data())
def test_every_column_in_any_order_is_stored_as_all_fields(entity: Entity[Any], data: Any) -> None:
    """Whole rows disclose every readable column: a record stores ``*`` whatever the order the
    names came in, and readers get the entity's columns back."""
    names = data.draw(st.permutations(entity.column_names))
    assert disclosed_fields(entity, names) == ALL_FIELDS
    assert fields_named(entity.name, disclosed_fields(entity, names)) == entity.column_names
    assert build_record(_CTX, entity, AuditAction.READ, fields=names).fields_disclosed == ALL_FIELDS


@given(_ENTITIES, st.data())
def test_anything_short_of_every_column_is_stored_as_named(entity: Entity[Any], data: Any) -> None:
    """A projection, a list with a column twice in place of another, or a name the entity does not
    have is stored as given: ``*`` never claims less or more than was named."""
    every = list(entity.column_names)
    names = data.draw(st.lists(st.sampled_from(every), max_size=len(every) - 1, unique=True))
    if every:
        names = data.draw(st.sampled_from([
            names, [*every[:-1], every[0]], [*every, "not_a_column"], [*every[:-1], "x"]]))
    stored = disclosed_fields(entity, names)
    assert stored == tuple(names)
    assert fields_named(entity.name, stored) == tuple(names)


@given(_CONTEXTS, _CONTEXTS, st.sampled_from(list(AuditAction)))
def test_one_template_serves_every_caller_with_the_same_break_glass_flag(
    first: ExecutionContext, second: ExecutionContext, action: AuditAction,
) -> None:
    """A new request's context builds no new template: only breaking the glass (the record's
    severity) changes it; who acts is bound per record. Another action is another template."""
    entity = STUDENTS
    one = due_template(first, entity, action, ("id", "grade"), (("cache", "hit"),))
    other = due_template(second, entity, action, ("id", "grade"), (("cache", "hit"),))
    assert (one is other) == (first.is_break_glass == second.is_break_glass)
    assert not any(k.removeprefix("a_") in CONTEXT_COLUMNS for k in one.free)
    for different in AuditAction:
        if different is not action:
            assert due_template(first, entity, different, ("id", "grade"),
                                (("cache", "hit"),)).base.action is different


@given(_CONTEXTS, _CONTEXTS, st.sampled_from(list(AuditAction)))
def test_a_riding_statement_binds_its_own_reader_from_a_shared_template(
    first: ExecutionContext, second: ExecutionContext, action: AuditAction,
) -> None:
    """The riding template built for one reader serves the next (same break-glass flag) with
    exactly the shape and parameters its own record would have: nothing of the first leaks."""
    fields = ("id", "grade")
    _riding(first, STUDENTS, action, fields)
    template = _riding(second, STUDENTS, action, fields)
    own = _record(second, STUDENTS, action, fields=fields)
    shape, bound = shape_of(params(second, own))
    assert template.base == own
    assert template.shape == shape and template.params(second) == bound


_IDS = st.from_regex(r"[A-Za-z0-9._:@/+=-]{1,128}", fullmatch=True)


@given(user=_IDS, role=st.sampled_from([r for r in Role if r is not Role.SYSTEM]),
       purpose=st.sampled_from([p for p in Purpose if p is not Purpose.SYSTEM]),
       name=st.none() | st.text(st.characters(blacklist_characters="\x00"), max_size=20),
       ip=st.none() | st.ip_addresses().map(str), agent=st.none() | st.just("agent/1"),
       request=st.none() | _IDS, session=st.none() | _IDS, correlation=st.none() | _IDS)
def test_the_context_parameters_are_the_contexts_values_by_column(
    user: str, role: Role, purpose: Purpose, name: str | None, ip: str | None,
    agent: str | None, request: str | None, session: str | None, correlation: str | None,
) -> None:
    ctx = ExecutionContext(user_id=user, user_name=name, role=role, purpose=purpose,
                           ip_address=ip, user_agent=agent, request_id=request,
                           session_id=session, correlation_id=correlation)
    expected = {"user_id": user, "user_name": name, "user_role": role.value, "ip_address": ip,
                "user_agent": agent, "request_id": request, "session_id": session,
                "correlation_id": correlation, "purpose": purpose.value,
                "break_glass_reason": None}
    bound = context_params(ctx)
    assert bound == {f"a_{c}": expected[c] for c in CONTEXT_COLUMNS}
    assert list(bound) == [f"a_{c}" for c in CONTEXT_COLUMNS]  # every column, in their order
    assert context_values(ctx) == tuple(expected[c] for c in CONTEXT_COLUMNS)
    # role and purpose are bound as plain strings, as psycopg dumps text, not as enum members
    assert type(bound["a_user_role"]) is str and type(bound["a_purpose"]) is str
