"""Growth tracking: the domain's finders, and ``ops`` (the generic functions on ``growth_tracking``)."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.student_health import GROWTH_TRACKING, GrowthTracking

ENTITY = GROWTH_TRACKING
ops = bind_entity(GROWTH_TRACKING)

__all__ = ["ENTITY", "GrowthTracking", "ops"]
