"""Medications (the formulary): finders, and ``ops`` (the generic functions on ``medications``)."""

from __future__ import annotations

from returns.result import Result

from wxdata import crud
from wxdata.context import ExecutionContext
from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column
from wxdata.errors import DataError
from wxdata.query.paging import DEFAULT_LIMIT, Page
from wxdata.schema.medication import MEDICATIONS, Medication

ENTITY = MEDICATIONS
ops = bind_entity(MEDICATIONS)

Conn = crud.Conn
find_by_schedule = by_column(MEDICATIONS, "dea_schedule", order_by=(("name", "asc"),),
                             fixed={"is_controlled": True, "is_active": True},
                             doc="Active controlled substances of one DEA schedule, by name.")


def find_controlled_substances(
    conn: Conn, ctx: ExecutionContext, *, page: int = 1, limit: int = DEFAULT_LIMIT
) -> Result[Page[Medication], DataError]:
    """Every active controlled substance in the catalogue, by name."""
    return crud.find_many(conn, ctx, MEDICATIONS, {"is_controlled": True, "is_active": True},
                          order_by=[("name", "asc")], page=page, limit=limit)


def search_by_name(
    conn: Conn, ctx: ExecutionContext, text: str, *, limit: int = DEFAULT_LIMIT
) -> Result[Page[Medication], DataError]:
    """Catalogue entries whose name or generic name contains ``text`` (literal)."""
    return crud.find_many(conn, ctx, MEDICATIONS,
                          {"or": [{"name": {"ilike": text}}, {"generic_name": {"ilike": text}}]},
                          order_by=[("name", "asc")], limit=limit)


__all__ = [
    "ENTITY",
    "Medication",
    "find_by_schedule",
    "find_controlled_substances",
    "ops",
    "search_by_name",
]
