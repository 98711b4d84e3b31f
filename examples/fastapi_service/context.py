"""The caller of a request as an ``ExecutionContext``, from its headers.

In production these headers are set by the authenticating gateway in front of the service (from a
verified token), never by the browser; the service itself trusts nothing else. Missing or invalid
values are refused with the fields and rules that failed, never the values.

Headers: ``X-User-Id`` and ``X-Role`` (required), ``X-School-Id`` (required: one or more school ids,
comma-separated; every query is scoped to them by row-level security), ``X-Purpose`` (default
``TREATMENT``), ``X-Request-Id`` (default: a fresh id), ``X-Session-Id``; the client address and
``User-Agent`` are taken from the connection.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from returns.result import Failure, Result

from wxdata import ExecutionContext
from wxdata.errors import DataError, FieldError, ValidationFailed

MAX_SCHOOLS = 50


def _schools(raw: str | None) -> frozenset[uuid.UUID] | FieldError:
    if not raw or not raw.strip():
        return FieldError("X-School-Id", "is required")
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if len(parts) > MAX_SCHOOLS:
        return FieldError("X-School-Id", f"at most {MAX_SCHOOLS} schools")
    try:
        return frozenset(uuid.UUID(p) for p in parts)
    except ValueError:
        return FieldError("X-School-Id", "must be comma-separated UUIDs")


def context_from_headers(headers: Mapping[str, str], client: str | None
                         ) -> Result[ExecutionContext, DataError]:
    """The request's context, or ``Failure(ValidationFailed)`` naming each bad header's rule."""
    schools = _schools(headers.get("x-school-id"))
    if isinstance(schools, FieldError):
        return Failure(ValidationFailed(entity="ExecutionContext", errors=(schools,)))
    values: dict[str, object] = {
        "user_id": headers.get("x-user-id", ""),
        "role": headers.get("x-role", ""),
        "purpose": headers.get("x-purpose") or "TREATMENT",
        "request_id": headers.get("x-request-id") or f"req-{uuid.uuid4().hex}",
        "school_ids": schools,
        "ip_address": client,
        "user_agent": (headers.get("user-agent") or "")[:512] or None,
    }
    if headers.get("x-session-id"):
        values["session_id"] = headers["x-session-id"]
    return ExecutionContext.build(**values)
