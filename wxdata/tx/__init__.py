"""Transactional scope: units of work, savepoints, isolation, retries and after-commit hooks."""

from wxdata.tx.decorators import (
    DEFAULT_RETRIES,
    TxOptions,
    backoff_delay,
    run_in_scope,
    transactional,
    tx_options,
)
from wxdata.tx.scope import (
    ConcurrentUseError,
    DisclosureNotRecorded,
    Isolation,
    RollbackScope,
    Scope,
    ScopeError,
    after_commit,
    current_scope,
    in_scope,
    on_rollback,
    unit_of_work,
)

__all__ = [
    "DEFAULT_RETRIES",
    "ConcurrentUseError",
    "DisclosureNotRecorded",
    "Isolation",
    "RollbackScope",
    "Scope",
    "ScopeError",
    "TxOptions",
    "after_commit",
    "backoff_delay",
    "current_scope",
    "in_scope",
    "on_rollback",
    "run_in_scope",
    "transactional",
    "tx_options",
    "unit_of_work",
]
