"""Lab results: the domain's finders, and ``ops`` (the generic functions on ``lab_results``)."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.student_health import LAB_RESULTS, LabResult

ENTITY = LAB_RESULTS
ops = bind_entity(LAB_RESULTS)

__all__ = ["ENTITY", "LabResult", "ops"]
