"""``wxdata audit ...``: seal, ship, verify, head, export, report and retention.

Exit codes follow the ``wxdata`` convention: 0 success; 1 ``verify`` found a break (the first
broken record's position / seq and the reason are printed, never its content) or a report's
subject has no records; 2 bad usage, configuration (no ``AUDIT_HMAC_KEY``, a bad head) or an
unreadable/unwritable file; 3 the database (or a SIEM sink) could not be reached; 130 Ctrl-C.
The acting identity recorded for reports and exports is the system role, named by ``--actor``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NoReturn, TextIO, TypeVar
from uuid import UUID

import attrs
import psycopg
from returns.pipeline import is_successful
from returns.result import Failure, Result, Success

from wxdata._cli import (
    CliError,
    Exit,
    GuardedOutput,
    Progress,
    at_least,
    data_error,
    private_output,
    progress_wanted,
    read_text,
    seconds,
    table,
    ticking,
    to_json,
    to_json_line,
)
from wxdata.context import ExecutionContext, system_context
from wxdata.errors import DataError, InvalidContext

T = TypeVar("T")

Conn = psycopg.Connection[Any]


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be an ISO date or timestamp") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _uuid(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a UUID") from None


@contextmanager
def _conn(args: argparse.Namespace) -> Iterator[Conn]:
    from wxdata.db import connect

    with connect(args.database_url) as conn:
        yield conn


def _ctx(args: argparse.Namespace) -> ExecutionContext:
    ctx = system_context("audit-cli")
    if args.actor:
        try:
            ctx = attrs.evolve(ctx, user_id=args.actor, user_name=f"audit-cli:{args.actor}")
        except InvalidContext:
            raise CliError(Exit.USAGE, "--actor must be 1-128 characters of [A-Za-z0-9._:@/+=-]",
                           "name the person or job running the command") from None
    return ctx


def _key() -> bytes:
    from wxdata.audit.chain import chain_key

    def missing(error: DataError) -> NoReturn:
        raise CliError(Exit.USAGE, f"configuration: {error.message}",
                       "set AUDIT_HMAC_KEY (base64, 32 bytes) to the chain's key")

    return chain_key().lash(missing).unwrap()


def _unwrap(result: Result[T, DataError], fix: str | None = None) -> T:
    """The value of ``result``, or the CLI error its failure maps to."""

    def refused(error: DataError) -> NoReturn:
        raise data_error(error, fix)

    return result.lash(refused).unwrap()


def _progress(args: argparse.Namespace) -> Progress:
    return Progress(progress_wanted(bool(getattr(args, "verbose", False))))


def _say(line: str) -> None:
    """One line of data on stdout, flushed (long-running commands stream)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# --- chain ---------------------------------------------------------------------------------------


_SEAL_LAG_SQL = (
    "SELECT extract(epoch FROM now() - a.created_at) FROM audit_log a WHERE a.seq > "
    "COALESCE((SELECT s.audit_seq FROM audit_seal s ORDER BY s.position DESC LIMIT 1), 0) "
    "ORDER BY a.seq LIMIT 1"
)


def _record_seal_lag(conn: Conn) -> None:
    """The age of the oldest record waiting for this run, for the ``wxdata.audit.seal.lag`` metric."""
    from wxdata import telemetry

    if telemetry.instrumented():
        row = conn.execute(_SEAL_LAG_SQL).fetchone()
        telemetry.seal_lag(float(row[0]) if row and row[0] is not None else 0.0)


def _seal_line(report: Any) -> str:
    if report.skipped:
        return "skipped: another sealer holds the lock"
    if not report.sealed:
        return "nothing to seal"
    return (f"sealed {report.sealed} records (positions {report.first_position}.."
            f"{report.last_position}, {report.late} late) in {report.seconds:.3f} s "
            f"({report.rate:,.0f} records/s)")


def _cmd_seal(args: argparse.Namespace) -> int:
    from wxdata.audit.chain import seal

    key = _key()
    progress = _progress(args)
    runs = 0
    with _conn(args) as conn:
        while True:
            _record_seal_lag(conn)
            with ticking(progress, f"sealing (run {runs + 1})"):
                report = _unwrap(seal(conn, key, batch_size=args.batch))
            runs += 1
            line = _seal_line(report)
            if args.json:
                _say(to_json_line({"run": runs, **attrs.asdict(report)}))
            elif report.sealed or report.skipped or not args.every:
                _say(line)
            else:
                progress.update(f"run {runs}: {line}", force=True)
            if not args.every or (args.runs and runs >= args.runs):
                return Exit.OK
            time.sleep(args.every)


