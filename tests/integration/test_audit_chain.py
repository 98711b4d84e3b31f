"""The audit hash chain against the real PostgreSQL: sealing, verification and every tamper case.

Tamper tests run on a throw-away clone of the migrated test database (one per module, made like
``fresh_database``'s, its audit tables emptied before every test so counts are exact) as the
superuser, with ``session_replication_role = replica`` so the append-only guard triggers (and the
seal's foreign key) do not fire, as an attacker with that power would. Timings are printed, never
asserted.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date
from typing import Any

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb
from returns.result import Failure, Success

from wxdata import system_context
from wxdata.audit.chain import (
    GENESIS,
    BreakReason,
    ChainHead,
    SealReport,
    VerifyReport,
    canonical,
    head,
    record_hash,
    seal,
    verify,
)
from wxdata.config import configure
from wxdata.config import settings as wx_settings

KEY = b"test-audit-chain-key-0123456789abcdef"
OTHER_KEY = b"another-key-entirely-0123456789abcdef"


# --- helpers -------------------------------------------------------------------------------------


def empty_audit_trail(conn: psycopg.Connection[Any]) -> None:
    """Remove every audit row (inherited from the template or left by an earlier test)."""
    conn.execute("SET session_replication_role = replica")
    conn.execute("TRUNCATE audit_purged, audit_purge, audit_seal_run, audit_seal, "
                 "audit_legal_hold, audit_log")
    conn.execute("SET session_replication_role = origin")


@pytest.fixture(scope="module")
def audit_db(server_url: str, db_url: str) -> Iterator[str]:
    """A throw-away clone of the migrated test database for this module, dropped at its end."""
    name = f"wxdata_audit_{uuid.uuid4().hex[:10]}"
    template = conninfo_to_dict(db_url)["dbname"]
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()", (template,))
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield make_conninfo(server_url, dbname=name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def audit_url(audit_db: str) -> str:
    """The module's throw-away database with an empty audit trail."""
    with psycopg.connect(audit_db, autocommit=True) as conn:
        empty_audit_trail(conn)
    return audit_db


def _insert(conn: psycopg.Connection[Any], n: int, *, tag: str = "r") -> None:
    """n audit records with a variety of column values (one statement)."""
    conn.execute(
        "INSERT INTO audit_log (action, entity_type, entity_id, entity_ids, subject_student_id,"
        " subject_ids, user_id, user_role, new_values, changes, fields_disclosed, is_phi,"
        " compliance_type, purpose, tags, metadata, ip_address) "
        "SELECT CASE WHEN i %% 3 = 0 THEN 'UPDATE' ELSE 'READ' END, 'Student', e, ARRAY[e], s,"
        " ARRAY[s], 'u-' || (i %% 7), 'NURSE', jsonb_build_object('grade', i %% 12, 'n', %s || i),"
        " CASE WHEN i %% 3 = 0 THEN jsonb_build_object('grade', jsonb_build_object('before', 1,"
        " 'after', 2)) END, ARRAY['grade'], true, 'HIPAA', 'TREATMENT', ARRAY['student'],"
        " jsonb_build_object('k', 1.50), '10.0.0.' || (i %% 250) "
        "FROM generate_series(1, %s) i, LATERAL (SELECT gen_random_uuid() e, gen_random_uuid() s) u",
        (tag, n),
    )


