"""``wxdata compliance report``: each technical safeguard, the wxdata feature serving it, a live check.

The checks run against the configured database (and settings) now, not against documentation:
"row security FORCEd on 46/46 student-linked tables", "chain verified to position N", "TLS in use:
no". A check is PASS, WARN (works, but weaker than a production deployment should be) or FAIL;
the command exits 1 when any check fails, 3 when the database cannot be reached, 0 otherwise.
``--json`` prints one object per check for machines.

The citations are the HIPAA Security Rule's technical safeguards (45 CFR 164.312), the activity
review of 164.308(a)(1)(ii)(D), the accounting of disclosures (164.528) and FERPA's record of
disclosures (34 CFR 99.32).
"""

from __future__ import annotations

import argparse
import enum
import json
import sys
from collections.abc import Callable
from typing import Any

import attrs
import psycopg

from wxdata.config import Settings, settings

Conn = psycopg.Connection[Any]


class Status(enum.StrEnum):
    """The outcome of one live check."""

    PASS = "PASS"  # noqa: S105 - a status, not a password
    WARN = "WARN"
    FAIL = "FAIL"


@attrs.frozen(slots=True)
class Check:
    """One row of the report."""

    citation: str
    safeguard: str
    feature: str
    status: Status
    detail: str


def _one(conn: Conn, sql: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(sql, params).fetchone()
    return None if row is None else row[0]


_SCOPED_TABLES = (
    "SELECT count(*) FILTER (WHERE c.relrowsecurity AND c.relforcerowsecurity), count(*) "
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public' "
    "WHERE c.relkind = 'r' AND c.relname NOT IN ('schools', 'users') "
    "AND c.relname NOT LIKE 'audit%%' AND EXISTS (SELECT 1 FROM pg_attribute a "
    "WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
    "AND a.attname IN ('student_id', 'school_id'))"
)


def _access_control(conn: Conn, _: Settings) -> Check:
    row = conn.execute(_SCOPED_TABLES).fetchone()
    forced, total = (row or (0, 0))
    ok = total > 0 and forced == total
    return Check("164.312(a)(1)", "Access control", "row-level school scope (FORCEd policies)",
                 Status.PASS if ok else Status.FAIL,
                 f"row security FORCEd on {forced}/{total} student-linked tables")


def _privileged(conn: Conn, _: Settings) -> Check:
    bypass = bool(_one(conn, "SELECT rolsuper OR rolbypassrls FROM pg_roles "
                             "WHERE rolname = current_user"))
    return Check("164.312(a)(1)", "Access control", "application role without bypass",
                 Status.FAIL if bypass else Status.PASS,
                 "connected role bypasses row security: connect as the application role"
                 if bypass else "connected role is subject to row security")


def _unique_users(conn: Conn, _: Settings) -> Check:
    missing = int(_one(conn, "SELECT count(*) FROM audit_log WHERE created_at > now() - "
                             "interval '30 days' AND coalesce(user_id, '') = ''") or 0)
    return Check("164.312(a)(2)(i)", "Unique user identification",
                 "every record names its user (contexts require one)",
                 Status.PASS if missing == 0 else Status.FAIL,
                 f"{missing} records of the last 30 days without a user id")


def _emergency(conn: Conn, _: Settings) -> Check:
    row = conn.execute(
        "SELECT count(*), count(*) FILTER (WHERE severity <> 'CRITICAL' OR "
        "length(btrim(break_glass_reason)) = 0) FROM audit_log WHERE created_at > now() - "
        "interval '30 days' AND break_glass_reason IS NOT NULL").fetchone()
    total, weak = row or (0, 0)
    return Check("164.312(a)(2)(ii)", "Emergency access procedure",
                 "break-glass contexts: stated reason, CRITICAL record",
                 Status.PASS if weak == 0 else Status.FAIL,
                 f"{total} break-glass accesses in 30 days, {weak} without reason or CRITICAL")


def _logoff(conn: Conn, config: Settings) -> Check:
    idle = str(_one(conn, "SHOW idle_in_transaction_session_timeout") or "0")
    ok = idle not in ("0", "0ms") or config.idle_in_transaction_timeout_ms > 0
    return Check("164.312(a)(2)(iii)", "Automatic logoff",
                 "idle transactions ended by the server",
                 Status.PASS if ok else Status.WARN,
                 f"idle_in_transaction_session_timeout={idle}, configured "
                 f"{config.idle_in_transaction_timeout_ms} ms")


def _encryption(_: Conn, config: Settings) -> Check:
    redis = config.cache_backend in ("redis", "tiered")
    problems = []
    if redis and not config.cache_encrypt_phi:
        problems.append("PHI cached in Redis without CACHE_ENCRYPT_PHI")
    if config.secret("cursor") is None:
        problems.append("no WXDATA_CURSOR_KEY / WXDATA_MASTER_KEY for page cursors")
    return Check("164.312(a)(2)(iv)", "Encryption and decryption",
                 "AES-GCM for PHI in Redis and for page cursors",
                 Status.WARN if problems else Status.PASS,
                 "; ".join(problems) or "PHI cache entries and cursors encrypted")


def _audit_controls(conn: Conn, config: Settings) -> Check:
    triggers = int(_one(conn, "SELECT count(*) FROM pg_trigger WHERE tgrelid = "
                              "'audit_log'::regclass AND tgname IN ('audit_log_no_update', "
                              "'audit_log_no_truncate')") or 0)
    on = config.audit_enabled and config.audit_phi_access
    status = Status.PASS if on and triggers == 2 else Status.FAIL
    return Check("164.312(b)", "Audit controls", "every PHI read and write recorded, append-only",
                 status, f"auditing {'on' if on else 'OFF'} (reads {config.audit_phi_access}); "
                         f"append-only triggers {triggers}/2")


def _integrity(conn: Conn, _: Settings) -> Check:
    granted = bool(_one(conn, "SELECT has_table_privilege('wxdata_app', 'audit_log', "
                              "'UPDATE, DELETE, TRUNCATE')"))
    return Check("164.312(c)(1)", "Integrity", "application role cannot change the audit trail",
                 Status.FAIL if granted else Status.PASS,
                 "wxdata_app may UPDATE/DELETE/TRUNCATE audit_log" if granted
                 else "wxdata_app has no UPDATE, DELETE or TRUNCATE on audit_log")


def _authenticate(conn: Conn, config: Settings) -> Check:
    from wxdata.audit.chain import verify

    key = config.audit_hmac_key
    if key is None:
        return Check("164.312(c)(2)", "Mechanism to authenticate ePHI", "keyed hash chain",
                     Status.WARN, "AUDIT_HMAC_KEY not set: the chain was not verified")
    report = verify(conn, key)
    return report.map(lambda r: Check(
        "164.312(c)(2)", "Mechanism to authenticate ePHI", "keyed hash chain",
        Status.PASS if r.ok else Status.FAIL,
        f"chain verified to position {r.last_position} ({r.pending} pending)" if r.ok
        else f"chain broken at position {r.broken.position if r.broken else '?'}",
    )).value_or(Check("164.312(c)(2)", "Mechanism to authenticate ePHI", "keyed hash chain",
                      Status.FAIL, "the chain could not be verified"))


def _transmission(conn: Conn, config: Settings) -> Check:
    tls = bool(_one(conn, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
    host = conn.info.host or ""
    local = host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")
    redis_tls = config.redis_url is None or config.redis_url.startswith("rediss")
    status = Status.PASS if tls and redis_tls else (Status.WARN if local and redis_tls
                                                    else Status.FAIL)
    return Check("164.312(e)(1)", "Transmission security", "TLS to PostgreSQL and Redis",
                 status, f"TLS in use: {'yes' if tls else 'no'}"
                         + ("" if tls else " (loopback connection)" if local else "")
                         + ("" if redis_tls else "; Redis without TLS (use rediss://)"))


def _review(conn: Conn, _: Settings) -> Check:
    age = _one(conn, "SELECT extract(epoch FROM now() - max(finished_at)) FROM audit_seal_run")
    unsealed = int(_one(conn, "SELECT count(*) FROM audit_log a WHERE a.created_at < now() - "
                              "interval '1 hour' AND NOT EXISTS (SELECT 1 FROM audit_seal s "
                              "WHERE s.audit_id = a.id)") or 0)
    ok = unsealed == 0
    detail = (f"last seal {'never' if age is None else f'{float(age):.0f} s ago'}; "
              f"{unsealed} records older than an hour not sealed")
    return Check("164.308(a)(1)(ii)(D)", "Information system activity review",
                 "reports, accounting, sealing (`wxdata audit seal --every`)",
                 Status.PASS if ok else Status.WARN, detail)


#: Whether a GIN index of ``audit_log`` covers ``subject_ids``, which every query by student asks
#: (found by what it indexes, not by its name).
_SUBJECT_INDEX = (
    "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "JOIN pg_am am ON am.oid = c.relam JOIN pg_attribute a ON a.attrelid = i.indrelid "
    "AND a.attnum = ANY (i.indkey) WHERE i.indrelid = 'audit_log'::regclass "
    "AND am.amname = 'gin' AND a.attname = 'subject_ids')")


def _accounting(conn: Conn, _: Settings) -> Check:
    index = bool(_one(conn, _SUBJECT_INDEX))
    return Check("164.528", "Accounting of disclosures",
                 "per-student accounting with recipient, legal basis, description, purpose",
                 Status.PASS if index else Status.FAIL,
                 "subject index present" if index else "subject index missing: migrate")


def _ferpa(conn: Conn, _: Settings) -> Check:
    kept = bool(_one(conn, "SELECT to_regprocedure('audit_record_ferpa_kept(audit_log)') "
                           "IS NOT NULL"))
    return Check("FERPA 99.32", "Record of disclosures kept with the education records",
                 "retention keeps disclosure records while the student exists",
                 Status.PASS if kept else Status.FAIL,
                 "retention rule installed" if kept else "retention rule missing: migrate")


CHECKS: tuple[Callable[[Conn, Settings], Check], ...] = (
    _access_control, _privileged, _unique_users, _emergency, _logoff, _encryption,
    _audit_controls, _integrity, _authenticate, _transmission, _review, _accounting, _ferpa,
)


def report(conn: Conn, config: Settings | None = None) -> tuple[Check, ...]:
    """Run every live check on ``conn`` (read-only queries; verify writes nothing)."""
    chosen = config or settings()
    return tuple(check(conn, chosen) for check in CHECKS)


def _print(checks: tuple[Check, ...], as_json: bool) -> None:
    if as_json:
        for c in checks:
            print(json.dumps(attrs.asdict(c), ensure_ascii=False))
        return
    width = max(len(c.citation) for c in checks)
    for c in checks:
        print(f"{c.status.value:4}  {c.citation:{width}}  {c.safeguard}: {c.detail}")
        print(f"      {'':{width}}  feature: {c.feature}")


def _cmd_report(args: argparse.Namespace) -> int:
    from wxdata.db import connect

    try:
        with connect(args.database_url) as conn:
            checks = report(conn)
    except psycopg.OperationalError as exc:
        print(f"error: the database could not be reached ({type(exc).__name__}); check "
              "DATABASE_URL", file=sys.stderr)
        return 3
    _print(checks, args.json)
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


def register(subparsers: Any) -> None:
    """Add ``wxdata compliance report``."""
    parser = subparsers.add_parser("compliance", help="technical safeguards and live checks")
    sub = parser.add_subparsers(dest="compliance_command", required=True)
    p = sub.add_parser("report", help="map each safeguard to its feature and check it live")
    p.add_argument("--database-url", default=None, help="override DATABASE_URL")
    p.add_argument("--json", action="store_true", help="one JSON object per check")
    p.set_defaults(handler=_cmd_report)


__all__ = ["CHECKS", "Check", "Status", "register", "report"]
