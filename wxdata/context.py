"""Execution context: who is acting, from where, why, for which request, and over which schools.

Every public data function takes an :class:`ExecutionContext`. It is a frozen value: build it once
per request in the service layer (from the authenticated session), pass it down, never mutate it.
An invalid context cannot be built (see :class:`ExecutionContext`); ``Role.SYSTEM`` only comes
from :func:`system_context`. The context is applied to PostgreSQL per transaction
(``set_config(..., true)``) so row-level security and the audit trail see the application user,
not the pooled database role.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
import unicodedata
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import attrs
from returns.result import Failure, Result, Success

from wxdata.config import Settings, settings
from wxdata.errors import ContextExpired, DataError, FieldError, InvalidContext, ValidationFailed


class Role(enum.StrEnum):
    """Workforce classes, plus the non-human ``SYSTEM`` role."""

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
_ID_RULE = "must be 1-128 characters of [A-Za-z0-9._:@/+=-]"
_REASON_MAX = 1000
_TEXT_LIMITS = (("user_agent", 512), ("user_name", 200))


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _frozen_ids(value: Iterable[UUID | str] | None) -> frozenset[UUID]:
    if value is None:
        return frozenset()
    try:
        return frozenset(v if isinstance(v, UUID) else UUID(str(v)) for v in value)
    except (TypeError, ValueError):
        raise InvalidContext((FieldError("school_ids", "must be UUIDs"),)) from None


def _member(kind: type[enum.StrEnum], value: object) -> Any:
    """A member of ``kind``, or the member its exact name designates; anything else is kept as
    given and refused by the constructor's checks (naming the field, not the value)."""
    if isinstance(value, kind):
        return value
    if isinstance(value, str) and value in kind.__members__:
        return kind[value]
    return value


def _to_role(value: object) -> Any:
    return _member(Role, value)


def _to_purpose(value: object) -> Any:
    return _member(Purpose, value)


@attrs.frozen(slots=True)
class _SystemCapability:
    """The private proof that :func:`system_context` built a context (see ``ExecutionContext``)."""


_SYSTEM = _SystemCapability()


def _masked(value: object) -> str:
    """Repr of free text that may hold PHI: whether it is set, never its text."""
    return "<set>" if value else repr(value)


def _worded(text: str) -> int:
    """How many of ``text``'s characters are letters or digits (Unicode categories L and N).

    Spaces, punctuation, symbols, control and format characters (zero-width spaces, byte-order
    marks, soft hyphens) and combining marks do not count: a reason made of them states nothing.
    """
    return sum(1 for c in text if unicodedata.category(c)[0] in "LN")