@contextmanager
def _tamper(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """Act as a superuser with triggers (guards, foreign keys) switched off."""
    conn.execute("SET session_replication_role = replica")
    try:
        yield conn
    finally:
        conn.execute("SET session_replication_role = origin")


def _ok(conn: psycopg.Connection[Any], **kw: Any) -> VerifyReport:
    report = verify(conn, KEY, **kw).unwrap()
    assert report.ok, report.broken
    return report


def _broken(conn: psycopg.Connection[Any], **kw: Any) -> Any:
    report = verify(conn, KEY, **kw).unwrap()
    assert not report.ok, "verify reported an intact chain"
    return report.broken


def _sealed(conn: psycopg.Connection[Any]) -> SealReport:
    report = seal(conn, KEY).unwrap()
    assert not report.skipped
    return report


def _at(conn: psycopg.Connection[Any], position: int) -> tuple[uuid.UUID, int]:
    row = conn.execute("SELECT audit_id, audit_seq FROM audit_seal WHERE position = %s",
                       (position,)).fetchone()
    assert row is not None
    return row[0], row[1]


@pytest.fixture
def chain(audit_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A throw-away database holding exactly 20 sealed audit records (positions 1..20)."""
    with psycopg.connect(audit_url, autocommit=True) as conn:
        _insert(conn, 20)
        assert _sealed(conn).sealed == 20
        yield conn


# --- the intact chain ----------------------------------------------------------------------------


def test_seal_chains_every_record_once_and_verifies(chain: psycopg.Connection[Any]) -> None:
    report = _ok(chain)
    assert (report.seals, report.verified, report.pending, report.last_position) == (20, 20, 0, 20)
    again = _sealed(chain)
    assert again.sealed == 0 and again.run_id is None
    _insert(chain, 5)
    more = _sealed(chain)
    assert (more.sealed, more.first_position, more.last_position) == (5, 21, 25)
    ids = chain.execute("SELECT count(*), count(DISTINCT audit_id) FROM audit_seal").fetchone()
    assert ids == (25, 25)
    assert _ok(chain).verified == 25


def test_hashes_follow_the_documented_formula(chain: psycopg.Connection[Any]) -> None:
    """hash_n = HMAC(key, 'wxac1' || prev || be64(n) || canonical(every non-null column))."""
    chain.execute("SET TimeZone = 'America/New_York'")  # session settings must not matter
    rows = chain.execute(
        "SELECT s.position, s.prev_hash, s.hash, to_jsonb(a) FROM audit_seal s "
        "JOIN audit_log a ON a.id = s.audit_id ORDER BY s.position LIMIT 3").fetchall()
    prev = GENESIS
    for position, prev_hash, stored, doc in rows:
        assert bytes(prev_hash) == prev
        record = _as_sealed_text(chain, doc)
        assert record_hash(KEY, prev, position, record) == bytes(stored)
        prev = bytes(stored)
    assert _ok(chain).ok


def _as_sealed_text(conn: psycopg.Connection[Any], doc: dict[str, Any]) -> dict[str, Any]:
    """A row's columns in the text forms the sealer reads (jsonb and arrays as PostgreSQL text)."""
    row = conn.execute(
        "SELECT seq, id::text, action, entity_type, entity_id::text, entity_ids::text,"
        " subject_student_id::text, subject_ids::text, user_id, user_name, user_role,"
        " changes::text, previous_values::text, new_values::text, fields_disclosed::text,"
        " ip_address, user_agent, request_id, session_id, correlation_id, purpose,"
        " break_glass_reason, is_phi, compliance_type, severity, success, error_message,"
        " metadata::text, tags::text, transaction_id::text, legal_hold,"
        " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
        "FROM audit_log WHERE id = %s", (doc["id"],)).fetchone()
    assert row is not None
    names = [d.name for d in conn.execute("SELECT * FROM audit_log LIMIT 0").description or []]
    assert len(names) == len(row), "a column was added to audit_log: extend this helper"
    return dict(zip(names, row, strict=True))


def test_wrong_key_breaks_at_the_first_record(chain: psycopg.Connection[Any]) -> None:
    broken = verify(chain, OTHER_KEY).unwrap().broken
    assert broken is not None and broken.reason is BreakReason.EDITED and broken.position == 1


# --- tampering -------------------------------------------------------------------------------------


_MUTATIONS = {
    "bool": "NOT COALESCE({c}, false)",
    "int8": "{c} + 1000000",
    "uuid": "gen_random_uuid()",
    "_uuid": "array_append({c}, gen_random_uuid())",
    "varchar": "COALESCE({c}, '') || 'x'",
    "text": "COALESCE({c}, '') || 'x'",
    "_text": "array_append({c}, 'x')",
    "_varchar": "array_append({c}, 'x')",
    "jsonb": "COALESCE({c}, '{{}}'::jsonb) || '{{\"tampered\": 1}}'::jsonb",
    "xid8": "(({c})::text::bigint + 1)::text::xid8",
    "timestamptz": "{c} + interval '1 microsecond'",
}
_BY_NAME = {  # columns with CHECK constraints (not disabled by replica mode)
    "action": "CASE WHEN {c} = 'READ' THEN 'EXPORT' ELSE 'READ' END",
    "compliance_type": "CASE WHEN {c} = 'HIPAA' THEN 'FERPA' ELSE 'HIPAA' END",
    "severity": "CASE WHEN {c} = 'LOW' THEN 'HIGH' ELSE 'LOW' END",
    "ip_address": "CASE WHEN {c} = '10.9.9.9' THEN '10.9.9.8' ELSE '10.9.9.9' END",
}


def test_editing_any_column_of_a_sealed_record_is_named_edited(
    chain: psycopg.Connection[Any],
) -> None:
    """Every column of audit_log (read from the catalogue) is covered by the hash."""
    columns = chain.execute(
        "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = 'audit_log'::regclass AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum").fetchall()
    assert len(columns) >= 32
    audit_id, seq = _at(chain, 7)
    chain.execute("CREATE TEMP TABLE original AS SELECT * FROM audit_log WHERE id = %s",
                  (audit_id,))
    for name, typ in columns:
        template = _BY_NAME.get(name) or _MUTATIONS.get(typ)
        assert template is not None, f"no tamper rule for column {name} of type {typ}"
        column = f'"{name}"'
        with _tamper(chain):
            if name == "seq":  # an identity column: the attacker must alter it first
                chain.execute("ALTER TABLE audit_log ALTER COLUMN seq SET GENERATED BY DEFAULT")
            chain.execute(f"UPDATE audit_log SET {column} = {template.format(c=column)} "
                          "WHERE id = %s", (audit_id,))
        broken = _broken(chain)
        expected = {"id": BreakReason.DELETED, "seq": BreakReason.REORDERED}.get(
            name, BreakReason.EDITED)
        assert (broken.reason, broken.position) == (expected, 7), name
        with _tamper(chain):
            key_column = "seq" if name == "id" else "id"
            chain.execute(
                f"UPDATE audit_log a SET {column} = o.{column} FROM original o "
                f"WHERE a.{key_column} = o.{key_column}")
            if name == "seq":
                chain.execute("ALTER TABLE audit_log ALTER COLUMN seq SET GENERATED ALWAYS")
        assert _ok(chain).verified == 20, f"restoring {name} restores the chain"
    assert seq > 0


def test_deleting_a_record_from_the_middle_is_named_deleted(chain: psycopg.Connection[Any]) -> None:
    audit_id, seq = _at(chain, 10)
    with _tamper(chain):
        chain.execute("DELETE FROM audit_log WHERE id = %s", (audit_id,))
    broken = _broken(chain)
    assert (broken.reason, broken.position, broken.seq) == (BreakReason.DELETED, 10, seq)


def test_deleting_a_seal_from_the_middle_is_named_deleted(chain: psycopg.Connection[Any]) -> None:
    with _tamper(chain):
        chain.execute("DELETE FROM audit_seal WHERE position IN (10, 11)")
    broken = _broken(chain)
    assert (broken.reason, broken.position) == (BreakReason.DELETED, 10)


def test_deleting_record_and_seal_and_renumbering_is_named(chain: psycopg.Connection[Any]) -> None:
    audit_id, _ = _at(chain, 10)
    with _tamper(chain):
        chain.execute("DELETE FROM audit_seal WHERE position = 10")
        chain.execute("DELETE FROM audit_log WHERE id = %s", (audit_id,))
        chain.execute("UPDATE audit_seal SET position = position - 1 WHERE position > 10")
    broken = _broken(chain)
    assert (broken.reason, broken.position) == (BreakReason.REORDERED, 10)


def test_swapping_two_records_contents_names_the_first(chain: psycopg.Connection[Any]) -> None:
    a, _ = _at(chain, 5)
    b, _ = _at(chain, 9)
    content = ("action", "entity_id", "entity_ids", "subject_student_id", "subject_ids",
               "user_id", "new_values", "changes", "created_at", "ip_address")
    sets = ", ".join(f"{c} = o.{c}" for c in content)
    with _tamper(chain):
        chain.execute("CREATE TEMP TABLE pair AS SELECT * FROM audit_log WHERE id IN (%s, %s)",
                      (a, b))
        chain.execute(f"UPDATE audit_log x SET {sets} FROM pair o "
                      "WHERE o.id <> x.id AND x.id IN (%s, %s)", (a, b))
    broken = _broken(chain)
    assert (broken.reason, broken.position) == (BreakReason.EDITED, 5)


def test_swapping_two_seals_targets_names_the_first(chain: psycopg.Connection[Any]) -> None:
    a, _ = _at(chain, 5)
    b, _ = _at(chain, 9)
    with _tamper(chain):
        chain.execute("UPDATE audit_seal SET audit_id = NULL WHERE position IN (5, 9)")
        chain.execute("UPDATE audit_seal SET audit_id = %s WHERE position = 5", (b,))
        chain.execute("UPDATE audit_seal SET audit_id = %s WHERE position = 9", (a,))
    broken = _broken(chain)
    assert (broken.reason, broken.position) == (BreakReason.REORDERED, 5)


def test_swapping_two_seal_rows_order_names_the_first(chain: psycopg.Connection[Any]) -> None:
    with _tamper(chain):
        chain.execute("UPDATE audit_seal SET position = position + 1000 WHERE position IN (5, 9)")
        chain.execute("UPDATE audit_seal SET position = CASE position WHEN 1005 THEN 9 ELSE 5 END"
                      " WHERE position IN (1005, 1009)")
    broken = _broken(chain)
    assert (broken.reason, broken.position) == (BreakReason.REORDERED, 5)


def _gap_seq(conn: psycopg.Connection[Any]) -> int:
    """A sequence number consumed by a rolled-back insert (a hole a forger could fill)."""
    seqs: list[int] = []
    with conn.transaction(force_rollback=True):
        row = conn.execute("INSERT INTO audit_log (action, entity_type) VALUES ('READ', 'Gap') "
                           "RETURNING seq").fetchone()
        assert row is not None
        seqs.append(int(row[0]))
    return seqs[0]


_FORGE = (
    "INSERT INTO audit_log (seq, action, entity_type, user_id, created_at{extra_cols}) "
    "OVERRIDING SYSTEM VALUE VALUES (%(seq)s, 'READ', 'Student', 'u-forger',"
    " now() - interval '1 day'{extra_vals}) RETURNING seq"
)


def test_a_forged_record_with_an_old_transaction_is_named_forged(
    chain: psycopg.Connection[Any],
) -> None:
    gap = _gap_seq(chain)
    _insert(chain, 3)
    _sealed(chain)
    old_xid = chain.execute("SELECT transaction_id::text FROM audit_log ORDER BY seq LIMIT 1"
                            ).fetchone()
    assert old_xid is not None
    chain.execute(_FORGE.format(extra_cols=", transaction_id", extra_vals=", %(xid)s::xid8"),
                  {"seq": gap, "xid": old_xid[0]})
    broken = _broken(chain)
    assert (broken.reason, broken.position, broken.seq) == (BreakReason.FORGED, None, gap)


def test_a_forged_record_with_an_old_seq_is_named_forged(chain: psycopg.Connection[Any]) -> None:
    gap = _gap_seq(chain)
    for _ in range(2):  # two more runs: the gap is then older than the run before the last
        _insert(chain, 2)
        _sealed(chain)
    chain.execute(_FORGE.format(extra_cols="", extra_vals=""), {"seq": gap})
    broken = _broken(chain)
    assert (broken.reason, broken.seq) == (BreakReason.FORGED, gap)


def test_a_record_inserted_after_the_last_seal_is_pending_not_forged(
    chain: psycopg.Connection[Any],
) -> None:
    """The documented limit: whoever can INSERT can add records before they are sealed."""
    chain.execute(_FORGE.format(extra_cols="", extra_vals=""), {"seq": 10_000_000})
    assert _ok(chain).pending == 1
    assert _sealed(chain).sealed == 1
    assert _ok(chain).pending == 0


def test_a_late_commit_is_pending_then_sealed_never_broken(audit_url: str) -> None:
    url = audit_url
    with psycopg.connect(url, autocommit=True) as conn, psycopg.connect(url) as late:
        _insert(conn, 3)
        late_seq = late.execute("INSERT INTO audit_log (action, entity_type) VALUES "
                                "('UPDATE', 'Student') RETURNING seq").fetchone()
        assert late_seq is not None
        _insert(conn, 3)  # committed, with higher seqs than the open transaction's record
        assert _sealed(conn).sealed == 6
        assert _ok(conn).pending == 0
        late.commit()
        report = _ok(conn)  # committed after the run: pending, not forged
        assert report.pending == 1
        run = _sealed(conn)
        assert (run.sealed, run.late) == (1, 1)
        row = conn.execute("SELECT position FROM audit_seal WHERE audit_seq = %s", late_seq
                           ).fetchone()
        assert row == (7,), "chain order is seal position, not seq"
        assert _ok(conn).pending == 0


def test_deleted_newest_records_are_caught_only_with_an_exported_head(
    chain: psycopg.Connection[Any],
) -> None:
    _insert(chain, 3)
    assert _sealed(chain).sealed == 3  # positions 21..23, one seal run
    kept = head(chain, KEY).unwrap().to_string()  # kept outside the database
    assert kept.startswith("wxah1:23:")
    with _tamper(chain):  # remove the newest records, their seals and their seal run
        chain.execute("DELETE FROM audit_log WHERE id IN "
                      "(SELECT audit_id FROM audit_seal WHERE position > 20)")
        chain.execute("DELETE FROM audit_seal WHERE position > 20")
        chain.execute("DELETE FROM audit_seal_run WHERE last_position > 20")
    assert _ok(chain).last_position == 20  # NOT detected without the head: no chain can
    broken = _broken(chain, head=kept)
    assert (broken.reason, broken.position) == (BreakReason.TRUNCATED, 21)


def test_a_head_string_is_checked(chain: psycopg.Connection[Any]) -> None:
    kept = head(chain, KEY).unwrap()
    assert _ok(chain, head=kept.to_string()).last_position == 20
    _insert(chain, 2)
    _sealed(chain)
    assert _ok(chain, head=kept).last_position == 22  # the chain extends the head
    forged_head = ChainHead.make(OTHER_KEY, 20, kept.hash).to_string()
    assert isinstance(verify(chain, KEY, forged_head), Failure)
    assert isinstance(verify(chain, KEY, "wxah1:20:zz:zz"), Failure)
    with _tamper(chain):  # rewrite the seal at the head's position (no key: a bogus hash)
        chain.execute("UPDATE audit_seal SET hash = %s WHERE position = 20", (bytes(32),))
    broken = _broken(chain, head=kept)
    assert broken.position == 20


def test_partially_deleted_last_run_is_detected_without_head(
    chain: psycopg.Connection[Any],
) -> None:
    with _tamper(chain):
        chain.execute("DELETE FROM audit_log WHERE id IN "
                      "(SELECT audit_id FROM audit_seal WHERE position > 18)")
        chain.execute("DELETE FROM audit_seal WHERE position > 18")
    broken = _broken(chain)
    assert broken.reason is BreakReason.FORGED and "seal runs end" in broken.detail


def test_guards_reject_changes_to_seals(chain: psycopg.Connection[Any]) -> None:
    for statement in ("UPDATE audit_seal SET hash = prev_hash WHERE position = 1",
                      "DELETE FROM audit_seal WHERE position = 1",
                      "TRUNCATE audit_seal_run",
                      "UPDATE audit_seal_run SET seq_hwm = 0"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            chain.execute(statement)
    _ok(chain)


def test_the_application_role_can_seal_but_not_rewrite(audit_url: str, app_url_for: Any) -> None:
    with psycopg.connect(audit_url, autocommit=True) as owner:
        _insert(owner, 4)
    with psycopg.connect(app_url_for(audit_url), autocommit=True) as conn:
        assert _sealed(conn).sealed == 4
        assert _ok(conn).verified == 4
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE audit_seal SET audit_seq = 0")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM audit_log")


def test_seal_and_verify_refuse_an_open_unit_of_work(chain: psycopg.Connection[Any]) -> None:
    from wxdata.tx import unit_of_work

    with unit_of_work(chain, system_context("t")):
        assert isinstance(seal(chain, KEY), Failure)
        assert isinstance(verify(chain, KEY), Failure)


def test_a_second_sealer_skips_instead_of_waiting(chain: psycopg.Connection[Any]) -> None:
    dbname = chain.info.dbname
    with psycopg.connect(chain.info.dsn, autocommit=True) as other:
        assert other.info.dbname == dbname
        with chain.transaction():
            chain.execute("SELECT pg_advisory_xact_lock(%s)", (0x7778617564697421,))
            skipped = seal(other, KEY).unwrap()
        assert skipped.skipped and skipped.sealed == 0


# --- concurrency ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_concurrent_writers_and_a_repeating_sealer(audit_url: str) -> None:
    """8 writers x 500 audited writes while a sealer runs repeatedly: every record sealed once."""
    from wxdata.domains import health_records, students

    url = audit_url
    ctx = system_context("concurrency")
    with psycopg.connect(url, autocommit=True) as conn:
        tag = uuid.uuid4().hex[:8]
        district = conn.execute("INSERT INTO districts (name, code) VALUES ('D', %s) RETURNING id",
                                (f"D-{tag}",)).fetchone()
        assert district is not None
        school = conn.execute("INSERT INTO schools (name, code, district_id) VALUES ('S', %s, %s)"
                              " RETURNING id", (f"S-{tag}", district[0])).fetchone()
        assert school is not None
    writers, per_writer = 8, 500
    errors: list[Any] = []
    done = threading.Event()
    runs: list[SealReport] = []
    verifies: list[VerifyReport] = []

    def writer(i: int) -> None:
        with psycopg.connect(url, autocommit=True) as c:
            s = students.create(c, ctx, {
                "student_number": f"C-{tag}-{i}", "first_name": "Ada", "last_name": "L",
                "date_of_birth": date(2014, 1, 1), "grade": "5", "gender": "FEMALE",
                "enrollment_date": date(2020, 9, 1), "school_id": school[0],
                "district_id": district[0]})
            h = health_records.create(c, ctx, {
                "student_id": s.unwrap().id, "record_type": "CHECKUP", "title": "t0",
                "description": "routine", "record_date": date(2024, 1, 1)})
            for result in (s, h):
                if isinstance(result, Failure):
                    errors.append(result.failure())
            for n in range(per_writer - 2):
                if n % 2:
                    r: Any = students.update(c, ctx, s.unwrap().id, {"grade": str(n % 12)})
                else:
                    r = health_records.update(c, ctx, h.unwrap().id, {"title": f"t{n}"})
                if isinstance(r, Failure):
                    errors.append(r.failure())

    def sealer() -> None:
        with psycopg.connect(url, autocommit=True) as c:
            while not done.is_set():
                result = seal(c, KEY)
                if isinstance(result, Failure):
                    errors.append(result.failure())
                    return
                runs.append(result.unwrap())
                if len(runs) % 5 == 0:  # verifying while writers commit late: never a break
                    checked = verify(c, KEY)
                    if isinstance(checked, Failure) or not checked.unwrap().ok:
                        errors.append(checked)
                    else:
                        verifies.append(checked.unwrap())
                time.sleep(0.02)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    sealing = threading.Thread(target=sealer)
    started = time.perf_counter()
    sealing.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    elapsed = time.perf_counter() - started
    done.set()
    sealing.join(timeout=60)
    assert not any(t.is_alive() for t in (*threads, sealing)), "a thread hung (deadlock?)"
    assert not errors, errors[:3]
    with psycopg.connect(url, autocommit=True) as conn:
        final = _sealed(conn)
        total, sealed, distinct = conn.execute(
            "SELECT (SELECT count(*) FROM audit_log), count(*), count(DISTINCT audit_id) "
            "FROM audit_seal").fetchone() or (0, 0, 0)
        assert total >= writers * per_writer
        assert sealed == distinct == total, "every audit record is sealed exactly once"
        report = _ok(conn)
        assert report.verified == total and report.pending == 0
    busy_runs = [r for r in runs if r.sealed]
    assert len(busy_runs) > 1, "the sealer ran while the writers wrote"
    assert verifies and any(v.pending for v in verifies), "verified mid-flight, with pending"
    print(f"\n{writers}x{per_writer} audited writes in {elapsed:.2f} s "
          f"({writers * per_writer / elapsed:,.0f} writes/s) with the sealer running; "
          f"{len(busy_runs)} sealing runs, {sum(r.late for r in runs) + final.late} late records, "
          f"verify {report.seconds:.2f} s")


@pytest.mark.slow
def test_an_intact_chain_of_100k_records_verifies(audit_url: str) -> None:
    with psycopg.connect(audit_url, autocommit=True) as conn:
        _insert(conn, 100_000)
        started = time.perf_counter()
        sealed = _sealed(conn)
        seal_time = time.perf_counter() - started
        report = _ok(conn)
        assert sealed.sealed == report.verified == 100_000
        print(f"\nsealed 100000 records in {seal_time:.2f} s ({100_000 / seal_time:,.0f}/s); "
              f"verified in {report.seconds:.2f} s")


# --- the CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def chain_key_configured() -> Iterator[None]:
    previous = configure(attrs.evolve(wx_settings(), audit_hmac_key=KEY))
    try:
        yield
    finally:
        configure(previous)


def test_cli_verify_exit_codes_and_first_break(chain: psycopg.Connection[Any],
                                               chain_key_configured: None,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from wxdata.cli import main

    url = chain.info.dsn
    assert main(["audit", "--database-url", url, "verify"]) == 0
    assert "OK: 20 seals" in capsys.readouterr().out
    assert main(["audit", "--database-url", url, "head"]) == 0
    kept = capsys.readouterr().out.strip()
    audit_id, seq = _at(chain, 4)
    with _tamper(chain):
        chain.execute("UPDATE audit_log SET user_id = 'u-someone-else' WHERE id = %s", (audit_id,))
    assert main(["audit", "--database-url", url, "verify", "--head", kept]) == 1
    out = capsys.readouterr().out
    assert f"BROKEN at position 4 seq {seq}: edited" in out
    assert "edited" in out and "u-someone-else" not in out and str(audit_id) not in out
    assert main(["audit", "--database-url", url, "seal"]) == 0
    assert main(["audit", "--database-url", url, "verify", "--head", "garbage"]) == 2


def test_cli_without_a_key_is_a_configuration_error(chain: psycopg.Connection[Any],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from wxdata.cli import main

    previous = configure(attrs.evolve(wx_settings(), audit_hmac_key=None))
    try:
        assert main(["audit", "--database-url", chain.info.dsn, "verify"]) == 2
    finally:
        configure(previous)
    assert "AUDIT_HMAC_KEY" in capsys.readouterr().err


# --- canonical form (properties) --------------------------------------------------------------------


_values = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**62), max_value=2**62),
    st.text(max_size=20), st.lists(st.text(max_size=5), max_size=3), st.uuids(),
    st.datetimes(timezones=st.just(UTC)),
)
_records = st.dictionaries(st.text(min_size=1, max_size=12), _values, min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(_records, st.randoms(use_true_random=False))
def test_canonical_form_is_stable_under_key_order(record: dict[str, Any], rnd: Any) -> None:
    items = list(record.items())
    rnd.shuffle(items)
    assert canonical(dict(items)) == canonical(record) == canonical(dict(record))
    assert record_hash(KEY, GENESIS, 1, dict(items)) == record_hash(KEY, GENESIS, 1, record)


#: What the sealer reads for a column: text forms, integers, booleans, NULL.
_column_values = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30))
_rows = st.dictionaries(st.text(min_size=1, max_size=12), _column_values, min_size=1, max_size=32)