def _cmd_ship(args: argparse.Namespace) -> int:
    from wxdata.audit.ship import lag, ship, sink_from_url

    target = _unwrap(sink_from_url(args.sink, cafile=args.cafile),
                     "use syslog+tcp://host:port, syslog+tls://host:port, file:///path or stdout")
    progress = _progress(args)
    runs = 0
    with _conn(args) as conn:
        if args.lag:
            pending = _unwrap(lag(conn, target.name))
            if args.json:
                _say(to_json({"sink": target.name, **attrs.asdict(pending)}))
                return Exit.OK
            age = ("-" if pending.oldest_pending_seconds is None
                   else f"{pending.oldest_pending_seconds:.0f} s")
            _say(f"{target.name}: position {pending.position}, {pending.pending} pending, "
                 f"oldest pending {age}")
            return Exit.OK
        while True:
            result = ship(conn, target, batch_size=args.batch)
            runs += 1
            match result:
                case Failure(err) if not args.every:
                    raise CliError(Exit.UNAVAILABLE, f"ship: {err.message}",
                                   "the next run resumes from the sink's mark")
                case Failure(err):
                    print(f"ship: {err.message}; will resume from the mark", file=sys.stderr)
                case Success(report) if report.shipped or not args.every:
                    print(f"shipped {report.shipped} records to {report.sink} "
                          f"(mark at position {report.position})", file=sys.stderr)
                case Success(_):
                    progress.update(f"run {runs}: nothing to ship", force=True)
            if not args.every or (args.runs and runs >= args.runs):
                return Exit.OK
            time.sleep(args.every)


def _cmd_verify(args: argparse.Namespace) -> int:
    from wxdata.audit.chain import describe, verify

    if args.head is not None and args.head_file is not None:
        raise CliError(Exit.USAGE, "give --head or --head-file, not both")
    key = _key()
    head_text = args.head
    if args.head_file is not None:
        head_text = read_text(args.head_file, "--head-file")
    progress = _progress(args)
    with _conn(args) as conn, ticking(progress, "verifying the audit chain"):
        report = _unwrap(verify(conn, key, head_text),
                         "use the head string printed by `wxdata audit head` with this key")
    if args.json:
        body = attrs.asdict(report, recurse=True)
        body.update(ok=report.ok, last_hash=report.last_hash.hex())
        if report.broken is not None:
            body["broken"]["reason"] = report.broken.reason.value
        body["head_checked"] = head_text is not None
        _say(to_json(body))
    else:
        _say(describe(report) + f" in {report.seconds:.3f} s")
        if head_text is None and report.ok:
            print("note: without --head, deletion of the newest records cannot be detected",
                  file=sys.stderr)
    return Exit.OK if report.ok else Exit.CHECK_FAILED


def _cmd_head(args: argparse.Namespace) -> int:
    from wxdata.audit.chain import head

    key = _key()
    if args.out is None:
        with _conn(args) as conn:
            chain_head = _unwrap(head(conn, key))
    else:
        with private_output(args.out, "--out") as fh, _conn(args) as conn:
            chain_head = _unwrap(head(conn, key))
            fh.write(chain_head.to_string() + "\n")
    if args.json:
        _say(to_json({"head": chain_head.to_string(), "position": chain_head.position,
                      "hash": chain_head.hash.hex()}))
    else:
        _say(chain_head.to_string())
    return Exit.OK


# --- export and reports ----------------------------------------------------------------------------


def _export_to(args: argparse.Namespace, ctx: ExecutionContext, sink: GuardedOutput) -> Any:
    from wxdata.audit.export import export

    with _conn(args) as conn:
        result = export(conn, ctx, sink, args.format, args.since, args.until,  # type: ignore[arg-type]
                        json_array=args.json_array, student_id=args.student)
    if sink.broken and not is_successful(result):
        raise BrokenPipeError  # the reader went away (| head): its failure record is written
    return _unwrap(result)


def _cmd_export(args: argparse.Namespace) -> int:
    ctx = _ctx(args)
    progress = _progress(args)
    if args.out in (None, "-"):
        sink = GuardedOutput(sys.stdout, progress, "exporting")
        report = _export_to(args, ctx, sink)
    else:
        with private_output(args.out, "--out") as fh:
            sink = GuardedOutput(fh, progress, "exporting")
            report = _export_to(args, ctx, sink)
    progress.done()
    print(f"exported {report.rows} records as {report.format} in {report.seconds:.3f} s",
          file=sys.stderr)
    return Exit.OK


