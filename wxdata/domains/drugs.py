"""The drug catalog, drug interactions and students' drug allergies.

Each entity is exposed as one bound set of the generic data functions (:class:`wxdata.crud.Ops`).
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.medication import (
    DRUG_CATALOG,
    DRUG_INTERACTIONS,
    STUDENT_DRUG_ALLERGIES,
    DrugCatalog,
    DrugInteraction,
    StudentDrugAllergy,
)

catalog = bind_entity(DRUG_CATALOG)
interactions = bind_entity(DRUG_INTERACTIONS)
student_allergies = bind_entity(STUDENT_DRUG_ALLERGIES)

__all__ = [
    "DrugCatalog",
    "DrugInteraction",
    "StudentDrugAllergy",
    "catalog",
    "interactions",
    "student_allergies",
]
