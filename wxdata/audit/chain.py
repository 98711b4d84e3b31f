"""Tamper evidence for the audit trail: a keyed hash chain built by *sealing* committed records.

Writers never wait for the chain. Audit records are inserted by any number of concurrent
transactions (often inside data-modifying CTEs); a sealer, run after commits or periodically,
chains the records that have committed since its last run into the append-only ``audit_seal``
table. Only sealers contend for the chain (``pg_try_advisory_xact_lock``): a second sealer skips.

Chain order is seal position: ``hash_n = HMAC-SHA256(key, "wxac1" || hash_{n-1} || be64(n) ||
canonical(record_n))`` with ``hash_0`` 32 zero bytes. ``canonical`` is JSON (sorted keys, no
spaces, UTF-8) of *every* column of the ``audit_log`` row, NULLs omitted, each value in a fixed
text form (timestamps in UTC with microseconds, jsonb in PostgreSQL's normal form, arrays in
PostgreSQL's array syntax); the column list is read from the catalogue, so a column added to
``audit_log`` is covered without touching this module (add it nullable, or sealed rows stop
verifying).

Which records a run seals: every committed record not yet sealed whose ``transaction_id`` is at
least the ``xmin`` of the previous run's snapshot. Anything older was already visible to that run
and sealed by it, so a late-committing transaction is simply sealed by a later run, and each run
stays proportional to what is new. Each run stores its snapshot and the audit sequence's
high-water mark (MACed) in ``audit_seal_run``; :func:`verify` uses them to tell a late commit
(pending, legitimate) from a record slipped in among sealed ones (forged).

The key (``AUDIT_HMAC_KEY``) never enters the database. :func:`head` gives a MACed
``(position, hash)`` string to keep outside the database; ``verify(head=...)`` then also detects the
deletion of the newest records and seals, which no chain can reveal on its own.
See the README, "Audit trail", for exactly what this proves and what it cannot.
"""

from __future__ import annotations

import enum
import hmac
import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from json.encoder import encode_basestring as _encode_str
from typing import Any, ClassVar
from uuid import UUID

import attrs
import psycopg
from psycopg.rows import tuple_row
from returns.result import Failure, Result, Success

from wxdata.config import settings
from wxdata.context import system_context
from wxdata.errors import DataError, InvalidQuery
from wxdata.errors import from_db_error as _db_error
from wxdata.tx.scope import Isolation, current_scope, unit_of_work

Conn = psycopg.Connection[Any]

#: Advisory lock held by a sealing run (and a retention purge) for its transaction.
SEAL_LOCK = 0x7778617564697421  # "wxaudit!"
GENESIS = bytes(32)
SEAL_BATCH = 2000
VERIFY_BATCH = 5000

_LINK_TAG = b"wxac1"
_RUN_TAG = b"wxar1"
_HEAD_TAG = b"wxah1"
_PURGE_TAG = b"wxaP1"
_PURGED_TAG = b"wxap1"
_HEAD_PREFIX = "wxah1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_RAW_TYPES = frozenset({"bool", "int2", "int4", "int8", "text", "varchar"})

#: Settings pinned for every chain transaction, so text forms never depend on the session
#: (and cursors are planned for reading everything, not for a fast first row; no JIT, whose
#: compile time dwarfs a small sealing run).
_PIN_SQL = (
    "SELECT set_config('TimeZone', 'UTC', true), set_config('DateStyle', 'ISO, YMD', true), "
    "set_config('IntervalStyle', 'postgres', true), set_config('extra_float_digits', '1', true), "
    "set_config('bytea_output', 'hex', true), set_config('cursor_tuple_fraction', '1', true), "
    "set_config('jit', 'off', true)"
)


@attrs.frozen(slots=True)
class AuditKeyMissing(DataError):
    """The chain needs ``AUDIT_HMAC_KEY`` and none is configured."""

    code: ClassVar[str] = "AUDIT_KEY_MISSING"
    status: ClassVar[int] = 500

    @property
    def message(self) -> str:
        """A PHI-free, human-readable sentence."""
        return "AUDIT_HMAC_KEY is not configured"



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


def mac(key: bytes, tag: bytes, *parts: bytes) -> bytes:
    """HMAC-SHA256 of a tag and length-prefixed parts (unambiguous framing)."""
    body = b"".join(len(p).to_bytes(4, "big") + p for p in parts)
    return hmac.digest(key, tag + body, "sha256")


def _be64(value: int) -> bytes:
    return value.to_bytes(8, "big", signed=True)


