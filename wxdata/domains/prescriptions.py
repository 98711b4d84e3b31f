"""Prescriptions: the generic data functions bound to the ``prescriptions`` entity."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.medication import PRESCRIPTIONS, Prescription

ENTITY = PRESCRIPTIONS
ops = bind_entity(PRESCRIPTIONS)
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

__all__ = ["ENTITY", "Prescription", "ops"]
