"""wxdata: a functional, audited, cache-aware PostgreSQL data layer for school-health records.

Plain functions take an explicit psycopg connection and an :class:`ExecutionContext` and return
``returns`` Results. Decorators add transactional scope (:mod:`wxdata.tx`), the HIPAA audit trail
(:mod:`wxdata.audit`) and caching (:mod:`wxdata.cache`); ``transactional``, ``audited`` and
``cached`` are exported here. Domains live in :mod:`wxdata.domains`; the async API is
:mod:`wxdata.aio`.
"""

from wxdata.audit import audited
from wxdata.cache import cached
from wxdata.context import ExecutionContext, Purpose, Role, system_context, validate_context
from wxdata.db import connect, create_pool
from wxdata.errors import (
    Conflict,
    ContextExpired,
    DataError,
    FieldError,
    Forbidden,
    Internal,
    InvalidContext,
    InvalidQuery,
    NotFound,
    Retryable,
    Timeout,
    Unavailable,
    ValidationFailed,
)
from wxdata.query.filters import And, Cond, Not, Or, Pattern
from wxdata.query.paging import KeysetPage, Page
from wxdata.tx import Isolation, transactional, unit_of_work

__version__ = "0.1.0"

__all__ = [
    "And",
    "Cond",
    "Conflict",
    "ContextExpired",
    "DataError",
    "ExecutionContext",
    "FieldError",
    "Forbidden",
    "Internal",
    "InvalidContext",
    "InvalidQuery",
    "Isolation",
    "KeysetPage",
    "Not",
    "NotFound",
    "Or",
    "Page",
    "Pattern",
    "Purpose",
    "Retryable",
    "Role",
    "Timeout",
    "Unavailable",
    "ValidationFailed",
    "audited",
    "cached",
    "connect",
    "create_pool",
    "system_context",
    "transactional",
    "unit_of_work",
    "validate_context",
]