def _micros(value: datetime) -> int:
    return (value - _EPOCH) // _MICRO


_MICRO = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


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
        """Read a head string (its MAC is checked by :func:`verify`, which has the key)."""
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


# --- canonical form and hashes -----------------------------------------------------------------


def _norm(value: Any) -> Any:
    """The canonical JSON value of one column (already-text values pass through)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive timestamps have no canonical form")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, date | UUID | Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _norm(v) for k, v in value.items()}
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("non-finite floats have no canonical form")
        return value
    return str(value)


def canonical(record: Mapping[str, Any]) -> bytes:
    """The canonical bytes of a record: sorted-key compact JSON of its non-NULL columns, UTF-8."""
    body = {str(k): _norm(v) for k, v in record.items() if v is not None}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def _row_encoder(names: Sequence[str]) -> Callable[[Sequence[Any]], bytes]:
    """Fast :func:`canonical` for rows read with :func:`_select_list` (str/int/bool/None only).

    Produces exactly ``canonical(dict(zip(names, row)))``: keys in sorted order, strings escaped
    by the JSON module's own encoder, ``true``/``false``, integers in decimal.
    """
    order = sorted(range(len(names)), key=names.__getitem__)
    fields = [(i, _encode_str(names[i]) + ":") for i in order]

    def encode(row: Sequence[Any]) -> bytes:
        parts = []
        for i, prefix in fields:
            value = row[i]
            if value is None:
                continue
            if value is True:
                parts.append(prefix + "true")
            elif value is False:
                parts.append(prefix + "false")
            elif type(value) is int:
                parts.append(prefix + int.__repr__(value))
            elif type(value) is str:
                parts.append(prefix + _encode_str(value))
            else:  # not produced by _select_list; keep the general path exact anyway
                parts.append(prefix + json.dumps(_norm(value), sort_keys=True,
                                                 separators=(",", ":"), ensure_ascii=False))
        return ("{" + ",".join(parts) + "}").encode("utf-8")

    return encode


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


def chain_key() -> Result[bytes, DataError]:
    """The configured ``AUDIT_HMAC_KEY``, or ``Failure(AuditKeyMissing())``."""
    key = settings().audit_hmac_key
    return Success(key) if key else Failure(AuditKeyMissing())


# --- SQL helpers -------------------------------------------------------------------------------


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _select_list(conn: Conn, alias: str = "a") -> tuple[tuple[str, ...], str]:
    """Every audit_log column, each as a text-stable expression: ``(names, select list)``."""
    rows = conn.execute(
        "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = 'audit_log'::regclass AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum"
    ).fetchall()
    names: list[str] = []
    exprs: list[str] = []
    for name, typ in rows:
        ref = f"{alias}.{_quote(name)}"
        if typ in _RAW_TYPES:
            expr = ref
        elif typ == "timestamptz":
            expr = f"to_char({ref} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        else:
            expr = f"{ref}::text"
        names.append(name)
        exprs.append(expr)
    return tuple(names), ",".join(exprs)


def _no_scope(conn: Conn, what: str) -> Failure[DataError] | None:
    if current_scope(conn) is not None:
        return Failure(InvalidQuery(field="conn", rule=f"{what} needs a connection outside a "
                                                        "unit of work"))
    return None


class _Stop(Exception):
    """Internal: leave the sealing transaction early (lock busy)."""


# --- sealing -----------------------------------------------------------------------------------


def seal(conn: Conn, key: bytes, *, batch_size: int = SEAL_BATCH) -> Result[SealReport, DataError]:
    """Chain every committed, not yet sealed audit record into ``audit_seal``, in ``seq`` order.

    Skips (``skipped=True``) when another sealer holds the lock. Never blocks audit writers.
    """
    refused = _no_scope(conn, "seal")
    if refused is not None:
        return refused
    if not key:
        return Failure(AuditKeyMissing())
    started = time.perf_counter()
    ctx = system_context("audit-seal")
    report: SealReport | None = None
    try:
        with unit_of_work(conn, ctx) as _scope:
            got = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (SEAL_LOCK,)).fetchone()
            if not (got and got[0]):
                raise _Stop
            report = _seal_locked(conn, key, batch_size, started)
    except _Stop:
        return Success(SealReport(0, None, None, 0, None, True, time.perf_counter() - started))
    except psycopg.Error as exc:
        return Failure(_db_error(exc, "AuditSeal"))
    assert report is not None
    return Success(attrs.evolve(report, seconds=time.perf_counter() - started))


def _seal_locked(conn: Conn, key: bytes, batch_size: int, started: float) -> SealReport:
    conn.execute(_PIN_SQL)
    names, select = _select_list(conn)
    encode = _row_encoder(names)
    # The snapshot recorded for this run is taken before the candidate query's own (newer) one:
    # everything visible in it is visible to the query and so sealed by this run.
    snap_row = conn.execute(
        "SELECT pg_current_snapshot()::text, "
        "COALESCE(pg_sequence_last_value(pg_get_serial_sequence('audit_log', 'seq')::regclass), 0),"
        " now()"
    ).fetchone()
    assert snap_row is not None
    snapshot, seq_hwm, run_started = snap_row
    last = conn.execute(
        "SELECT position, hash FROM audit_seal ORDER BY position DESC LIMIT 1").fetchone()
    position, prev = (int(last[0]), bytes(last[1])) if last else (0, GENESIS)
    run = conn.execute(
        "SELECT pg_snapshot_xmin(snapshot)::text, seq_hwm FROM audit_seal_run "
        "ORDER BY run_id DESC LIMIT 1").fetchone()
    floor, prev_hwm = (run[0], int(run[1])) if run else ("0", 0)
    first = position + 1
    late = 0
    sql = (
        f"SELECT a.id, a.seq, {select} FROM audit_log a "
        "WHERE a.transaction_id >= %(floor)s::xid8 "
        # OFFSET 0 keeps the anti-join a per-candidate index probe: a hash over every seal
        # would make each run proportional to the chain, not to what is new.
        "AND NOT EXISTS (SELECT 1 FROM audit_seal s WHERE s.audit_id = a.id OFFSET 0) "
        "ORDER BY a.seq"
    )
    writer = conn.cursor()
    with conn.cursor(name=f"wx_seal_{position}", row_factory=tuple_row) as cur:
        cur.itersize = batch_size
        cur.execute(sql, {"floor": floor})
        while batch := cur.fetchmany(batch_size):
            out = []
            for row in batch:
                position += 1
                hash_ = link_hash(key, prev, position, encode(row[2:]))
                if row[1] <= prev_hwm:
                    late += 1
                out.append((position, row[0], row[1], prev, hash_))
                prev = hash_
            with writer.copy(
                "COPY audit_seal (position, audit_id, audit_seq, prev_hash, hash) FROM STDIN"
            ) as copy:
                for values in out:
                    copy.write_row(values)
    sealed = position - first + 1
    if sealed == 0:
        return SealReport(0, None, None, 0, None, False, 0.0)
    run_row = conn.execute(
        "INSERT INTO audit_seal_run (snapshot, seq_hwm, first_position, last_position, sealed,"
        " started_at, mac) VALUES (%s::pg_snapshot, %s, %s, %s, %s, %s, %s) RETURNING run_id",
        (snapshot, seq_hwm, first, position, sealed, run_started,
         run_mac(key, snapshot, int(seq_hwm), first, position, sealed)),
    ).fetchone()
    assert run_row is not None
    return SealReport(sealed, first, position, late, int(run_row[0]), False, 0.0)


# --- head ----------------------------------------------------------------------------------------


def head(conn: Conn, key: bytes) -> Result[ChainHead, DataError]:
    """The chain's newest ``(position, hash)`` with a MAC: print it and keep it off the database."""
    if not key:
        return Failure(AuditKeyMissing())
    try:
        row = conn.execute(
            "SELECT position, hash FROM audit_seal ORDER BY position DESC LIMIT 1").fetchone()
    except psycopg.Error as exc:
        return Failure(_db_error(exc, "AuditSeal"))
    if row is None:
        return Success(ChainHead.make(key, 0, GENESIS))
    return Success(ChainHead.make(key, int(row[0]), bytes(row[1])))


