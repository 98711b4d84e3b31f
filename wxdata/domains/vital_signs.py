"""Vital signs: the domain's finders, and ``ops`` (the generic functions on ``vital_signs``)."""

from __future__ import annotations

from uuid import UUID

from returns.result import Result

from wxdata import crud
from wxdata.context import ExecutionContext
from wxdata.crud import bind_entity
from wxdata.domains.finders import in_range
from wxdata.errors import DataError
from wxdata.query.paging import Page
from wxdata.schema.student_health import VITAL_SIGNS, VitalSigns

ENTITY = VITAL_SIGNS
ops = bind_entity(VITAL_SIGNS)

Conn = crud.Conn
find_by_date_range = in_range(VITAL_SIGNS, "measurement_date",
                              order_by=[("measurement_date", "desc")],
                              doc="Measurements within [start, end], newest first.")


def find_latest(
    conn: Conn, ctx: ExecutionContext, student_id: UUID | str, *, count: int = 10
) -> Result[Page[VitalSigns], DataError]:
    """A student's latest ``count`` measurements (1-100), newest first."""
    return crud.find_many(conn, ctx, VITAL_SIGNS, {"student_id": student_id},
                          order_by=[("measurement_date", "desc")], limit=count)


__all__ = [
    "ENTITY",
    "VitalSigns",
    "find_by_date_range",
    "find_latest",
    "ops",
]
