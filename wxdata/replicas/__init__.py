"""Scale-out: one primary and N streaming replicas behind a read/write router with read-your-writes.

See :mod:`wxdata.replicas.router` for the guarantees, :mod:`wxdata.pool_metrics` for the metrics and
``tests/local_cluster.py`` for the throw-away primary + replicas used by tests and benchmarks.
One module per concern: :mod:`~wxdata.replicas.config` (settings), :mod:`~wxdata.replicas.ledger`
(read-your-writes positions) and :mod:`~wxdata.replicas.servers` (server rules) are pure and shared
with the async router (:mod:`wxdata.aio.replicas`); :mod:`~wxdata.replicas.checks` (probes, monitor)
and :mod:`~wxdata.replicas.router` (checkouts) are the sync shell.
"""

from wxdata.replicas.router import (
    Consistency,
    Router,
    RouterConfig,
    Strategy,
    consistency_key,
    is_replica,
)

__all__ = ["Consistency", "Router", "RouterConfig", "Strategy", "consistency_key", "is_replica"]