# --- verification ----------------------------------------------------------------------------


@attrs.define(slots=True)
class _Walk:
    """Mutable state of one verification walk (local to a call)."""

    seals: int = 0
    verified: int = 0
    purged: int = 0
    last_position: int = 0
    last_hash: bytes = GENESIS


def verify(
    conn: Conn, key: bytes, head: ChainHead | str | None = None, *, batch_size: int = VERIFY_BATCH
) -> Result[VerifyReport, DataError]:
    """Walk the chain in position order; report OK or the first broken record and why.

    With ``head`` (a string from :func:`head`, kept outside the database) also check that the
    chain still contains that head and extends it.
    """
    refused = _no_scope(conn, "verify")
    if refused is not None:
        return refused
    if not key:
        return Failure(AuditKeyMissing())
    wanted: ChainHead | None = None
    if head is not None:
        parsed = ChainHead.parse(head) if isinstance(head, str) else Success(head)
        if isinstance(parsed, Failure):
            return parsed
        wanted = parsed.unwrap()
        if not wanted.authentic(key):
            return Failure(InvalidQuery(field="head", rule="is not authentic for this key"))
    started = time.perf_counter()
    walk = _Walk()
    pending = 0
    try:
        with unit_of_work(conn, system_context("audit-verify"), isolation=Isolation.REPEATABLE_READ,
                          read_only=True):
            conn.execute(_PIN_SQL)
            broken = _walk(conn, key, wanted, walk, batch_size)
            if broken is None and wanted is not None and walk.last_position < wanted.position:
                broken = Break(BreakReason.TRUNCATED, walk.last_position + 1, None,
                               f"the chain ends at position {walk.last_position} but the kept "
                               f"head is at position {wanted.position}")
            runs: list[tuple[Any, ...]] = []
            if broken is None:
                broken, runs = _check_runs(conn, key, walk)
            if broken is None:
                broken, pending = _check_unsealed(conn, runs)
    except psycopg.Error as exc:
        return Failure(_db_error(exc, "AuditSeal"))
    return Success(VerifyReport(walk.seals, walk.verified, walk.purged, pending,
                                walk.last_position, walk.last_hash, broken,
                                time.perf_counter() - started))


