"""Medical history: the domain's finders, and ``ops`` (the generic functions on ``medical_history``)."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.student_health import MEDICAL_HISTORY, MedicalHistory

ENTITY = MEDICAL_HISTORY
ops = bind_entity(MEDICAL_HISTORY)

__all__ = ["ENTITY", "MedicalHistory", "ops"]
