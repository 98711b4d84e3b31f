"""Audit records as FHIR R4 AuditEvents (IHE BALP): every resource validates against the R4B models,
codes come from the documented value sets, one resource per patient, never a value."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import attrs
import psycopg
import pytest
from fhir.resources.R4B.auditevent import AuditEvent
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row

from wxdata.audit import AuditAction, build_record, write_record
from wxdata.audit.fhir import ACT_REASON, PURPOSES, outcome_of, to_audit_events
from wxdata.context import ExecutionContext, Purpose
from wxdata.domains import students
from wxdata.schema import STUDENTS

SENTINEL = "Zyxwv-sentinel-value"
OUTCOMES = {"0", "4", "8", "12"}
FHIR_ACTIONS = {"C", "R", "U", "D", "E"}
PURPOSE_CODES = {code for code, _ in PURPOSES.values()}


def _validate(resource: dict[str, Any]) -> AuditEvent:
    """Parse with the R4B models (raises on any missing required element or wrong type)."""
    return AuditEvent.model_validate(resource)


def _check(row: dict[str, Any], events: list[dict[str, Any]]) -> None:
    subjects = {str(s) for s in (row.get("subject_ids") or ())}
    if row.get("subject_student_id"):
        subjects.add(str(row["subject_student_id"]))
    assert len(events) == max(1, len(subjects))
    patients = set()
    for event in events:
        model = _validate(event)
        assert model.outcome in OUTCOMES
        assert model.action in FHIR_ACTIONS
        assert model.agent[0].requestor is True and model.agent[1].requestor is False
        for purpose in event.get("purposeOfEvent", []):
            coding = purpose["coding"][0]
            assert coding["system"] == ACT_REASON and coding["code"] in PURPOSE_CODES
        named = [e for e in event["entity"] if e["role"]["code"] == "1"]
        assert len(named) == (1 if subjects else 0)
        patients.update(e["what"]["identifier"]["value"] for e in named)
        assert SENTINEL not in json.dumps(event)
    assert patients == subjects
    ids = [e["id"] for e in events]
    assert len(set(ids)) == len(ids)


rows = st.fixed_dictionaries({
    "seq": st.integers(1, 2**62),
    "action": st.sampled_from([a.value for a in AuditAction]),
    "created_at": st.datetimes(timezones=st.just(UTC)),
    "success": st.booleans(),
    "entity_type": st.sampled_from(["Student", "HealthRecord", "Allergy", "System"]),
    "entity_id": st.none() | st.uuids(),
    "entity_ids": st.lists(st.uuids(), max_size=3),
    "subject_student_id": st.none() | st.uuids(),
    "subject_ids": st.lists(st.uuids(), max_size=4),
    "user_id": st.sampled_from(["u-1", "nurse@district", "system"]),
    "user_name": st.none() | st.just("Nurse Joy"),
    "user_role": st.sampled_from(["NURSE", "ADMIN", "VIEWER", "SYSTEM"]),
    "ip_address": st.none() | st.sampled_from(["10.1.2.3", "::1", "2001:db8::7"]),
    "session_id": st.none() | st.just("sess-1"),
    "purpose": st.sampled_from([p.value for p in Purpose]),
    "break_glass_reason": st.none() | st.just("patient unconscious in the gym, allergy check"),
    "fields_disclosed": st.lists(st.sampled_from(["first_name", "diagnosis", "*"]), max_size=3),
    "changes": st.none() | st.just({"diagnosis": {"old": SENTINEL, "new": SENTINEL}}),
    "new_values": st.none() | st.just({"diagnosis": SENTINEL}),
    "previous_values": st.none() | st.just({"diagnosis": SENTINEL}),
    "error_message": st.none() | st.sampled_from(["NOT_FOUND", "FORBIDDEN"]),
})


@settings(max_examples=300, deadline=None)
@given(rows)
def test_every_action_maps_to_valid_audit_events_one_per_patient(row: dict[str, Any]) -> None:
    _check(row, to_audit_events(row))


def test_break_glass_is_emergency_treatment_purpose() -> None:
    row = {"seq": 1, "action": "READ", "created_at": datetime.now(UTC), "success": True,
           "purpose": "TREATMENT", "break_glass_reason": "unconscious student, allergy status needed"}
    (event,) = to_audit_events(row)
    assert event["purposeOfEvent"][0]["coding"][0]["code"] == "ETREAT"


@pytest.mark.parametrize(("action", "success", "code"), [
    ("READ", True, "0"), ("READ", False, "4"), ("UPDATE", False, "4"),
    ("ACCESS_DENIED", False, "8"), ("ACCESS_DENIED", True, "8"), ("AUTHORIZATION_FAILED", False, "8"),
    ("SERVER_ERROR", False, "12"), ("APPLICATION_ERROR", True, "12"),
])
def test_outcome_codes(action: str, success: bool, code: str) -> None:
    assert outcome_of(action, success) == code


def test_search_disclosing_three_students_gives_three_events() -> None:
    subjects = [uuid.uuid4() for _ in range(3)]
    row = {"seq": 7, "action": "READ", "created_at": datetime.now(UTC), "success": True,
           "subject_ids": subjects, "fields_disclosed": ["first_name", "last_name"],
           "entity_type": "Student", "entity_ids": subjects}
    events = to_audit_events(row)
    assert [e["entity"][0]["what"]["identifier"]["value"] for e in events] == [str(s) for s in subjects]
    detail = events[0]["entity"][1]["detail"]
    assert {"type": "fields-disclosed", "valueString": "first_name,last_name"} in detail


def test_a_record_of_whole_rows_names_every_column_of_its_entity() -> None:
    """``*`` (every readable column) is not a column: the event lists the entity's columns."""
    sid = uuid.uuid4()
    row = {"seq": 8, "action": "READ", "created_at": datetime.now(UTC), "success": True,
           "subject_ids": [sid], "fields_disclosed": ["*"], "entity_type": "Student",
           "entity_ids": [sid]}
    (event,) = to_audit_events(row)
    detail = event["entity"][1]["detail"]
    assert {"type": "fields-disclosed",
            "valueString": ",".join(STUDENTS.column_names)} in detail