def _purges(conn: Conn, key: bytes) -> tuple[dict[int, bool], Break | None]:
    """Every purge checkpoint and whether its MAC holds."""
    ok: dict[int, bool] = {}
    for purge_id, phi_cut, other_cut, purged, held, user_id, tag in conn.execute(
        "SELECT purge_id, phi_cutoff, other_cutoff, purged, held, user_id, mac FROM audit_purge "
        "ORDER BY purge_id"
    ):
        good = hmac.compare_digest(
            bytes(tag), purge_mac(key, purge_id, phi_cut, other_cut, purged, held, user_id))
        ok[int(purge_id)] = good
        if not good:
            return ok, Break(BreakReason.FORGED, None, None,
                             f"retention purge checkpoint {purge_id} is not authentic")
    return ok, None


def _walk(conn: Conn, key: bytes, wanted: ChainHead | None, walk: _Walk,
          batch_size: int) -> Break | None:
    purges, broken = _purges(conn, key)
    if broken is not None:
        return broken
    names, select = _select_list(conn)
    encode = _row_encoder(names)
    sql = (
        "SELECT s.position, s.audit_id IS NULL, s.audit_seq, s.prev_hash, s.hash, p.purge_id, "
        f"p.mac, a.seq, {select} FROM audit_seal s "
        "LEFT JOIN audit_log a ON a.id = s.audit_id "
        "LEFT JOIN audit_purged p ON p.position = s.position ORDER BY s.position"
    )
    expected = 1
    prev = GENESIS
    compare = hmac.compare_digest
    with conn.cursor(name="wx_verify", row_factory=tuple_row) as cur:
        cur.itersize = batch_size
        cur.execute(sql)
        while batch := cur.fetchmany(batch_size):
            for row in batch:
                position, _unlinked, seal_seq, prev_hash, stored, purge_id, marker, rec_seq = row[:8]
                if position != expected:
                    return Break(BreakReason.DELETED, expected, None,
                                 f"seal positions {expected}..{position - 1} are missing")
                if not compare(prev_hash, prev):
                    return Break(BreakReason.REORDERED, position, seal_seq,
                                 "the seal does not link to its predecessor (seals removed, "
                                 "inserted or reordered)")
                if rec_seq is None:
                    # A missing record is excused only by an authentic purge checkpoint and a
                    # keyed marker for this very seal; whether the seal still names the record
                    # (a row purge) or not (seals written before the link lost its foreign key,
                    # whose purge set it to NULL) or its month was dropped makes no difference.
                    excused = (
                        purge_id is not None and purges.get(purge_id, False)
                        and compare(marker, purged_mac(key, position, purge_id, stored))
                    )
                    if not excused:
                        return Break(BreakReason.DELETED, position, seal_seq,
                                     "the sealed record is missing and no purge checkpoint covers it")
                    walk.purged += 1
                else:
                    if rec_seq != seal_seq:
                        return Break(BreakReason.REORDERED, position, seal_seq,
                                     f"the seal now points at the record with seq {rec_seq}")
                    computed = link_hash(key, prev, position, encode(row[8:]))
                    if not compare(computed, stored):
                        return Break(BreakReason.EDITED, position, seal_seq,
                                     "the record's content no longer matches its seal")
                    walk.verified += 1
                if wanted is not None and position == wanted.position and not compare(
                        stored, wanted.hash):
                    return Break(BreakReason.HEAD_MISMATCH, position, seal_seq,
                                 "the kept head's position now holds a different hash")
                prev = bytes(stored)
                walk.seals += 1
                walk.last_position = position
                walk.last_hash = prev
                expected += 1
    return None