_DISCLOSURE_COLUMNS = ("created_at", "user_id", "user_role", "action", "entity_type",
                       "entity_id", "purpose", "fields", "success", "kind", "recipient",
                       "legal_basis")
_ENTRY_COLUMNS = ("seq", "created_at", "action", "entity_type", "entity_id", "user_id",
                  "user_role", "purpose", "fields", "success", "severity")


def _stats(args: argparse.Namespace, conn: Conn, ctx: ExecutionContext) -> int:
    from wxdata.audit import reports

    stats = _unwrap(reports.statistics(conn, ctx, args.since, args.until, top_users=args.top))
    if args.json:
        _say(to_json({
            "since": stats.since, "until": stats.until, "total": stats.total,
            "failures": stats.failures, "phi": stats.phi, "users": stats.users,
            **{name: dict(getattr(stats, name))
               for name in ("by_action", "by_entity", "by_severity", "by_user")},
        }))
        return Exit.OK
    window = (f"{stats.since.isoformat() if stats.since else 'beginning'} .. "
              f"{stats.until.isoformat() if stats.until else 'now'}")
    out = [f"window: {window}",
           f"total: {stats.total} records ({stats.failures} failed, {stats.phi} PHI) by "
           f"{stats.users} users"]
    for title, rows in (("action", stats.by_action), ("entity", stats.by_entity),
                        ("severity", stats.by_severity), ("user", stats.by_user)):
        out.append("")
        out.append(table([title, "records"], [list(r) for r in rows], boxed=False))
    _say("\n".join(out))
    return Exit.OK


def _cmd_report(args: argparse.Namespace) -> int:
    from wxdata.audit import reports

    ctx = _ctx(args)
    args.json = args.json or args.format == "json"
    with _conn(args) as conn:
        if args.report == "stats":
            return _stats(args, conn, ctx)
        columns = _DISCLOSURE_COLUMNS if args.report == "accounting" else _ENTRY_COLUMNS
        cursor: str | None = None
        shown = 0
        while True:
            page: reports.AuditPage[Any]
            if args.report == "accounting":
                page = _unwrap(reports.accounting_of_disclosures(
                    conn, ctx, args.student, args.since, args.until, cursor=cursor,
                    limit=reports.MAX_LIMIT))
            elif args.report == "entity":
                page = _unwrap(reports.entity_history(
                    conn, ctx, args.type, args.id, since=args.since, until=args.until,
                    cursor=cursor, limit=reports.MAX_LIMIT))
            else:
                page = _unwrap(reports.user_activity(
                    conn, ctx, args.user, args.since, args.until, cursor=cursor,
                    limit=reports.MAX_LIMIT))
            _emit_page(sys.stdout, args.json, columns, page.rows, header=shown == 0)
            shown += len(page.rows)
            cursor = page.next_cursor
            if cursor is None:
                break
    if shown == 0:
        subject = {"accounting": "this student", "entity": "this record",
                   "user": "this user"}[args.report]
        raise CliError(Exit.CHECK_FAILED, f"no audit records for {subject} in the window",
                       "check the id (and --since/--until)")
    return Exit.OK


def _emit_page(out: TextIO, as_json: bool, columns: tuple[str, ...], rows: Any,
               *, header: bool) -> None:
    if as_json:
        for row in rows:
            body = attrs.asdict(row, recurse=False)
            out.write(to_json_line(body) + "\n")
        out.flush()
        return
    if not rows:
        return
    cells = [[getattr(r, c) for c in columns] for r in rows]
    text = table(list(columns), cells, boxed=False)
    if not header:  # later pages continue the first page's table
        text = "\n".join(text.splitlines()[2:])
    out.write(text + "\n")
    out.flush()


# --- retention ----------------------------------------------------------------------------------


def _cmd_retention(args: argparse.Namespace) -> int:
    from wxdata.audit.retention import apply_retention, policy

    ctx = _ctx(args)
    chosen = _unwrap(policy(args.phi_years, args.other_years),
                     "PHI/education records are kept at least 6 years, others at least 1")
    key = _key() if args.apply else None
    with _conn(args) as conn:
        report = _unwrap(apply_retention(conn, ctx, chosen, dry_run=not args.apply, key=key))
    if args.json:
        _say(to_json(attrs.asdict(report)))
        return Exit.OK
    verb = "purged" if args.apply else "would purge"
    _say(f"{verb} {report.purged if args.apply else report.eligible} records "
         f"(PHI/education records before {report.phi_cutoff:%Y-%m-%d}, others before "
         f"{report.other_cutoff:%Y-%m-%d}); {report.held} held ({report.ferpa_kept} kept for "
         f"FERPA); {report.unsealed} not yet sealed"
         + (f"; purge checkpoint {report.purge_id}" if report.purge_id else ""))
    return Exit.OK


