"""Medications (the formulary): every generic operation on ``medications``, and the finders."""

from __future__ import annotations

from returns.result import Result

from wxdata.context import ExecutionContext
from wxdata.core import crud as plans
from wxdata.core.effects import Plan
from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column, finder
from wxdata.errors import DataError
from wxdata.query.paging import DEFAULT_LIMIT, Page
from wxdata.schema.medication import MEDICATIONS, Medication
from wxdata.tx.scope import AnyConn

ENTITY = MEDICATIONS
ops = bind_entity(ENTITY)
find_by_id = ops.find_by_id
find_one = ops.find_one
find_many = ops.find_many
find_projected = ops.find_projected
find_after = ops.find_after
count = ops.count
exists = ops.exists
create = ops.create
update = ops.update
delete = ops.delete
restore = ops.restore
bulk_create = ops.bulk_create
update_where = ops.update_where
update_ids = ops.update_ids
stream = ops.stream
record_disclosure = ops.record_disclosure

_BY_NAME = (("name", "asc"),)
find_by_schedule = by_column(MEDICATIONS, "dea_schedule", order_by=_BY_NAME,
                             fixed={"is_controlled": True, "is_active": True},
                             doc="Active controlled substances of one DEA schedule, by name.")


@finder(MEDICATIONS)
def find_controlled_substances(
    conn: AnyConn, ctx: ExecutionContext, *, page: int = 1, limit: int = DEFAULT_LIMIT
) -> Plan[Result[Page[Medication], DataError]]:
    """Every active controlled substance in the catalogue, by name."""
    return plans.find_many(conn, ctx, MEDICATIONS, {"is_controlled": True, "is_active": True},
                           order_by=_BY_NAME, page=page, limit=limit)


@finder(MEDICATIONS)
def search_by_name(
    conn: AnyConn, ctx: ExecutionContext, text: str, *, limit: int = DEFAULT_LIMIT
) -> Plan[Result[Page[Medication], DataError]]:
    """Catalogue entries whose name or generic name contains ``text`` (literal)."""
    return plans.find_many(conn, ctx, MEDICATIONS,
                           {"or": [{"name": {"ilike": text}}, {"generic_name": {"ilike": text}}]},
                           order_by=_BY_NAME, limit=limit)


__all__ = [
    "ENTITY",
    "Medication",
    "bulk_create",
    "count",
    "create",
    "delete",
    "exists",
    "find_after",
    "find_by_id",
    "find_by_schedule",
    "find_controlled_substances",
    "find_many",
    "find_one",
    "find_projected",
    "ops",
    "record_disclosure",
    "restore",
    "search_by_name",
    "stream",
    "update",
    "update_ids",
    "update_where",
]
