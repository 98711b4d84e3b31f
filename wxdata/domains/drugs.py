"""The drug catalog, drug interactions and students' drug allergies.

One binding per entity (:class:`wxdata.crud.Ops`), each with every generic operation.
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