# --- partitions ---------------------------------------------------------------------------------


def _cmd_partitions(args: argparse.Namespace) -> int:
    from wxdata.audit.partitions import drop_expired_partitions, ensure_partitions, list_partitions
    from wxdata.audit.retention import policy

    ctx = _ctx(args)
    chosen = None
    if args.expired or args.apply:
        chosen = _unwrap(policy(args.phi_years, args.other_years),
                         "PHI/education records are kept at least 6 years, others at least 1")
    key = _key() if args.apply else None
    out: dict[str, Any] = {}
    with _conn(args) as conn:
        created = _unwrap(ensure_partitions(conn, ctx, args.ahead))
        out["created"] = list(created)
        report = None
        if chosen is not None:
            report = _unwrap(drop_expired_partitions(conn, ctx, chosen,
                                                     dry_run=not args.apply, key=key))
            out["expired"] = attrs.asdict(report)
        parts = _unwrap(list_partitions(conn)) if args.list else []
        out["partitions"] = [attrs.asdict(part) for part in parts]
    if args.json:
        _say(to_json(out))
        return Exit.OK
    _say(f"created {len(created)} partitions" + (f": {', '.join(created)}" if created else ""))
    if report is not None:
        verb = "dropped" if args.apply else "would drop"
        _say(f"{verb} {len(report.dropped)} months ({report.purged} records) ending before "
             f"{report.cutoff:%Y-%m-%d}; kept {len(report.kept)} months holding held or "
             f"unsealed records" + (f"; purge checkpoint {report.purge_id}"
                                    if report.purge_id else ""))
    for part in parts:
        span = ("default" if part.lower is None or part.upper is None
                else f"{part.lower:%Y-%m-%d} .. {part.upper:%Y-%m-%d}")
        _say(f"{part.name}  {span}")
    return Exit.OK


# --- registration ---------------------------------------------------------------------------------


def _connection_options(p: argparse.ArgumentParser, *, top: bool) -> None:
    """``--database-url`` and ``--actor``: before the subcommand or after it."""
    default: Any = None if top else argparse.SUPPRESS
    p.add_argument("--database-url", default=default, help="override DATABASE_URL")
    p.add_argument("--actor", default=default, help="who runs the command (recorded)")


def _json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")


def register_seal(sub: Any) -> None:
    """``wxdata audit seal``."""
    p = sub.add_parser("seal", help="chain the committed, unsealed audit records")
    p.add_argument("--batch", type=at_least(1), default=2000, help="records per batch")
    p.add_argument("--every", type=seconds, default=0.0, help="repeat every SECONDS")
    p.add_argument("--runs", type=at_least(0), default=0,
                   help="with --every: stop after N runs")
    p.add_argument("--json", action="store_true", help="one JSON line per run")
    p.set_defaults(handler=_cmd_seal)
    _connection_options(p, top=False)


def register_ship(sub: Any) -> None:
    """``wxdata audit ship``."""
    p = sub.add_parser("ship", help="send sealed records to a SIEM sink, from its mark, in order")
    p.add_argument("--sink", required=True,
                   help="syslog+tcp://host:port, syslog+tls://host:port, otlp+http://host:port, "
                        "otlp+https://host:port, file:///path or stdout")
    p.add_argument("--cafile", default=None, help="CA bundle for syslog+tls and otlp+https")
    p.add_argument("--batch", type=at_least(1), default=500, help="records per batch")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--once", action="store_true", help="ship what is pending, then exit "
                                                          "(the default)")
    when.add_argument("--every", type=seconds, default=0.0, help="keep shipping every SECONDS")
    p.add_argument("--runs", type=at_least(0), default=0,
                   help="with --every: stop after N runs")
    p.add_argument("--lag", action="store_true", help="print what the sink has not received")
    _json_option(p)
    p.set_defaults(handler=_cmd_ship)
    _connection_options(p, top=False)


def register_verify(sub: Any) -> None:
    """``wxdata audit verify``."""
    p = sub.add_parser("verify", help="check the chain; exit 1 naming the first broken record")
    p.add_argument("--head", default=None, help="a head string kept outside the database")
    p.add_argument("--head-file", default=None, help="read the head string from a file")
    _json_option(p)
    p.set_defaults(handler=_cmd_verify)
    _connection_options(p, top=False)