@settings(max_examples=200, deadline=None)
@given(_rows, st.data())
def test_any_single_field_change_changes_the_hash(record: dict[str, Any], data: Any) -> None:
    """Injective on what a column can hold: NULL, true/false, an integer, a text form."""
    name = data.draw(st.sampled_from(sorted(record)))
    new = data.draw(_column_values.filter(lambda v: not _same(v, record[name])))
    changed = {**record, name: new}
    assert canonical(changed) != canonical(record)
    assert record_hash(KEY, GENESIS, 1, changed) != record_hash(KEY, GENESIS, 1, record)


def _same(a: Any, b: Any) -> bool:
    """The same column value (True == 1 in Python, but not in the canonical form)."""
    return type(a) is type(b) and a == b


def test_position_and_predecessor_are_part_of_the_hash() -> None:
    record = {"seq": 1, "id": "x"}
    base = record_hash(KEY, GENESIS, 1, record)
    assert record_hash(KEY, GENESIS, 2, record) != base
    assert record_hash(KEY, b"\x01" * 32, 1, record) != base
    assert record_hash(OTHER_KEY, GENESIS, 1, record) != base


def test_head_strings_round_trip() -> None:
    made = ChainHead.make(KEY, 42, b"\x07" * 32)
    parsed = ChainHead.parse(made.to_string())
    assert parsed == Success(made) and made.authentic(KEY) and not made.authentic(OTHER_KEY)
    for bad in ("", "wxah1:x:00:00", "wxah0:1:" + "0" * 64 + ":" + "0" * 64, "wxah1:1:00:00"):
        assert isinstance(ChainHead.parse(bad), Failure)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=12),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.text()),
                       min_size=1, max_size=40))
