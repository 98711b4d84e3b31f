"""The keyed hashes of the chain: links, run and purge metadata, and the externally kept head.

Every MAC is HMAC-SHA256 under ``AUDIT_HMAC_KEY`` (which never enters the database) with a tag
per kind, so a MAC of one kind can never stand in for another.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import attrs
from returns.result import Failure, Result, Success

from wxdata.audit.chain.canonical_form import canonical
from wxdata.config import settings
from wxdata.errors import DataError, InvalidQuery

GENESIS = bytes(32)

_LINK_TAG = b"wxac1"
_RUN_TAG = b"wxar1"
_HEAD_TAG = b"wxah1"
_PURGE_TAG = b"wxaP1"
_PURGED_TAG = b"wxap1"
_HEAD_PREFIX = "wxah1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


@attrs.frozen(slots=True)
class AuditKeyMissing(DataError):
    """The chain needs ``AUDIT_HMAC_KEY`` and none is configured."""

    code: ClassVar[str] = "AUDIT_KEY_MISSING"
    status: ClassVar[int] = 500

    @property
    def message(self) -> str:
        """A PHI-free, human-readable sentence."""
        return "AUDIT_HMAC_KEY is not configured"


def chain_key() -> Result[bytes, DataError]:
    """The configured ``AUDIT_HMAC_KEY``, or ``Failure(AuditKeyMissing())``."""
    return require_key(settings().audit_hmac_key)


def require_key(key: bytes | None) -> Result[bytes, DataError]:
    """``key`` when it is non-empty, else ``Failure(AuditKeyMissing())``."""
    return Success(key) if key else Failure(AuditKeyMissing())


def mac(key: bytes, tag: bytes, *parts: bytes) -> bytes:
    """HMAC-SHA256 of a tag and length-prefixed parts (unambiguous framing)."""
    body = b"".join(len(p).to_bytes(4, "big") + p for p in parts)
    return hmac.digest(key, tag + body, "sha256")


def _be64(value: int) -> bytes:
    return value.to_bytes(8, "big", signed=True)


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // _MICRO


def link_hash(key: bytes, prev_hash: bytes, position: int, canonical_bytes: bytes) -> bytes:
    """``HMAC(key, "wxac1" || prev_hash || be64(position) || canonical)``."""
    return hmac.digest(key, _LINK_TAG + prev_hash + _be64(position) + canonical_bytes, "sha256")


def record_hash(key: bytes, prev_hash: bytes, position: int, record: Mapping[str, Any]) -> bytes:
    """The chain hash of ``record`` sealed at ``position`` after ``prev_hash``."""
    return link_hash(key, prev_hash, position, canonical(record))


def run_mac(key: bytes, snapshot: str, seq_hwm: int, first: int, last: int, sealed: int) -> bytes:
    """MAC of one sealing run's metadata."""
    return mac(key, _RUN_TAG, snapshot.encode(), _be64(seq_hwm), _be64(first), _be64(last),
               _be64(sealed))


def purge_mac(key: bytes, purge_id: int, phi_cutoff: datetime, other_cutoff: datetime,
              purged: int, held: int, user_id: str) -> bytes:
    """MAC of one retention purge checkpoint."""
    return mac(key, _PURGE_TAG, _be64(purge_id), _be64(_micros(phi_cutoff)),
               _be64(_micros(other_cutoff)), _be64(purged), _be64(held), user_id.encode())


def purged_mac(key: bytes, position: int, purge_id: int, seal_hash: bytes) -> bytes:
    """MAC of the marker saying the record sealed at ``position`` was purged by ``purge_id``."""
    return mac(key, _PURGED_TAG, _be64(position), _be64(purge_id), seal_hash)


@attrs.frozen(slots=True)
class ChainHead:
    """The newest seal's position and hash with a MAC over both: keep its string outside the DB."""

    position: int
    hash: bytes = attrs.field(repr=lambda h: h.hex()[:16])
    mac: bytes = attrs.field(repr=False)

    @classmethod
    def make(cls, key: bytes, position: int, hash_: bytes) -> ChainHead:
        """A head for ``(position, hash)`` authenticated with ``key``."""
        return cls(position, hash_, mac(key, _HEAD_TAG, _be64(position), hash_))

    def authentic(self, key: bytes) -> bool:
        """Whether the MAC was made with ``key``."""
        return hmac.compare_digest(self.mac, mac(key, _HEAD_TAG, _be64(self.position), self.hash))

    def to_string(self) -> str:
        """``wxah1:<position>:<hash hex>:<mac hex>``."""
        return f"{_HEAD_PREFIX}:{self.position}:{self.hash.hex()}:{self.mac.hex()}"

    @classmethod
    def parse(cls, text: str) -> Result[ChainHead, DataError]:
        """Read a head string (its MAC is checked by ``verify``, which has the key)."""
        parts = text.strip().split(":")
        bad = Failure(InvalidQuery(field="head", rule="must be wxah1:<position>:<hash>:<mac>"))
        if len(parts) != 4 or parts[0] != _HEAD_PREFIX or not parts[1].isdigit():
            return bad
        try:
            hash_, tag = bytes.fromhex(parts[2]), bytes.fromhex(parts[3])
        except ValueError:
            return bad
        if len(hash_) != 32 or len(tag) != 32:
            return bad
        return Success(cls(int(parts[1]), hash_, tag))


__all__ = [
    "GENESIS",
    "AuditKeyMissing",
    "ChainHead",
    "chain_key",
    "link_hash",
    "mac",
    "purge_mac",
    "purged_mac",
    "record_hash",
    "require_key",
    "run_mac",
]
