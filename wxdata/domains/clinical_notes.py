"""Clinical notes: the domain's finders, and ``ops`` (the generic functions on ``clinical_notes``)."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.clinical import CLINICAL_NOTES, ClinicalNote

ENTITY = CLINICAL_NOTES
ops = bind_entity(CLINICAL_NOTES)

__all__ = ["ENTITY", "ClinicalNote", "ops"]
