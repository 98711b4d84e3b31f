"""Accounting of disclosures a regulator accepts: recipients, legal basis, description and purpose
for every line, and disclosure records kept for as long as the student's records exist."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wxdata.audit.chain import seal
from wxdata.audit.disclosures import (
    DisclosureKind,
    LegalBasis,
    Recipient,
    build,
    record_disclosure_to,
)
from wxdata.audit.reports import accounting_of_disclosures
from wxdata.audit.retention import RetentionPolicy, apply_retention
from wxdata.context import ExecutionContext, Role, system_context
from wxdata.domains import health_records, students
from wxdata.errors import ValidationFailed

KEY = b"test-disclosure-retention-key-0123456789"


def _admin(ctx: ExecutionContext, school: dict[str, uuid.UUID]) -> ExecutionContext:
    return attrs.evolve(ctx, role=Role.ADMIN, school_ids=frozenset({school["school_id"]}),
                        user_id=f"u-admin-{uuid.uuid4().hex[:6]}", user_name="Pat Officer")


def test_accounting_prints_every_required_element(
    conn: psycopg.Connection[Any], ctx: ExecutionContext, school: dict[str, uuid.UUID],
    make_student: Any,
) -> None:
    admin = _admin(ctx, school)
    student = make_student()
    students.find_by_id(conn, admin, student.id).unwrap()  # an internal access
    release = build(
        recipient={"name": "Dr. Rivera", "organisation": "Valley Pediatrics",
                   "address": "12 Main St, Springfield"},
        legal_basis="TREATMENT", description="immunization history for a referral",
        subjects=(student.id,), fields=("vaccine_name", "administered_at"),
    ).unwrap()
    record_disclosure_to(conn, admin, health_records.ENTITY, release).unwrap()
    request = build(recipient=Recipient(name="County Court"), legal_basis="SUBPOENA_OR_COURT_ORDER",
                    description="request for all health records", subjects=(student.id,),
                    kind=DisclosureKind.REQUEST, granted=False).unwrap()
    record_disclosure_to(conn, admin, health_records.ENTITY, request).unwrap()

    lines = accounting_of_disclosures(conn, admin, student.id).unwrap().rows
    by_kind = {line.kind: line for line in lines if line.user_id == admin.user_id}
    access, disclosed, asked = by_kind["ACCESS"], by_kind["DISCLOSURE"], by_kind["REQUEST"]
    assert access.recipient == "Pat Officer" and access.purpose == "TREATMENT"
    assert access.description.startswith("read of Student")
    assert disclosed.recipient == "Dr. Rivera (Valley Pediatrics)"
    assert disclosed.recipient_address == "12 Main St, Springfield"
    assert disclosed.legal_basis == "TREATMENT" and disclosed.action == "EXPORT"
    assert disclosed.description == "immunization history for a referral"
    assert disclosed.fields == ("vaccine_name", "administered_at")
    assert disclosed.created_at is not None and disclosed.success
    assert asked.recipient == "County Court" and not asked.success
    assert asked.legal_basis == "SUBPOENA_OR_COURT_ORDER"


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(["", "   ", "x" * 201, "a\x00b"]) | st.just(None),
    basis=st.sampled_from(["TREATMENT", "bogus-basis", ""]),
    description=st.sampled_from(["ok", "", "y" * 501]),
    subjects=st.sampled_from([(), (uuid.uuid4(),), ("not-a-uuid",)]),
)
def test_bad_disclosures_are_typed_failures_naming_the_field(
    name: str | None, basis: str, description: str, subjects: tuple[Any, ...],
) -> None:
    result = build(recipient={"name": name}, legal_basis=basis, description=description,
                   subjects=subjects)
    valid = (name is not None and name.strip() and len(name) <= 200 and "\x00" not in name
             and basis == "TREATMENT" and 0 < len(description) <= 500
             and len(subjects) == 1 and isinstance(subjects[0], uuid.UUID))
    if valid:
        assert result.unwrap().legal_basis is LegalBasis.TREATMENT
        return
    failure = result.failure()
    assert isinstance(failure, ValidationFailed)
    (error,) = failure.errors
    assert error.field in {"name", "legal_basis", "description", "subjects"}
    for value in (name, basis, description):
        if value and len(value) > 3:
            assert value not in str(failure)


def _old_disclosure(conn: psycopg.Connection[Any], student_id: uuid.UUID, label: str) -> None:
    conn.execute(
        "INSERT INTO audit_log (action, entity_type, subject_student_id, subject_ids, user_id, "
        "user_name, is_phi, compliance_type, created_at) VALUES ('READ', 'HealthRecord', %s, "
        "ARRAY[%s]::uuid[], 'u-old', %s, true, 'HIPAA', now() - interval '7 years')",
        (student_id, student_id, label))


def test_retention_keeps_ferpa_disclosure_records_while_the_student_exists(
    fresh_database: Callable[[], str],
) -> None:
    officer = system_context("retention")
    with psycopg.connect(fresh_database(), autocommit=True) as conn:
        tag = uuid.uuid4().hex[:8]
        district = conn.execute("INSERT INTO districts (name, code) VALUES (%s, %s) RETURNING id",
                                (f"D {tag}", f"D-{tag}")).fetchone()
        assert district is not None
        sch = conn.execute("INSERT INTO schools (name, code, district_id) VALUES (%s, %s, %s) "
                           "RETURNING id", (f"S {tag}", f"S-{tag}", district[0])).fetchone()
        assert sch is not None
        kept = students.create(conn, officer, {
            "student_number": f"STU-{tag}", "first_name": "Ada", "last_name": "L",
            "date_of_birth": "2014-05-17", "grade": "5", "gender": "FEMALE",
            "enrollment_date": "2020-09-01", "school_id": sch[0], "district_id": district[0],
        }).unwrap()
        gone = uuid.uuid4()  # a student whose records no longer exist
        _old_disclosure(conn, kept.id, "student-exists")
        _old_disclosure(conn, gone, "student-gone")
        seal(conn, KEY).unwrap()
        dry = apply_retention(conn, officer).unwrap()
        assert (dry.eligible, dry.ferpa_kept) == (1, 1)
        purge = apply_retention(conn, officer, RetentionPolicy(), dry_run=False, key=KEY).unwrap()
        assert purge.purged == 1
        left = {r[0] for r in conn.execute("SELECT user_name FROM audit_log WHERE user_id = 'u-old'")}
        assert left == {"student-exists"}
        # The database guard refuses the deletion whoever asks while the student exists.
        with conn.transaction():
            conn.execute("SELECT set_config('wxdata.retention_purge', 'on', true)")
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute("DELETE FROM audit_log WHERE user_name = 'student-exists'")


def test_a_caller_who_cannot_see_every_school_can_prove_no_student_gone(
    fresh_database: Callable[[], str],
) -> None:
    """Fail closed: under a school scope a missing student may just be invisible, so it is kept."""
    with psycopg.connect(fresh_database(), autocommit=True) as conn:
        gone = uuid.uuid4()
        _old_disclosure(conn, gone, "student-gone")
        kept_sql = "SELECT audit_record_ferpa_kept(a) FROM audit_log a WHERE user_name = 'student-gone'"
        assert conn.execute(kept_sql).fetchone() == (False,)  # a bypassing role sees it is gone
        with conn.transaction():
            conn.execute("SET LOCAL ROLE wxdata_app")
            assert conn.execute(kept_sql).fetchone() == (True,)