def _check_runs(conn: Conn, key: bytes, walk: _Walk) -> tuple[Break | None, list[tuple[Any, ...]]]:
    """Seal runs must tile the chain contiguously; the last two (used below) must be authentic."""
    gap = conn.execute(
        "SELECT run_id FROM (SELECT run_id, first_position, "
        "lag(last_position) OVER (ORDER BY run_id) AS prev_last FROM audit_seal_run) r "
        "WHERE first_position <> COALESCE(prev_last, 0) + 1 ORDER BY run_id LIMIT 1"
    ).fetchone()
    if gap is not None:
        return Break(BreakReason.FORGED, None, None,
                     f"seal run {gap[0]} does not continue the previous run"), []
    runs = conn.execute(
        "SELECT run_id, snapshot::text, seq_hwm, first_position, last_position, sealed, mac "
        "FROM audit_seal_run ORDER BY run_id DESC LIMIT 2"
    ).fetchall()
    last_run = int(runs[0][4]) if runs else 0
    if last_run != walk.last_position:
        return Break(BreakReason.FORGED, walk.last_position if walk.seals else None, None,
                     f"the seal runs end at position {last_run}, the seals at "
                     f"{walk.last_position}"), []
    for run_id, snapshot, hwm, first, last, sealed, tag in runs:
        if not hmac.compare_digest(bytes(tag), run_mac(key, snapshot, hwm, first, last, sealed)):
            return Break(BreakReason.FORGED, None, None,
                         f"seal run {run_id} is not authentic"), []
    return None, runs


def _check_unsealed(conn: Conn, runs: list[tuple[Any, ...]]) -> tuple[Break | None, int]:
    """Unsealed records: pending (committed after the last run could see them) or forged.

    Forged: its transaction had finished before the last run's snapshot (that run would have
    sealed it), or it started after that snapshot yet carries a ``seq`` allocated before the
    previous run (only an explicit ``OVERRIDING SYSTEM VALUE`` insert does that).
    """
    snapshot = runs[0][1] if runs else None
    prev_hwm = runs[1][2] if len(runs) > 1 else None
    row = conn.execute(
        "SELECT min(seq) FILTER (WHERE forged), count(*) FILTER (WHERE NOT forged) FROM ("
        " SELECT a.seq, COALESCE(pg_visible_in_snapshot(a.transaction_id, %(s)s::pg_snapshot)"
        "  OR (a.transaction_id >= pg_snapshot_xmax(%(s)s::pg_snapshot) AND a.seq <= %(h)s),"
        "  false) AS forged"
        " FROM audit_log a WHERE NOT EXISTS (SELECT 1 FROM audit_seal s WHERE s.audit_id = a.id)"
        ") u",
        {"s": snapshot, "h": prev_hwm},
    ).fetchone()
    assert row is not None
    forged_seq, pending = row
    if forged_seq is not None:
        return Break(BreakReason.FORGED, None, int(forged_seq),
                     "an unsealed record sits among sealed ones (it should have been sealed "
                     "already, or its seq predates the previous seal run)"), int(pending)
    return None, int(pending)


def describe(report: VerifyReport) -> str:
    """A one-line, PHI-free summary of a verification."""
    if report.broken is not None:
        return f"BROKEN at {report.broken.describe()}"
    return (f"OK: {report.seals} seals through position {report.last_position} "
            f"({report.verified} records verified, {report.purged} purged, {report.pending} "
            f"pending)")


__all__ = [
    "GENESIS",
    "SEAL_LOCK",
    "AuditKeyMissing",
    "Break",
    "BreakReason",
    "ChainHead",
    "SealReport",
    "VerifyReport",
    "canonical",
    "chain_key",
    "describe",
    "head",
    "link_hash",
    "purge_mac",
    "purged_mac",
    "record_hash",
    "run_mac",
    "seal",
    "verify",
]