def test_the_fast_row_encoder_equals_the_canonical_form(record: dict[str, Any]) -> None:
    from wxdata.audit.chain import _row_encoder

    names = list(record)
    assert _row_encoder(names)([record[n] for n in names]) == canonical(record)


# --- every position is checked, the newest included ---------------------------------------------------


def _edit(conn: psycopg.Connection[Any], position: int) -> tuple[uuid.UUID, Any]:
    """Change the content of the record sealed at ``position``; returns what restores it."""
    audit_id, _ = _at(conn, position)
    row = conn.execute("SELECT new_values FROM audit_log WHERE id = %s", (audit_id,)).fetchone()
    assert row is not None
    with _tamper(conn):
        conn.execute("UPDATE audit_log SET new_values = COALESCE(new_values, '{}'::jsonb) "
                     "|| '{\"tampered\": 1}'::jsonb WHERE id = %s", (audit_id,))
    return audit_id, row[0]


def _unedit(conn: psycopg.Connection[Any], edited: tuple[uuid.UUID, Any]) -> None:
    audit_id, original = edited
    with _tamper(conn):
        conn.execute("UPDATE audit_log SET new_values = %s WHERE id = %s",
                     (None if original is None else Jsonb(original), audit_id))


def test_editing_the_newest_sealed_record_is_named_edited(chain: psycopg.Connection[Any]) -> None:
    kept = head(chain, KEY).unwrap().to_string()
    assert kept.startswith("wxah1:20:")
    _edit(chain, 20)
    broken = _broken(chain)
    assert (broken.reason, broken.position) == (BreakReason.EDITED, 20)
    broken = _broken(chain, head=kept)  # the kept head still matches the seal: the MAC must not
    assert (broken.reason, broken.position) == (BreakReason.EDITED, 20)


