"""SQLAlchemy 2 models mirroring ``sql/0004_students.sql`` and the audit table, for the comparisons.

ORM mapped classes (declarative, typed ``Mapped[...]``) whose ``__table__`` objects double as the
Core tables, so Core and ORM run against exactly the same metadata. Only what the benchmarks
touch is mapped: students, health_records, and the audit_log columns an application writes.
Students and health records use ``version_id_col`` (optimistic concurrency, like wxdata's
``version``) and ``eager_defaults`` (server defaults come back with RETURNING, like wxdata's
``RETURNING *``), so the ORM does the same work, not less.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, DateTime, Integer, String, Table, Text, func, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of the benchmark models."""


class Student(Base):
    """``students``."""

    __tablename__ = "students"

    id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    student_number: Mapped[str] = mapped_column(String(50), unique=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    date_of_birth: Mapped[date] = mapped_column(Date)
    grade: Mapped[str] = mapped_column(String(10))
    gender: Mapped[str] = mapped_column(String(20))
    photo: Mapped[str | None] = mapped_column(String(500))
    medical_record_num: Mapped[str | None] = mapped_column(String(50), unique=True)
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    enrollment_date: Mapped[date] = mapped_column(Date)
    nurse_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    school_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    district_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    created_by: Mapped[str | None] = mapped_column(String(128))
    updated_by: Mapped[str | None] = mapped_column(String(128))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __mapper_args__ = {"version_id_col": version, "eager_defaults": True}


class HealthRecord(Base):
    """``health_records``."""

    __tablename__ = "health_records"

    id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    student_id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True))
    record_type: Mapped[str] = mapped_column(String(50))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    record_date: Mapped[date] = mapped_column(Date)
    provider: Mapped[str | None] = mapped_column(String(200))
    provider_npi: Mapped[str | None] = mapped_column(String(20))
    facility: Mapped[str | None] = mapped_column(String(200))
    facility_npi: Mapped[str | None] = mapped_column(String(20))
    diagnosis: Mapped[str | None] = mapped_column(Text)
    diagnosis_code: Mapped[str | None] = mapped_column(String(20))
    treatment: Mapped[str | None] = mapped_column(Text)
    follow_up_required: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    follow_up_date: Mapped[date | None] = mapped_column(Date)
    follow_up_completed: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    attachments: Mapped[Any] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    meta: Mapped[Any | None] = mapped_column("metadata", JSONB)
    is_confidential: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    notes: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    created_by: Mapped[str | None] = mapped_column(String(128))
    updated_by: Mapped[str | None] = mapped_column(String(128))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __mapper_args__ = {"version_id_col": version, "eager_defaults": True}


class AuditLog(Base):
    """``audit_log``: the columns an application fills; the rest are server defaults."""

    __tablename__ = "audit_log"

    id: Mapped[uuid.UUID] = mapped_column(PgUUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    action: Mapped[str] = mapped_column(String(50))
    entity_type: Mapped[str] = mapped_column(String(100))
    entity_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    entity_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(PgUUID(as_uuid=True)))
    subject_student_id: Mapped[uuid.UUID | None] = mapped_column(PgUUID(as_uuid=True))
    subject_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(PgUUID(as_uuid=True)))
    user_id: Mapped[str | None] = mapped_column(String(128))
    user_role: Mapped[str | None] = mapped_column(String(50))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(128))
    purpose: Mapped[str | None] = mapped_column(String(50))
    changes: Mapped[Any | None] = mapped_column(JSONB)
    new_values: Mapped[Any | None] = mapped_column(JSONB)
    fields_disclosed: Mapped[list[str]] = mapped_column(ARRAY(Text))
    is_phi: Mapped[bool] = mapped_column(Boolean)
    compliance_type: Mapped[str] = mapped_column(String(50))
    severity: Mapped[str] = mapped_column(String(50))
    success: Mapped[bool] = mapped_column(Boolean)
    tags: Mapped[list[str]] = mapped_column(ARRAY(String(255)))


students: Table = Student.__table__  # type: ignore[assignment]
health_records: Table = HealthRecord.__table__  # type: ignore[assignment]
audit_log: Table = AuditLog.__table__  # type: ignore[assignment]

STUDENT_COLUMNS = tuple(c.name for c in students.columns)
HEALTH_RECORD_COLUMNS = tuple(c.name for c in health_records.columns)
