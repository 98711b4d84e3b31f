"""Execution contexts the context tests build: a nurse with a fresh request id."""

from __future__ import annotations

import uuid
from typing import Any

from wxdata.context import ExecutionContext, Role


def nurse(**kw: Any) -> ExecutionContext:
    """A nurse (``u-nurse-ctx``) with a new request id; ``kw`` sets or overrides any field."""
    base: dict[str, Any] = dict(user_id="u-nurse-ctx", role=Role.NURSE,
                                request_id=f"req-{uuid.uuid4().hex[:12]}")
    base.update(kw)
    return ExecutionContext(**base)