def test_records_written_by_wxdata_map_to_valid_events(
    conn: psycopg.Connection[Any], sys_ctx: ExecutionContext, ctx: ExecutionContext,
    make_student: Any, school: dict[str, uuid.UUID],
) -> None:
    """A workload of every action through the real database: each stored record maps and validates."""
    request = f"req-fhir-{uuid.uuid4().hex[:8]}"
    nurse = attrs.evolve(ctx, request_id=request, school_ids=frozenset({school["school_id"]}))
    first, second = make_student(), make_student()
    students.find_by_id(conn, nurse, first.id).unwrap()
    students.find_many(conn, nurse, where={"school_id": school["school_id"]}).unwrap()
    students.update(conn, nurse, first.id, {"grade": "6"}, expected_version=first.version).unwrap()
    for action in AuditAction:
        record = build_record(nurse, "Student", action, ids=[second.id], subjects=[second.id],
                              success=action not in {AuditAction.ACCESS_DENIED})
        write_record(conn, nurse, record).unwrap()
    with conn.cursor(row_factory=dict_row) as cur:
        stored = cur.execute("SELECT * FROM audit_log WHERE request_id = %s ORDER BY seq",
                             (request,)).fetchall()
    assert {r["action"] for r in stored} >= {a.value for a in AuditAction}
    assert any(len(r["subject_ids"]) >= 2 for r in stored)  # the list read disclosed both
    for row in stored:
        _check(row, to_audit_events(row))


def test_fhir_export_streams_valid_ndjson_and_is_itself_audited(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, make_student: Any,
    school: dict[str, uuid.UUID], tmp_path: Any,
) -> None:
    from wxdata.audit.export import export
    from wxdata.context import Role

    nurse = attrs.evolve(ctx, school_ids=frozenset({school["school_id"]}))
    student = make_student()
    students.find_by_id(conn, nurse, student.id).unwrap()
    officer = attrs.evolve(ctx, user_id=f"u-officer-{uuid.uuid4().hex[:6]}", role=Role.ADMIN)
    out = tmp_path / "audit.ndjson"
    with out.open("w", encoding="utf-8") as fh:
        report = export(conn, officer, fh, "fhir", student_id=student.id, batch_size=2).unwrap()
    lines = out.read_text(encoding="utf-8").splitlines()
    assert report.rows >= 2 and len(lines) >= report.rows  # create + read, at least one event each
    events = [json.loads(line) for line in lines]
    for event in events:
        _validate(event)
        assert event["entity"][0]["what"]["identifier"]["value"] == str(student.id)
    assert {e["action"] for e in events} >= {"C", "R"}
    with conn.cursor(row_factory=dict_row) as cur:
        export_records = cur.execute(
            "SELECT metadata FROM audit_log WHERE action = 'EXPORT' AND user_id = %s",
            (officer.user_id,)).fetchall()
    assert [r["metadata"]["format"] for r in export_records] == ["fhir"]
