"""Treatment plans: the domain's finders, and ``ops`` (the generic functions on ``treatment_plans``)."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.clinical import TREATMENT_PLANS, TreatmentPlan

ENTITY = TREATMENT_PLANS
ops = bind_entity(TREATMENT_PLANS)

__all__ = ["ENTITY", "TreatmentPlan", "ops"]
