"""Mental-health records: finders, and ``ops`` (the generic functions on ``mental_health_records``)."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.student_health import (
    MENTAL_HEALTH_RECORDS,
    MentalHealthRecord,
    MentalHealthRecordType,
    RiskLevel,
)

ENTITY = MENTAL_HEALTH_RECORDS
ops = bind_entity(MENTAL_HEALTH_RECORDS)

__all__ = ["ENTITY", "MentalHealthRecord", "MentalHealthRecordType", "RiskLevel", "ops"]
