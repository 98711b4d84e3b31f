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

One module per concern: :mod:`~wxdata.audit.chain.canonical_form` (the bytes a hash covers),
:mod:`~wxdata.audit.chain.macs` (keys, link hashes, run/purge MACs, the kept head),
:mod:`~wxdata.audit.chain.reports` (what a run or a verification reports),
:mod:`~wxdata.audit.chain.columns` (pinned settings, the text-stable select list),
:mod:`~wxdata.audit.chain.sealing` (:func:`seal`, :func:`head`) and
:mod:`~wxdata.audit.chain.verifying` (:func:`verify`).
"""

from __future__ import annotations

from wxdata.audit.chain.canonical_form import canonical
from wxdata.audit.chain.canonical_form import row_encoder as _row_encoder  # noqa: F401 - its former name
from wxdata.audit.chain.columns import SEAL_BATCH, SEAL_LOCK, VERIFY_BATCH
from wxdata.audit.chain.macs import (
    GENESIS,
    AuditKeyMissing,
    ChainHead,
    chain_key,
    link_hash,
    mac,
    purge_mac,
    purged_mac,
    record_hash,
    run_mac,
)
from wxdata.audit.chain.reports import Break, BreakReason, SealReport, VerifyReport, describe
from wxdata.audit.chain.sealing import head, seal
from wxdata.audit.chain.verifying import verify

__all__ = [
    "GENESIS",
    "SEAL_BATCH",
    "SEAL_LOCK",
    "VERIFY_BATCH",
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
    "mac",
    "purge_mac",
    "purged_mac",
    "record_hash",
    "run_mac",
    "seal",
    "verify",
]
