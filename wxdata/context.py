"""Execution context: who is acting, from where, why, for which request, and over which schools.

Every public data function takes an :class:`ExecutionContext`. It is a frozen value: build it once
per request in the service layer (from the authenticated session), pass it down, never mutate it.
The context is applied to PostgreSQL per transaction (``set_config(..., true)``) so row-level
security and the audit trail see the application user, not the pooled database role.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import attrs
from returns.result import Failure, Result, Success

from wxdata.errors import DataError, FieldError, ValidationFailed


class Role(enum.StrEnum):
    """Workforce classes of the original system, plus the non-human ``SYSTEM`` role."""

    ADMIN = "ADMIN"
    NURSE = "NURSE"
    SCHOOL_ADMIN = "SCHOOL_ADMIN"
    DISTRICT_ADMIN = "DISTRICT_ADMIN"
    VIEWER = "VIEWER"
    COUNSELOR = "COUNSELOR"
    SYSTEM = "SYSTEM"


class Purpose(enum.StrEnum):
    """Purpose of use, recorded with every PHI disclosure (HIPAA 164.528 / FERPA 99.32)."""

    TREATMENT = "TREATMENT"
    OPERATIONS = "OPERATIONS"
    EDUCATION = "EDUCATION"
    EMERGENCY = "EMERGENCY"
    COMPLIANCE = "COMPLIANCE"
    PARENT_REQUEST = "PARENT_REQUEST"
    REQUIRED_BY_LAW = "REQUIRED_BY_LAW"
    SYSTEM = "SYSTEM"


_ID_RE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _frozen_ids(value: Iterable[UUID | str] | None) -> frozenset[UUID]:
    if value is None:
        return frozenset()
    return frozenset(v if isinstance(v, UUID) else UUID(str(v)) for v in value)


@attrs.frozen(slots=True, kw_only=True)
class ExecutionContext:
    """Who acts (user, role), from where (ip, agent), why (purpose), for which request and schools."""

    user_id: str
    role: Role
    purpose: Purpose = Purpose.TREATMENT
    ip_address: str | None = None
    user_agent: str | None = None
    user_name: str | None = None
    request_id: str | None = None
    session_id: str | None = None
    correlation_id: str | None = None
    break_glass_reason: str | None = None
    school_ids: frozenset[UUID] = attrs.field(factory=frozenset, converter=_frozen_ids)
    timestamp: datetime = attrs.field(factory=_utcnow)
    metadata: tuple[tuple[str, str], ...] = ()

    @property
    def is_system(self) -> bool:
        """True for the non-human system role, which bypasses school scoping."""
        return self.role is Role.SYSTEM

    @property
    def is_break_glass(self) -> bool:
        """True when the caller invoked emergency access with a stated reason."""
        return self.break_glass_reason is not None

    def with_request(self, request_id: str) -> ExecutionContext:
        """Return a copy bound to another request id."""
        return attrs.evolve(self, request_id=request_id)

    def break_glass(self, reason: str) -> ExecutionContext:
        """Return a copy that invokes emergency access (audited at high severity)."""
        return attrs.evolve(self, break_glass_reason=reason, purpose=Purpose.EMERGENCY)


def validate_context(ctx: ExecutionContext) -> Result[ExecutionContext, DataError]:
    """Check a context's fields; a Failure names each bad field and rule, never its value."""
    errors: list[FieldError] = []
    if not isinstance(ctx.role, Role):
        errors.append(FieldError("role", "must be a Role"))
    if not isinstance(ctx.purpose, Purpose):
        errors.append(FieldError("purpose", "must be a Purpose"))
    if not ctx.user_id or not _ID_RE.match(ctx.user_id):
        errors.append(FieldError("user_id", "must be 1-128 characters of [A-Za-z0-9._:@/+=-]"))
    for name in ("request_id", "session_id", "correlation_id"):
        value = getattr(ctx, name)
        if value is not None and not _ID_RE.match(value):
            errors.append(FieldError(name, "must be 1-128 characters of [A-Za-z0-9._:@/+=-]"))
    if ctx.ip_address is not None:
        try:
            ipaddress.ip_address(ctx.ip_address)
        except ValueError:
            errors.append(FieldError("ip_address", "must be an IPv4 or IPv6 address"))
    for name, limit in (("user_agent", 512), ("user_name", 200)):
        value = getattr(ctx, name)
        if value is not None and (len(value) > limit or "\x00" in value):
            errors.append(FieldError(name, f"must be at most {limit} characters without NUL"))
    if ctx.break_glass_reason is not None and len(ctx.break_glass_reason.strip()) < 10:
        errors.append(FieldError("break_glass_reason", "must state a reason (10+ characters)"))
    if ctx.break_glass_reason is not None and "\x00" in ctx.break_glass_reason:
        errors.append(FieldError("break_glass_reason", "must not contain NUL"))
    if ctx.timestamp.tzinfo is None:
        errors.append(FieldError("timestamp", "must be timezone-aware"))
    if errors:
        return Failure(ValidationFailed(entity="ExecutionContext", errors=tuple(errors)))
    return Success(ctx)


def system_context(operation: str, **metadata: str) -> ExecutionContext:
    """Context for scheduled jobs, migrations and seeding: role SYSTEM, purpose SYSTEM."""
    return ExecutionContext(
        user_id="system",
        user_name=f"system:{operation}",
        role=Role.SYSTEM,
        purpose=Purpose.SYSTEM,
        request_id=f"sys-{uuid.uuid4().hex[:16]}",
        metadata=tuple(sorted({"operation": operation, **metadata}.items())),
    )


def context_settings(ctx: ExecutionContext) -> dict[str, Any]:
    """The ``app.*`` settings applied per transaction for RLS and triggers (values are strings)."""
    return {
        "app.user_id": ctx.user_id,
        "app.role": ctx.role.value,
        "app.purpose": ctx.purpose.value,
        "app.request_id": ctx.request_id or "",
        "app.school_ids": ",".join(sorted(str(s) for s in ctx.school_ids)),
        "app.bypass_scope": "on" if (ctx.is_system or ctx.is_break_glass) else "off",
    }
