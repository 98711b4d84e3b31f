"""Medical history: the generic data functions bound to the ``medical_history`` entity."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.health import MEDICAL_HISTORY, MedicalHistory

ENTITY = MEDICAL_HISTORY
ops = bind_entity(MEDICAL_HISTORY)
find_by_id = ops.find_by_id
find_one = ops.find_one
find_many = ops.find_many
find_after = ops.find_after
count = ops.count
exists = ops.exists
create = ops.create
update = ops.update
delete = ops.delete
restore = ops.restore
bulk_create = ops.bulk_create
stream = ops.stream

__all__ = ["ENTITY", "MedicalHistory", "ops"]