def register_head(sub: Any) -> None:
    """``wxdata audit head``."""
    p = sub.add_parser("head", help="print the chain head to keep outside the database")
    p.add_argument("--out", default=None, help="also write it to this file (mode 0600)")
    _json_option(p)
    p.set_defaults(handler=_cmd_head)
    _connection_options(p, top=False)


def register_export(sub: Any) -> None:
    """``wxdata audit export``."""
    p = sub.add_parser("export", help="stream audit records as CSV or JSON (audited)")
    p.add_argument("--format", choices=("csv", "json", "fhir"), default="csv",
                   help="fhir: FHIR R4 AuditEvent resources (IHE BALP), one per line (NDJSON)")
    p.add_argument("--json-array", action="store_true", help="one JSON array, not JSON Lines")
    p.add_argument("--since", type=_when, default=None)
    p.add_argument("--until", type=_when, default=None)
    p.add_argument("--student", type=_uuid, default=None, help="only this student's records")
    p.add_argument("--out", default=None,
                   help="output file, written atomically with mode 0600 (default: stdout)")
    p.set_defaults(handler=_cmd_export)
    _connection_options(p, top=False)


def register_report(sub: Any) -> None:
    """``wxdata audit report accounting|stats|entity|user``."""
    p = sub.add_parser("report", help="accounting of disclosures, statistics, histories")
    reports = p.add_subparsers(dest="report", required=True, metavar="REPORT")
    for name, text in (("accounting", "a student's accounting of disclosures"),
                       ("stats", "counts by action, entity, severity, user"),
                       ("entity", "history of one record"),
                       ("user", "activity of one user")):
        r = reports.add_parser(name, help=text)
        r.add_argument("--since", type=_when, default=None)
        r.add_argument("--until", type=_when, default=None)
        r.add_argument("--format", choices=("text", "json"), default="text",
                       help="json: one JSON document (stats) or one JSON line per record")
        _json_option(r)
        if name == "accounting":
            r.add_argument("--student", type=_uuid, required=True)
        elif name == "stats":
            r.add_argument("--top", type=at_least(1), default=20, help="busiest users listed")
        elif name == "entity":
            r.add_argument("--type", required=True, help="entity type, e.g. HealthRecord")
            r.add_argument("--id", type=_uuid, required=True)
        else:
            r.add_argument("--user", required=True)
        r.set_defaults(handler=_cmd_report)
        _connection_options(r, top=False)


def register_partitions(sub: Any) -> None:
    """``wxdata audit partitions``."""
    p = sub.add_parser("partitions", help="create audit_log's months ahead; list; drop expired")
    p.add_argument("--ahead", type=at_least(0), default=3,
                   help="months to create ahead (default 3)")
    p.add_argument("--list", action="store_true", help="print every partition and its bounds")
    p.add_argument("--expired", action="store_true",
                   help="count the months past retention that could be dropped")
    p.add_argument("--apply", action="store_true",
                   help="drop the months past retention holding nothing held (owner role)")
    p.add_argument("--phi-years", type=int, default=6, help="PHI/education records (min 6)")
    p.add_argument("--other-years", type=int, default=6, help="other records (min 1)")
    _json_option(p)
    p.set_defaults(handler=_cmd_partitions)
    _connection_options(p, top=False)


def register_retention(sub: Any) -> None:
    """``wxdata audit retention``."""
    p = sub.add_parser("retention", help="count (or --apply: purge) records past retention")
    p.add_argument("--apply", action="store_true", help="purge (needs the owner role)")
    p.add_argument("--phi-years", type=int, default=6, help="PHI/education records (min 6)")
    p.add_argument("--other-years", type=int, default=6, help="other records (min 1)")
    _json_option(p)
    p.set_defaults(handler=_cmd_retention)
    _connection_options(p, top=False)


#: One function per subcommand; new ones are added here.
SUBCOMMANDS = (register_seal, register_ship, register_verify, register_head, register_export,
               register_report, register_partitions, register_retention)


def register(subparsers: Any) -> None:
    """Add the ``audit`` command and its subcommands to the ``wxdata`` parser."""
    audit = subparsers.add_parser("audit", help="audit chain, reports, exports and retention")
    _connection_options(audit, top=True)
    sub = audit.add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    for add in SUBCOMMANDS:
        add(sub)
