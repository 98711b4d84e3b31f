"""The async API: the same operations, results and guarantees as the sync one, on psycopg's
``AsyncConnection`` / ``AsyncConnectionPool``.

Both APIs run the same plans (:mod:`wxdata.core`): nothing is decided twice.

- connections: :func:`connect`, :func:`create_pool`;
- units of work: :func:`unit_of_work` (async context manager), :func:`transactional`,
  :func:`run_in_scope`, :func:`after_commit`, :func:`on_rollback`, :func:`current_scope`;
- data: :mod:`wxdata.aio.crud` (every function of :mod:`wxdata.crud`), :mod:`wxdata.aio.domains`;
- audit: :func:`audited` and :mod:`wxdata.aio.audit` (``log_read``, ``log_create``...).
"""

from wxdata.aio import crud
from wxdata.aio.audit import audited
from wxdata.aio.db import AsyncPool, connect, create_pool
from wxdata.aio.tx import after_commit, run_in_scope, transactional, unit_of_work
from wxdata.tx.scope import current_scope, on_rollback

__all__ = [
    "AsyncPool",
    "after_commit",
    "audited",
    "connect",
    "create_pool",
    "crud",
    "current_scope",
    "on_rollback",
    "run_in_scope",
    "transactional",
    "unit_of_work",
]
