"""Scale-out: one primary and N streaming replicas behind a read/write router with read-your-writes.

See :mod:`wxdata.replicas.router` for the guarantees, :mod:`wxdata.health` for the metrics and
``tests/local_cluster.py`` for the throw-away primary + replicas used by tests and benchmarks.
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
