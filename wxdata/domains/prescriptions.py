"""Prescriptions: the domain's finders, and ``ops`` (the generic functions on ``prescriptions``)."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.medication import PRESCRIPTIONS, Prescription

ENTITY = PRESCRIPTIONS
ops = bind_entity(PRESCRIPTIONS)

__all__ = ["ENTITY", "Prescription", "ops"]