def test_editing_the_newest_record_of_a_later_run_is_named_edited(
    chain: psycopg.Connection[Any],
) -> None:
    _insert(chain, 1)
    assert _sealed(chain).last_position == 21  # a run of a single record
    kept = head(chain, KEY).unwrap()
    _edit(chain, 21)
    for options in ({}, {"head": kept}):
        broken = _broken(chain, **options)
        assert (broken.reason, broken.position) == (BreakReason.EDITED, 21), options


def test_editing_the_first_sealed_record_is_named_edited(chain: psycopg.Connection[Any]) -> None:
    kept = head(chain, KEY).unwrap()
    _edit(chain, 1)
    for options in ({}, {"head": kept}):
        broken = _broken(chain, **options)
        assert (broken.reason, broken.position) == (BreakReason.EDITED, 1), options


def test_every_position_is_named_when_it_alone_is_edited(chain: psycopg.Connection[Any]) -> None:
    for position in range(1, 21):
        edited = _edit(chain, position)
        broken = _broken(chain)
        assert (broken.reason, broken.position) == (BreakReason.EDITED, position)
        _unedit(chain, edited)
    assert _ok(chain).verified == 20


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(positions=st.sets(st.integers(1, 20), min_size=1, max_size=4),
       with_head=st.booleans())
def test_the_first_edited_position_is_the_one_named(
    chain: psycopg.Connection[Any], positions: set[int], with_head: bool,
) -> None:
    """Whatever records are edited, verify names the earliest of them (newest and first too)."""
    kept = head(chain, KEY).unwrap() if with_head else None
    edits = [_edit(chain, p) for p in sorted(positions)]
    try:
        broken = _broken(chain, head=kept)
        assert (broken.reason, broken.position) == (BreakReason.EDITED, min(positions))
    finally:
        for edited in edits:
            _unedit(chain, edited)
    assert _ok(chain, head=kept).verified == 20


def test_a_statement_that_returned_no_row_is_an_internal_failure() -> None:
    from wxdata.errors import Internal, NoRowReturned, from_db_error, one_row

    assert one_row((1, 2)) == (1, 2)
    with pytest.raises(NoRowReturned) as raised:
        one_row(None)
    assert from_db_error(raised.value) == Internal(sqlstate="")