def _storable(text: str) -> bool:
    """Whether PostgreSQL can store ``text``: no NUL, and encodable as UTF-8 (no lone surrogate)."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@attrs.frozen(slots=True, kw_only=True, cache_hash=True)
class ExecutionContext:
    """Who acts (user, role), from where (ip, agent), why (purpose), for which request and schools.

    Validated at construction (also by ``attrs.evolve`` and :meth:`break_glass`): an invalid
    context cannot exist. The constructor raises :class:`~wxdata.errors.InvalidContext`, naming
    each field and rule and never a value; :meth:`build` returns the same errors as a Result.

    Rules: ``user_id`` (and request, session, correlation ids) 1-128 characters of
    ``[A-Za-z0-9._:@/+=-]``; ``role`` and ``purpose`` members of their enums (an exact member name
    is converted); ``ip_address`` an IPv4/IPv6 address; ``user_agent`` at most 512 and
    ``user_name`` at most 200 characters, neither with NUL; ``timestamp`` timezone-aware;
    ``Role.SYSTEM`` and ``Purpose.SYSTEM`` only through :func:`system_context`; a
    ``break_glass_reason`` only for a role in ``WXDATA_BREAK_GLASS_ROLES``, with at least
    ``WXDATA_BREAK_GLASS_MIN_REASON`` letters or digits, at most 1000 characters and no NUL.
    Free text (``user_agent``, ``user_name``, the reason, ``metadata``) must be valid Unicode
    that PostgreSQL can store: no NUL and no lone surrogate.
    """

    user_id: str
    role: Role = attrs.field(converter=_to_role)
    purpose: Purpose = attrs.field(default=Purpose.TREATMENT, converter=_to_purpose)
    ip_address: str | None = None
    user_agent: str | None = None
    user_name: str | None = None
    request_id: str | None = None
    session_id: str | None = None
    correlation_id: str | None = None
    break_glass_reason: str | None = attrs.field(default=None, repr=_masked)
    school_ids: frozenset[UUID] = attrs.field(factory=frozenset, converter=_frozen_ids)
    timestamp: datetime = attrs.field(factory=_utcnow)
    metadata: tuple[tuple[str, str], ...] = ()
    _capability: _SystemCapability | None = attrs.field(
        default=None, repr=False, eq=False, alias="capability")

    def __attrs_post_init__(self) -> None:
        errors = context_errors(self)
        if errors:
            raise InvalidContext(errors)

    @classmethod
    def build(cls, **values: Any) -> Result[ExecutionContext, DataError]:
        """Build a context from untrusted values: ``Success`` or ``Failure(ValidationFailed)``
        naming every bad field and rule (never a value)."""
        fields = {a.alias for a in attrs.fields(cls)} - {"capability"}
        errors = [FieldError(k, "is not a context field") for k in sorted(values) if k not in fields]
        errors += [FieldError(k, "is required") for k in ("user_id", "role") if k not in values]
        if errors:
            return Failure(ValidationFailed(entity="ExecutionContext", errors=tuple(errors)))
        try:
            return Success(cls(**values))
        except InvalidContext as exc:
            return Failure(exc.to_failure())

    @property
    def is_system(self) -> bool:
        """True for a context built by :func:`system_context` (bypasses school scoping)."""
        return self.role is Role.SYSTEM and self._capability is _SYSTEM

    @property
    def is_break_glass(self) -> bool:
        """True when the caller invoked emergency access (the reason was checked at construction)."""
        return self.break_glass_reason is not None

    def with_request(self, request_id: str) -> ExecutionContext:
        """Return a copy bound to another request id."""
        return attrs.evolve(self, request_id=request_id)

    def break_glass(self, reason: str) -> ExecutionContext:
        """Return a copy that invokes emergency access (every record it leaves is CRITICAL).

        Raises :class:`~wxdata.errors.InvalidContext` when the role may not break the glass or the
        reason is too short (``WXDATA_BREAK_GLASS_ROLES``, ``WXDATA_BREAK_GLASS_MIN_REASON``).
        """
        return attrs.evolve(self, break_glass_reason=reason, purpose=Purpose.EMERGENCY)


def _id_errors(ctx: ExecutionContext) -> list[FieldError]:
    errors = []
    if not isinstance(ctx.user_id, str) or not _ID_RE.match(ctx.user_id):
        errors.append(FieldError("user_id", _ID_RULE))
    for name in ("request_id", "session_id", "correlation_id"):
        value = getattr(ctx, name)
        if value is not None and (not isinstance(value, str) or not _ID_RE.match(value)):
            errors.append(FieldError(name, _ID_RULE))
    return errors


def _text_errors(ctx: ExecutionContext) -> list[FieldError]:
    errors = []
    if ctx.ip_address is not None:
        try:
            if not isinstance(ctx.ip_address, str):
                raise ValueError
            ipaddress.ip_address(ctx.ip_address)
        except ValueError:
            errors.append(FieldError("ip_address", "must be an IPv4 or IPv6 address"))
    for name, limit in _TEXT_LIMITS:
        value = getattr(ctx, name)
        if value is not None and (not isinstance(value, str) or len(value) > limit
                                  or not _storable(value)):
            errors.append(FieldError(
                name, f"must be at most {limit} characters of valid Unicode without NUL"))
    if not isinstance(ctx.timestamp, datetime) or ctx.timestamp.tzinfo is None:
        errors.append(FieldError("timestamp", "must be a timezone-aware datetime"))
    if not isinstance(ctx.metadata, tuple) or not all(
        isinstance(p, tuple) and len(p) == 2 and all(isinstance(x, str) and _storable(x)
                                                     for x in p)
        for p in ctx.metadata
    ):
        errors.append(FieldError(
            "metadata", "must be (name, value) pairs of valid Unicode text without NUL"))
    return errors


def _role_errors(ctx: ExecutionContext) -> list[FieldError]:
    errors = []
    system = ctx._capability is _SYSTEM and ctx.role is Role.SYSTEM
    if not isinstance(ctx.role, Role):
        errors.append(FieldError("role", "must be one of " + ", ".join(Role.__members__)))
    elif ctx.role is Role.SYSTEM and ctx._capability is not _SYSTEM:
        errors.append(FieldError("role", "SYSTEM is reserved for system_context()"))
    if not isinstance(ctx.purpose, Purpose):
        errors.append(FieldError("purpose", "must be one of " + ", ".join(Purpose.__members__)))
    elif ctx.purpose is Purpose.SYSTEM and not system:
        errors.append(FieldError("purpose", "SYSTEM is reserved for system_context()"))
    return errors


def _break_glass_errors(ctx: ExecutionContext) -> list[FieldError]:
    reason = ctx.break_glass_reason
    if reason is None:
        return []
    s = settings()
    errors = []
    if not isinstance(reason, str) or len(reason) > _REASON_MAX or not _storable(reason):
        errors.append(FieldError(
            "break_glass_reason",
            f"must be valid Unicode text of at most {_REASON_MAX} characters without NUL"))
    elif _worded(reason) < s.break_glass_min_reason:
        errors.append(FieldError(
            "break_glass_reason",
            f"must state a reason of at least {s.break_glass_min_reason} letters or digits"))
    if not isinstance(ctx.role, Role) or ctx.role.value not in s.break_glass_roles:
        errors.append(FieldError("role", "may not use break-glass access"))
    return errors


def same_principal(opened: ExecutionContext, acting: ExecutionContext) -> bool:
    """Whether ``acting`` may run statements in a unit of work opened for ``opened``.

    The unit's transaction carries ``opened``'s signed scope (its user, role, schools, and
    whether it bypasses them: SYSTEM or break-glass), and row security answers every statement in
    it from that scope. A call under another user, role, school set or bypass would read and
    write under a scope that is not its own, so it is refused. Request, session and correlation
    ids, address, agent, purpose and time may differ: the records a call leaves carry its own.
    """
    return opened is acting or (
        opened.user_id == acting.user_id and opened.role is acting.role
        and opened.school_ids == acting.school_ids
        and (opened.is_system or opened.is_break_glass)
        == (acting.is_system or acting.is_break_glass))


#: The rule a call breaks when it runs inside a unit of work opened for another principal.
OTHER_PRINCIPAL = ("the connection's unit of work was opened for another user, role, school "
                   "scope or bypass; open a unit of work of this context's own")


def context_errors(ctx: ExecutionContext) -> tuple[FieldError, ...]:
    """Every rule ``ctx`` breaks, as (field, rule) pairs; empty for a valid context."""
    return (*_id_errors(ctx), *_text_errors(ctx), *_role_errors(ctx), *_break_glass_errors(ctx))


def validate_context(ctx: ExecutionContext) -> Result[ExecutionContext, DataError]:
    """Check a context's fields; a Failure names each bad field and rule, never its value.

    A constructed context is always valid, so this fails only for one assembled by bypassing the
    constructor (``object.__new__``); it also refuses a context older than the configured maximum
    age (:func:`context_age_error`).
    """
    try:
        errors = context_errors(ctx)
    except AttributeError:
        errors = (FieldError("<context>", "must be built by its constructor"),)
    if errors:
        return Failure(ValidationFailed(entity="ExecutionContext", errors=errors))
    expired = context_age_error(ctx)
    return Failure(expired) if expired is not None else Success(ctx)


#: Tolerated clock skew for a context stamped slightly in the future (another host's clock).
CLOCK_SKEW = timedelta(seconds=60)


def context_age_error(
    ctx: ExecutionContext, now: datetime | None = None, config: Settings | None = None,
) -> DataError | None:
    """:class:`ContextExpired` when ``WXDATA_CONTEXT_MAX_AGE`` is set and the context is older
    than it (or stamped in the future beyond the clock skew); None otherwise.

    System contexts (scheduled jobs, migrations) are not user sessions and never expire.
    ``config``: the settings the caller has already read (the process settings otherwise).
    """
    limit = (config or settings()).context_max_age_seconds
    if limit is None or ctx.is_system:
        return None
    age = (now or _utcnow()) - ctx.timestamp
    if age > timedelta(seconds=limit):
        return ContextExpired(entity="ExecutionContext", reason="older than the maximum age")
    if age < -CLOCK_SKEW:
        return ContextExpired(entity="ExecutionContext", reason="stamped in the future")
    return None


def system_context(operation: str, **metadata: str) -> ExecutionContext:
    """Context for scheduled jobs, migrations and seeding: role SYSTEM, purpose SYSTEM.

    The only way to build a SYSTEM context: it carries a private capability the constructor checks.
    """
    return ExecutionContext(
        user_id="system",
        user_name=f"system:{operation}",
        role=Role.SYSTEM,
        purpose=Purpose.SYSTEM,
        request_id=f"sys-{uuid.uuid4().hex[:16]}",
        metadata=tuple(sorted({"operation": operation, **metadata}.items())),
        capability=_SYSTEM,
    )


def context_settings(ctx: ExecutionContext) -> dict[str, Any]:
    """The ``app.*`` settings applied per transaction for RLS and triggers (values are strings).

    Computed once per context (a frozen value; the last few are kept), copied per call."""
    return dict(context_items(ctx))


def context_items(ctx: ExecutionContext) -> tuple[tuple[str, str], ...]:
    """:func:`context_settings` as (name, value) pairs, shared, not copied (computed once per
    context)."""
    return _context_settings(ctx, ctx.is_system)  # the capability is not part of eq


@functools.lru_cache(maxsize=256)
def _context_settings(ctx: ExecutionContext, system: bool) -> tuple[tuple[str, str], ...]:
    return (
        ("app.user_id", ctx.user_id),
        ("app.role", ctx.role.value),
        ("app.purpose", ctx.purpose.value),
        ("app.request_id", ctx.request_id or ""),
        ("app.school_ids", ",".join(sorted(str(s) for s in ctx.school_ids))),
        ("app.bypass_scope", "on" if (system or ctx.is_break_glass) else "off"),
    )
