"""The plans of the generic data functions, gathered: every decision of a read, write, bulk or raw
call, each in the module of its kind.

Each public plan takes ``(conn, ctx, entity, ...)`` and answers a ``Result``; the connection is
only a key to its state (open scope, role facts), never used for I/O. :mod:`wxdata.crud` runs them
on sync connections, :mod:`wxdata.aio` on async ones.

- :mod:`wxdata.core.execute`: one statement with the context applied; shared input checks;
- :mod:`wxdata.core.auditing`: the records (riding, lane 2, scope denials) and write events;
- :mod:`wxdata.core.reads`, :mod:`wxdata.core.writes`, :mod:`wxdata.core.raw`: the operations.

Audit rides with the data: a write's record, or a PHI read's disclosure record, is part of the same
SQL statement (a data-modifying CTE), so outside a unit of work one round trip is atomic and inside
one the record commits or rolls back with the change. Reads are disclosures even when their
transaction later rolls back, so a rolled-back scope replays its read records on audit lane 2.
Every committed write is announced to :mod:`wxdata.tx.events` (cache invalidation) after COMMIT.
"""

from __future__ import annotations

from wxdata.audit.record import ALL_FIELDS
from wxdata.core.auditing import (
    _announce,
    _reads_audited,
    _record,
    _ride_params,
    _subjects,
)
from wxdata.core.bulk import bulk_create
from wxdata.core.execute import MAX_BULK, STREAM_BATCH, Where
from wxdata.core.raw import fetch, record_disclosure
from wxdata.core.reads import (
    count,
    exists,
    find_after,
    find_by_id,
    find_many,
    find_one,
    find_projected,
    stream,
)
from wxdata.core.writes import (
    _ordered,
    _write_params,
    create,
    delete,
    restore,
    update,
    update_ids,
    update_where,
)

__all__ = [
    "ALL_FIELDS",
    "MAX_BULK",
    "STREAM_BATCH",
    "Where",
    "_announce",
    "_ordered",
    "_reads_audited",
    "_record",
    "_ride_params",
    "_subjects",
    "_write_params",
    "bulk_create",
    "count",
    "create",
    "delete",
    "exists",
    "fetch",
    "find_after",
    "find_by_id",
    "find_many",
    "find_one",
    "find_projected",
    "record_disclosure",
    "restore",
    "stream",
    "update",
    "update_ids",
    "update_where",
]
