"""School-level health metrics.

One binding per entity (:class:`wxdata.crud.Ops`), each with every generic operation.
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.student_health import HEALTH_METRIC_SNAPSHOTS, HealthMetricSnapshot

metric_snapshots = bind_entity(HEALTH_METRIC_SNAPSHOTS)

__all__ = [
    "HealthMetricSnapshot",
    "metric_snapshots",
]
