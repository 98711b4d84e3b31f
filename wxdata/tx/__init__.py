"""Transactional scope: units of work, savepoints, isolation, retries and after-commit hooks."""

from wxdata.tx.decorators import backoff_delay, run_in_scope, transactional
from wxdata.tx.scope import (
    ConcurrentUseError,
    Isolation,
    RollbackScope,
    Scope,
    ScopeError,
    after_commit,
    current_scope,
    in_scope,
    unit_of_work,
)

__all__ = [
    "ConcurrentUseError",
    "Isolation",
    "RollbackScope",
    "Scope",
    "ScopeError",
    "after_commit",
    "backoff_delay",
    "current_scope",
    "in_scope",
    "run_in_scope",
    "transactional",
    "unit_of_work",
]
