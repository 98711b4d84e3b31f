"""The DataError taxonomy: every expected failure of a data function, as a frozen value.

Each error has a stable ``code`` (for clients and dashboards), an HTTP-like ``status`` and, where it
helps, field-level details. Errors never carry input values or PostgreSQL's DETAIL text, both of which
can hold PHI (a unique violation's DETAIL echoes the duplicate key). :func:`from_db_error` maps a
psycopg exception to the taxonomy using only its SQLSTATE and schema identifiers (constraint, column).
"""

from __future__ import annotations

import re
from typing import ClassVar, TypeVar

import attrs
import psycopg


@attrs.frozen(slots=True)
class FieldError:
    """One field that broke one rule; names the field and the rule, never the value."""

    field: str
    rule: str


@attrs.frozen(slots=True)
class DataError:
    """Base of the taxonomy; subclasses fix ``code`` and ``status``."""

    code: ClassVar[str] = "DATA_ERROR"
    status: ClassVar[int] = 500

    @property
    def message(self) -> str:
        """A PHI-free, human-readable sentence."""
        return self.code.replace("_", " ").lower()

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready, PHI-free representation for API responses and logs."""
        body: dict[str, object] = {"code": self.code, "status": self.status, "message": self.message}
        details = {
            a.name: getattr(self, a.name)
            for a in attrs.fields(type(self))
            if a.name not in ("errors",)
        }
        if details:
            body["details"] = details
        errors = getattr(self, "errors", None)
        if errors:
            body["errors"] = [{"field": e.field, "rule": e.rule} for e in errors]
        return body


@attrs.frozen(slots=True)
class NotFound(DataError):
    """No visible row matched (absent, soft-deleted, or outside the caller's school scope)."""

    code: ClassVar[str] = "NOT_FOUND"
    status: ClassVar[int] = 404
    entity: str = ""

    @property
    def message(self) -> str:
        """A PHI-free, human-readable sentence."""
        return f"{self.entity or 'record'} not found"


@attrs.frozen(slots=True)
class ValidationFailed(DataError):
    """Input broke one or more field rules; nothing was written."""

    code: ClassVar[str] = "VALIDATION_FAILED"
    status: ClassVar[int] = 422
    entity: str = ""
    errors: tuple[FieldError, ...] = ()

    @property
    def message(self) -> str:
        """A PHI-free, human-readable sentence."""
        parts = "; ".join(f"{e.field}: {e.rule}" for e in self.errors)
        return f"invalid {self.entity or 'input'}: {parts}"


@attrs.frozen(slots=True)
class Conflict(DataError):
    """The write collides with the current state: stale version, duplicate key, blocked delete."""

    code: ClassVar[str] = "CONFLICT"
    status: ClassVar[int] = 409
    entity: str = ""
    reason: str = ""
    field: str | None = None

    @property
    def message(self) -> str:
        """A PHI-free, human-readable sentence."""
        where = f" on {self.field}" if self.field else ""
        return f"{self.entity or 'record'} conflict{where}: {self.reason}"


@attrs.frozen(slots=True)
class Forbidden(DataError):
    """The context may not perform this operation (role, school scope, row-level security)."""

    code: ClassVar[str] = "FORBIDDEN"
    status: ClassVar[int] = 403
    entity: str = ""
    reason: str = ""

    @property
    def message(self) -> str:
        """A PHI-free, human-readable sentence."""
        return f"forbidden on {self.entity or 'resource'}: {self.reason}"


@attrs.frozen(slots=True)
class ContextExpired(Forbidden):
    """The execution context is older than ``WXDATA_CONTEXT_MAX_AGE`` (automatic logoff).

    A Forbidden, so callers treating every Forbidden alike stay correct; its own code tells a
    service to re-authenticate the user and build a fresh context.
    """

    code: ClassVar[str] = "CONTEXT_EXPIRED"
    status: ClassVar[int] = 401

    @property
    def message(self) -> str:
        """A PHI-free, human-readable sentence."""
        return f"execution context refused: {self.reason or 'expired'}"


class InvalidContext(ValueError):
    """An :class:`~wxdata.context.ExecutionContext` was built with fields that break its rules.

    Raised by the constructor; carries one :class:`FieldError` per broken rule. Its text names the
    fields and rules, never a value (a user name or reason may hold PHI).
    """

    def __init__(self, errors: tuple[FieldError, ...]) -> None:
        self.errors = errors
        super().__init__("invalid ExecutionContext: "
                         + "; ".join(f"{e.field}: {e.rule}" for e in errors))

    def to_failure(self) -> ValidationFailed:
        """The same errors as a :class:`ValidationFailed` value."""
        return ValidationFailed(entity="ExecutionContext", errors=self.errors)


class ContextRefused(psycopg.errors.InsufficientPrivilege):
    """Raised where a context is applied to the database and may no longer be used.

    A psycopg error (SQLSTATE 42501), so every path that maps database errors to Results turns it
    into a Failure; :func:`from_db_error` returns the carried error itself.
    """

    def __init__(self, error: DataError) -> None:
        super().__init__(error.code)
        self.error = error


@attrs.frozen(slots=True)
class InvalidQuery(DataError):
    """A filter, sort, projection or page request broke the entity's query rules; no SQL was sent."""

    code: ClassVar[str] = "INVALID_QUERY"
    status: ClassVar[int] = 400
    field: str = ""
    rule: str = ""

    @property
    def message(self) -> str:
        """A PHI-free, human-readable sentence."""
        return f"invalid query: {self.field}: {self.rule}"


@attrs.frozen(slots=True)
class Unavailable(DataError):
    """The database (or a required service) could not be reached."""

    code: ClassVar[str] = "UNAVAILABLE"
    status: ClassVar[int] = 503
    reason: str = ""

    @property
    def message(self) -> str:
        """A PHI-free, human-readable sentence."""
        return f"unavailable: {self.reason}" if self.reason else "unavailable"


@attrs.frozen(slots=True)
class Retryable(DataError):
    """A serialization failure or deadlock; the whole unit of work may be retried."""

    code: ClassVar[str] = "RETRYABLE"
    status: ClassVar[int] = 503
    sqlstate: str = ""


@attrs.frozen(slots=True)
class Timeout(DataError):
    """A statement or lock wait exceeded its time limit."""

    code: ClassVar[str] = "TIMEOUT"
    status: ClassVar[int] = 504
    sqlstate: str = ""


@attrs.frozen(slots=True)
class Internal(DataError):
    """An unexpected database error; details are in the server log, not here."""

    code: ClassVar[str] = "INTERNAL"
    status: ClassVar[int] = 500
    sqlstate: str = ""


_COPY_COLUMN = re.compile(r"^COPY [a-z_][a-z0-9_]*, line \d+, column ([a-z_][a-z0-9_]*)\b")


def _constraint_field(exc: psycopg.Error) -> str | None:
    """Best field name for a constraint error, from schema identifiers only (never values)."""
    diag = exc.diag
    if diag.column_name:
        return diag.column_name
    copied = _COPY_COLUMN.match(diag.context or "")
    if copied:  # COPY names the column before quoting the value; only the identifier is kept
        return copied.group(1)
    name = diag.constraint_name
    if not name:
        return None
    table = diag.table_name or ""
    core = name
    if table and core.startswith(table + "_"):
        core = core[len(table) + 1 :]
    for suffix in ("_key", "_fkey", "_check", "_uniq", "_idx", "_excl"):
        if core.endswith(suffix):
            core = core[: -len(suffix)]
            break
    return core or name


def from_db_error(exc: psycopg.Error, entity: str = "") -> DataError:
    """Map a psycopg error to the taxonomy by SQLSTATE, copying no message, DETAIL or value."""
    if isinstance(exc, ContextRefused):
        return exc.error
    state = exc.sqlstate or ""
    field = _constraint_field(exc) if state.startswith("23") else None
    if state == "23505":
        return Conflict(entity=entity, reason="duplicate value", field=field)
    if state == "23503":
        if exc.diag.message_primary and "still referenced" in exc.diag.message_primary:
            return Conflict(entity=entity, reason="referenced by other rows", field=field)
        return ValidationFailed(
            entity=entity, errors=(FieldError(field or "reference", "must reference an existing row"),)
        )
    if state == "23502":
        return ValidationFailed(entity=entity, errors=(FieldError(field or "?", "is required"),))
    if state == "23514" or state == "23P01":
        return ValidationFailed(entity=entity, errors=(FieldError(field or "?", "violates a check"),))
    if state in ("40001", "40P01"):
        return Retryable(sqlstate=state)
    if state == "42501":
        return Forbidden(entity=entity, reason="insufficient privilege or row-level security")
    if state in ("57014", "55P03", "25P03"):
        return Timeout(sqlstate=state)
    if state.startswith("08") or state in ("57P01", "57P02", "57P03", "53300"):
        return Unavailable(reason=f"database unavailable ({state})")
    if isinstance(exc, psycopg.OperationalError) and not state:
        return Unavailable(reason="connection lost")
    if state.startswith("22"):
        column = _constraint_field(exc) or "<unknown column>"
        rule = _DATA_RULES.get(state, "is not a valid value for its column")
        return ValidationFailed(entity=entity, errors=(FieldError(column, f"{rule} ({state})"),))
    return Internal(sqlstate=state)


#: Rules for PostgreSQL's data exceptions (class 22), worded without the offending value.
_DATA_RULES = {
    "22001": "is too long for its column",
    "22003": "is out of range for its column",
    "22007": "is not a valid date or time",
    "22008": "is out of the date/time range",
    "22009": "has an invalid time zone offset",
    "22021": "is not valid UTF-8",
    "22P02": "has an invalid representation",
    "22P05": "cannot be represented in the database encoding",
    "22012": "causes a division by zero",
    "22023": "is an invalid parameter value",
}


class NoRowReturned(psycopg.InternalError):
    """A statement that always yields one row (an aggregate, ``INSERT ... RETURNING``) yielded none.

    Raised instead of going on with a missing row; it is a :class:`psycopg.Error` without a SQLSTATE,
    so :func:`from_db_error` maps it to :class:`Internal` wherever database errors become Results.
    """


_Row = TypeVar("_Row")


def one_row(row: _Row | None) -> _Row:
    """``row``, or :class:`NoRowReturned` when the statement that must return one row returned none."""
    if row is None:
        raise NoRowReturned("the statement returned no row")
    return row
