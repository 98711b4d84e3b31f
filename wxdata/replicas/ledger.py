"""Read-your-writes bookkeeping: which WAL position each context must see. Pure: no I/O, no lock.

A context (its :func:`~wxdata.replicas.config.consistency_key`) is *pending* from its first
committed write in a primary checkout until the checkout ends and the commit's WAL insert position
is recorded; while pending, and while a recorded position is unknown (it could not be read), the
context reads from the primary. Otherwise a replica serves it once its replay position reaches
``max(position, floor)``. Positions every reachable replica has replayed are pruned; when more than
``max_tracked`` contexts are tracked the oldest is forgotten and its position raises the floor
instead (an unplaced one raises it to "primary only" until the primary's next probe), so no context
ever needs less than its last commit. The routers hold their own lock
around every call.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import attrs

UNKNOWN = 2**63 - 1  # a commit whose position could not be read: primary until resolved


@attrs.define(slots=True, eq=False)
class Ledger:
    """Tracked positions, pending contexts, unresolved commits and the floor."""

    max_tracked: int
    positions: dict[str, int] = attrs.field(factory=dict)
    pending: Counter[str] = attrs.field(factory=Counter)
    unresolved: set[str] = attrs.field(factory=set)
    floor: int = 0

    def begin_write(self, key: str) -> None:
        """A write committed in a checkout of ``key``: primary reads until :meth:`end_write`."""
        self.pending[key] += 1

    def end_write(self, key: str, lsn: int) -> None:
        """The checkout of a committed write ended; its commit is at ``lsn`` (or :data:`UNKNOWN`)."""
        self.record(key, lsn)
        self.pending[key] -= 1
        if self.pending[key] <= 0:
            del self.pending[key]

    def record(self, key: str, lsn: int) -> None:
        """Remember that ``key`` must see WAL up to ``lsn``."""
        old = self.positions.pop(key, 0)
        if lsn == UNKNOWN:
            self.unresolved.add(key)
            self.positions[key] = UNKNOWN
        else:  # read after this commit, so also after any earlier one whose position was unknown
            self.unresolved.discard(key)
            self.positions[key] = lsn if old == UNKNOWN else max(old, lsn)
        while len(self.positions) > self.max_tracked:
            evicted, position = next(iter(self.positions.items()))
            del self.positions[evicted]
            # forgetting a context raises the bar for everyone instead; forgetting one whose
            # commit is not placed yet sends everyone to the primary until the next primary probe
            self.floor = max(self.floor, position)
            if position == UNKNOWN:
                self.unresolved.discard(evicted)

    def prune(self, replayed: Iterable[int]) -> None:
        """Drop positions every reachable replica (their ``replayed`` positions) has replayed."""
        reachable = list(replayed)
        if not reachable:
            return
        horizon = min(reachable)
        self.floor = max(self.floor, horizon)
        while self.positions:
            key, position = next(iter(self.positions.items()))
            if position > horizon:
                break
            del self.positions[key]

    def resolve(self, primary_lsn: int) -> None:
        """The primary is at ``primary_lsn``: every unplaced commit is at or before it."""
        for key in self.unresolved:
            if self.positions.get(key) == UNKNOWN:
                self.positions[key] = primary_lsn
        self.unresolved.clear()
        if self.floor == UNKNOWN:
            self.floor = primary_lsn

    def requirement(self, key: str) -> tuple[int | None, str]:
        """The position a replica must have replayed for ``key`` (None: primary) and why not."""
        if key in self.pending:
            return None, "pending_write"
        position = max(self.positions.get(key, 0), self.floor)
        if position == UNKNOWN:
            return None, "read_your_writes"
        return position, ""
