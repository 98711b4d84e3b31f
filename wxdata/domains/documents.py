"""Documents: the domain's finders, and ``ops`` (the generic functions on ``documents``)."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column
from wxdata.schema.documents import (
    DOCUMENTS,
    Document,
    DocumentAccessLevel,
    DocumentCategory,
    DocumentStatus,
)

ENTITY = DOCUMENTS
ops = bind_entity(DOCUMENTS)

find_by_student = by_column(DOCUMENTS, "student_id", order_by=[("created_at", "desc")],
                            fixed={"is_active": True},
                            doc="A student's active documents, newest first.")
find_by_category = by_column(DOCUMENTS, "category", order_by=[("created_at", "desc")],
                             fixed={"is_active": True},
                             doc="Active documents of one category, newest first.")


__all__ = [
    "ENTITY",
    "Document",
    "DocumentAccessLevel",
    "DocumentCategory",
    "DocumentStatus",
    "find_by_category",
    "find_by_student",
    "ops",
]
