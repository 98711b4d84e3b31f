"""Execution contexts where they reach the database: a context older than the configured maximum
age (or from the future) is refused on every data path, while system jobs never expire; break-glass
reads and writes are audited CRITICAL with their reason. Building and validating contexts is
checked without a database in ``tests/unit/test_context_validation.py``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import psycopg
import pytest
from returns.result import Failure, Success

from tests.conftest import student_values
from tests.contexts import nurse
from wxdata import config
from wxdata.audit.log import log_transaction
from wxdata.context import ExecutionContext, context_age_error, validate_context
from wxdata.crud import find_by_id
from wxdata.domains import students
from wxdata.errors import ContextExpired, ContextRefused
from wxdata.schema.organisation import SCHOOLS
from wxdata.testing import assert_audited
from wxdata.tx import transactional, unit_of_work

# --- database: maximum context age -----------------------------------------------------------


@pytest.fixture
def max_age() -> Iterator[int]:
    previous = config.configure(attrs.evolve(config.settings(), context_max_age_seconds=60))
    yield 60
    config.configure(previous)


def test_an_old_context_is_refused_on_every_data_path(conn, make_student, school, max_age,
                                                      sys_ctx) -> None:
    s = make_student()
    scope = {school["school_id"]}
    fresh = nurse(school_ids=scope)
    old = nurse(school_ids=scope, timestamp=datetime.now(UTC) - timedelta(seconds=max_age + 5))
    future = nurse(school_ids=scope, timestamp=datetime.now(UTC) + timedelta(hours=1))
    assert students.find_by_id(conn, fresh, s.id).unwrap().id == s.id
    for stale in (old, future):
        assert isinstance(students.find_by_id(conn, stale, s.id).failure(), ContextExpired)
        assert isinstance(students.update(conn, stale, s.id, {"grade": "9"}).failure(),
                          ContextExpired)
        made = students.create(conn, stale, student_values(school))
        assert isinstance(made.failure(), ContextExpired)
        with pytest.raises(ContextRefused), unit_of_work(conn, stale):
            pass

        @transactional()
        def raw(c: psycopg.Connection[Any], ctx: ExecutionContext) -> Any:
            return Success(c.execute("SELECT 1").fetchone())

        assert isinstance(raw(conn, stale).failure(), ContextExpired)
        assert validate_context(stale) == Failure(
            ContextExpired(entity="ExecutionContext", reason=context_age_error(stale).reason))
    assert students.find_by_id(conn, fresh, s.id).unwrap().grade == s.grade  # nothing written
    long_job = attrs.evolve(sys_ctx, timestamp=datetime.now(UTC) - timedelta(days=1))
    assert students.find_by_id(conn, long_job, s.id).unwrap().id == s.id  # jobs never expire


# --- database: break-glass is always CRITICAL and carries the reason ---------------------------


REASON = "anaphylaxis on the field trip, allergy chart needed"


def test_break_glass_reads_and_writes_are_critical(conn, make_student, school) -> None:
    s = make_student()
    glass = nurse().break_glass(REASON)
    assert students.find_by_id(conn, glass, s.id).unwrap().id == s.id
    assert students.update(conn, glass, s.id, {"grade": "6"}).unwrap().grade == "6"
    # a non-PHI read is not a disclosure normally, but emergency access is accounted in full
    assert find_by_id(conn, glass, SCHOOLS, school["school_id"]).unwrap().id == school["school_id"]
    plain = nurse()
    assert find_by_id(conn, plain, SCHOOLS, school["school_id"]).unwrap().id == school["school_id"]
    assert conn.execute("SELECT count(*) FROM audit_log WHERE request_id = %s",
                        (plain.request_id,)).fetchone() == (0,)
    with unit_of_work(conn, glass, audit=True):
        students.find_by_id(conn, glass, s.id).unwrap()
    assert log_transaction(conn, glass, committed=False) == Success(None)
    rows = conn.execute(
        "SELECT action, entity_type, severity, break_glass_reason, purpose FROM audit_log "
        "WHERE request_id = %s ORDER BY seq", (glass.request_id,)).fetchall()
    assert_audited(conn, action="READ", entity="Student", subjects=[s.id], request_id=glass.request_id)
    assert_audited(conn, action="UPDATE", entity="Student", entity_id=s.id, request_id=glass.request_id)
    for action, entity in (("READ", "School"), ("TRANSACTION_COMMIT", "Transaction"),
                           ("TRANSACTION_ROLLBACK", "Transaction")):
        assert_audited(conn, action=action, entity=entity, request_id=glass.request_id)
    assert {(r[2], r[3], r[4]) for r in rows} == {("CRITICAL", REASON, "EMERGENCY")}
