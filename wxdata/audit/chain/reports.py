"""What a sealing run or a verification reports: plain frozen values, PHI-free by construction."""

from __future__ import annotations

import enum

import attrs


class BreakReason(enum.StrEnum):
    """Why verification stopped."""

    EDITED = "edited"  # the record's content no longer matches its seal
    DELETED = "deleted"  # a sealed record, or a seal, is missing (and was not purged)
    REORDERED = "reordered"  # seals no longer link, or a seal points at another record
    FORGED = "forged"  # an unsealed record among sealed ones, or unauthenticated chain metadata
    TRUNCATED = "truncated"  # the chain no longer reaches the externally kept head
    HEAD_MISMATCH = "head_mismatch"  # the head's position holds another hash


@attrs.frozen(slots=True)
class Break:
    """The first broken point of the chain: where (position and/or seq), why, and a PHI-free detail."""

    reason: BreakReason
    position: int | None
    seq: int | None
    detail: str

    def describe(self) -> str:
        """One line naming the position, the record's seq and the reason (no record content)."""
        where = []
        if self.position is not None:
            where.append(f"position {self.position}")
        if self.seq is not None:
            where.append(f"seq {self.seq}")
        return f"{' '.join(where) or 'chain'}: {self.reason.value} - {self.detail}"


@attrs.frozen(slots=True)
class SealReport:
    """What a sealing run did."""

    sealed: int
    first_position: int | None
    last_position: int | None
    late: int
    run_id: int | None
    skipped: bool
    seconds: float

    @property
    def rate(self) -> float:
        """Records sealed per second (0 when nothing was sealed)."""
        return self.sealed / self.seconds if self.sealed and self.seconds > 0 else 0.0


@attrs.frozen(slots=True)
class VerifyReport:
    """The outcome of a verification: counts, the last position, and the first break if any."""

    seals: int
    verified: int
    purged: int
    pending: int
    last_position: int
    last_hash: bytes = attrs.field(repr=lambda h: h.hex()[:16])
    broken: Break | None
    seconds: float

    @property
    def ok(self) -> bool:
        """True when nothing is broken."""
        return self.broken is None


def describe(report: VerifyReport) -> str:
    """A one-line, PHI-free summary of a verification."""
    if report.broken is not None:
        return f"BROKEN at {report.broken.describe()}"
    return (f"OK: {report.seals} seals through position {report.last_position} "
            f"({report.verified} records verified, {report.purged} purged, {report.pending} "
            f"pending)")


__all__ = ["Break", "BreakReason", "SealReport", "VerifyReport", "describe"]
