"""``wxdata audit ...``: seal, verify, head, export, report and retention from the command line.

Exit codes: 0 success; 1 ``verify`` found a break (the first broken record's position / seq and
the reason are printed, never its content); 2 bad usage, configuration or a data error.
The chain commands need ``AUDIT_HMAC_KEY``. The acting identity recorded for reports and exports
is the system role, named by ``--actor``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO
from uuid import UUID

import attrs
import psycopg
from returns.result import Failure, Result

from wxdata.context import ExecutionContext, system_context
from wxdata.errors import DataError, InvalidContext

Conn = psycopg.Connection[Any]


def _fail(error: DataError) -> int:
    print(f"error: {error.message}", file=sys.stderr)
    return 2


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


def _ctx(args: argparse.Namespace) -> ExecutionContext | None:
    ctx = system_context("audit-cli")
    if args.actor:
        try:
            ctx = attrs.evolve(ctx, user_id=args.actor, user_name=f"audit-cli:{args.actor}")
        except InvalidContext:
            print("error: --actor must be 1-128 characters of [A-Za-z0-9._:@/+=-]",
                  file=sys.stderr)
            return None
    return ctx


def _key() -> bytes | None:
    from wxdata.audit.chain import chain_key

    key = chain_key()
    if isinstance(key, Failure):
        print(f"configuration error: {key.failure().message}", file=sys.stderr)
        return None
    return key.unwrap()


def _unwrap(result: Result[Any, DataError]) -> Any:
    if isinstance(result, Failure):
        raise _CliError(result.failure())
    return result.unwrap()


class _CliError(Exception):
    def __init__(self, error: DataError) -> None:
        super().__init__(error.code)
        self.error = error


def _handler(body: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return body(args)
        except _CliError as err:
            return _fail(err.error)
        except psycopg.OperationalError:
            print("error: the database could not be reached", file=sys.stderr)
            return 2

    return run


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


@_handler
def _cmd_seal(args: argparse.Namespace) -> int:
    from wxdata.audit.chain import seal

    key = _key()
    if key is None:
        return 2
    runs = 0
    with _conn(args) as conn:
        while True:
            _record_seal_lag(conn)
            report = _unwrap(seal(conn, key, batch_size=args.batch))
            if report.skipped:
                print("skipped: another sealer holds the lock")
            elif report.sealed:
                print(f"sealed {report.sealed} records (positions {report.first_position}.."
                      f"{report.last_position}, {report.late} late) in {report.seconds:.3f} s "
                      f"({report.rate:,.0f} records/s)")
            elif not args.every:
                print("nothing to seal")
            runs += 1
            if not args.every or (args.runs and runs >= args.runs):
                return 0
            time.sleep(args.every)


def _cmd_ship(args: argparse.Namespace) -> int:
    from wxdata.audit.ship import lag, ship, sink_from_url

    sink = sink_from_url(args.sink, cafile=args.cafile)
    if isinstance(sink, Failure):
        return _fail(sink.failure())
    target = sink.unwrap()
    runs = 0
    with _conn(args) as conn:
        if args.lag:
            pending = _unwrap(lag(conn, target.name))
            age = ("-" if pending.oldest_pending_seconds is None
                   else f"{pending.oldest_pending_seconds:.0f} s")
            print(f"{target.name}: position {pending.position}, {pending.pending} pending, "
                  f"oldest pending {age}")
            return 0
        while True:
            result = ship(conn, target, batch_size=args.batch)
            if isinstance(result, Failure):
                print(f"ship: {result.failure().message}; will resume from the mark",
                      file=sys.stderr)
                if not args.every:
                    return 3
            else:
                report = result.unwrap()
                if report.shipped or not args.every:
                    print(f"shipped {report.shipped} records to {report.sink} "
                          f"(mark at position {report.position})", file=sys.stderr)
            runs += 1
            if not args.every or (args.runs and runs >= args.runs):
                return 0
            time.sleep(args.every)


@_handler
def _cmd_verify(args: argparse.Namespace) -> int:
    from wxdata.audit.chain import describe, verify

    key = _key()
    if key is None:
        return 2
    head_text = args.head
    if args.head_file:
        with open(args.head_file, encoding="utf-8") as fh:
            head_text = fh.read().strip()
    with _conn(args) as conn:
        report = _unwrap(verify(conn, key, head_text))
    print(describe(report) + f" in {report.seconds:.3f} s")
    if head_text is None and report.ok:
        print("note: without --head, deletion of the newest records cannot be detected")
    return 0 if report.ok else 1


@_handler
def _cmd_head(args: argparse.Namespace) -> int:
    from wxdata.audit.chain import head

    key = _key()
    if key is None:
        return 2
    with _conn(args) as conn:
        text = _unwrap(head(conn, key)).to_string()
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
    print(text)
    return 0


# --- export and reports ----------------------------------------------------------------------------


@_handler
def _cmd_export(args: argparse.Namespace) -> int:
    from wxdata.audit.export import export

    ctx = _ctx(args)
    if ctx is None:
        return 2
    with _conn(args) as conn:
        if args.out in (None, "-"):
            report = _unwrap(export(conn, ctx, sys.stdout, args.format, args.since, args.until,
                                    json_array=args.json_array, student_id=args.student))
        else:
            with open(args.out, "w", encoding="utf-8", newline="") as fh:
                report = _unwrap(export(conn, ctx, fh, args.format, args.since, args.until,
                                        json_array=args.json_array, student_id=args.student))
    print(f"exported {report.rows} records as {report.format} in {report.seconds:.3f} s",
          file=sys.stderr)
    return 0


def _emit(out: TextIO, as_json: bool, row: Any) -> None:
    values = attrs.asdict(row, recurse=False)
    if as_json:
        out.write(json.dumps(values, default=str, ensure_ascii=False) + "\n")
        return
    out.write("\t".join("" if v is None else ",".join(v) if isinstance(v, tuple) else str(v)
                        for k, v in values.items() if k != "changes") + "\n")


@_handler
def _cmd_report(args: argparse.Namespace) -> int:
    from wxdata.audit import reports

    ctx = _ctx(args)
    if ctx is None:
        return 2
    as_json = args.format == "json"
    with _conn(args) as conn:
        if args.report == "stats":
            stats = _unwrap(reports.statistics(conn, ctx, args.since, args.until,
                                               top_users=args.top))
            body = attrs.asdict(stats)
            if as_json:
                print(json.dumps(body, default=str))
            else:
                for name, value in body.items():
                    print(f"{name}: {value}")
            return 0
        cursor: str | None = None
        while True:
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
            for row in page.rows:
                _emit(sys.stdout, as_json, row)
            cursor = page.next_cursor
            if cursor is None:
                return 0


# --- retention ----------------------------------------------------------------------------------


@_handler
def _cmd_retention(args: argparse.Namespace) -> int:
    from wxdata.audit.retention import apply_retention, policy

    ctx = _ctx(args)
    if ctx is None:
        return 2
    chosen = _unwrap(policy(args.phi_years, args.other_years))
    key = None
    if args.apply:
        key = _key()
        if key is None:
            return 2
    with _conn(args) as conn:
        report = _unwrap(apply_retention(conn, ctx, chosen, dry_run=not args.apply, key=key))
    verb = "purged" if args.apply else "would purge"
    print(f"{verb} {report.purged if args.apply else report.eligible} records "
          f"(PHI/education records before {report.phi_cutoff:%Y-%m-%d}, others before "
          f"{report.other_cutoff:%Y-%m-%d}); {report.held} held ({report.ferpa_kept} kept for FERPA); "
          f"{report.unsealed} not yet "
          f"sealed" + (f"; purge checkpoint {report.purge_id}" if report.purge_id else ""))
    return 0


# --- partitions ---------------------------------------------------------------------------------


@_handler
def _cmd_partitions(args: argparse.Namespace) -> int:
    from wxdata.audit.partitions import drop_expired_partitions, ensure_partitions, list_partitions
    from wxdata.audit.retention import policy

    ctx = _ctx(args)
    if ctx is None:
        return 2
    key = None
    if args.apply:
        key = _key()
        if key is None:
            return 2
    with _conn(args) as conn:
        created = _unwrap(ensure_partitions(conn, ctx, args.ahead))
        print(f"created {len(created)} partitions" + (f": {', '.join(created)}" if created else ""))
        if args.expired or args.apply:
            chosen = _unwrap(policy(args.phi_years, args.other_years))
            report = _unwrap(drop_expired_partitions(conn, ctx, chosen, dry_run=not args.apply,
                                                     key=key))
            verb = "dropped" if args.apply else "would drop"
            print(f"{verb} {len(report.dropped)} months ({report.purged} records) ending before "
                  f"{report.cutoff:%Y-%m-%d}; kept {len(report.kept)} months holding held or "
                  f"unsealed records" + (f"; purge checkpoint {report.purge_id}"
                                         if report.purge_id else ""))
        if args.list:
            for part in _unwrap(list_partitions(conn)):
                span = ("default" if part.lower is None or part.upper is None
                        else f"{part.lower:%Y-%m-%d} .. {part.upper:%Y-%m-%d}")
                print(f"{part.name}\t{span}")
    return 0


# --- registration ---------------------------------------------------------------------------------


def register(subparsers: Any) -> None:
    """Add the ``audit`` command and its subcommands to the ``wxdata`` parser."""
    audit = subparsers.add_parser("audit", help="audit chain, reports, exports and retention")
    audit.add_argument("--database-url", default=None, help="override DATABASE_URL")
    audit.add_argument("--actor", default=None, help="who runs the command (recorded)")
    sub = audit.add_subparsers(dest="audit_command", required=True)

    p = sub.add_parser("seal", help="chain the committed, unsealed audit records")
    p.add_argument("--batch", type=int, default=2000, help="records per batch")
    p.add_argument("--every", type=float, default=0.0, help="repeat every SECONDS")
    p.add_argument("--runs", type=int, default=0, help="with --every: stop after N runs")
    p.set_defaults(handler=_cmd_seal)

    p = sub.add_parser("ship", help="send sealed records to a SIEM sink, from its mark, in order")
    p.add_argument("--sink", required=True,
                   help="syslog+tcp://host:port, syslog+tls://host:port, file:///path or stdout")
    p.add_argument("--cafile", default=None, help="CA bundle for syslog+tls")
    p.add_argument("--batch", type=int, default=500, help="records per batch")
    p.add_argument("--every", type=float, default=0.0, help="keep shipping every SECONDS")
    p.add_argument("--runs", type=int, default=0, help="with --every: stop after N runs")
    p.add_argument("--lag", action="store_true", help="print what the sink has not received")
    p.set_defaults(handler=_cmd_ship)

    p = sub.add_parser("verify", help="check the chain; exit 1 naming the first broken record")
    p.add_argument("--head", default=None, help="a head string kept outside the database")
    p.add_argument("--head-file", default=None, help="read the head string from a file")
    p.set_defaults(handler=_cmd_verify)

    p = sub.add_parser("head", help="print the chain head to keep outside the database")
    p.add_argument("--out", default=None, help="also write it to this file")
    p.set_defaults(handler=_cmd_head)

    p = sub.add_parser("export", help="stream audit records as CSV or JSON (audited)")
    p.add_argument("--format", choices=("csv", "json", "fhir"), default="csv",
                   help="fhir: FHIR R4 AuditEvent resources (IHE BALP), one per line (NDJSON)")
    p.add_argument("--json-array", action="store_true", help="one JSON array, not JSON Lines")
    p.add_argument("--since", type=_when, default=None)
    p.add_argument("--until", type=_when, default=None)
    p.add_argument("--student", type=_uuid, default=None, help="only this student's records")
    p.add_argument("--out", default=None, help="output file (default: stdout)")
    p.set_defaults(handler=_cmd_export)

    p = sub.add_parser("report", help="accounting of disclosures, statistics, histories")
    reports = p.add_subparsers(dest="report", required=True)
    for name, text in (("accounting", "a student's accounting of disclosures"),
                       ("stats", "counts by action, entity, severity, user"),
                       ("entity", "history of one record"),
                       ("user", "activity of one user")):
        r = reports.add_parser(name, help=text)
        r.add_argument("--since", type=_when, default=None)
        r.add_argument("--until", type=_when, default=None)
        r.add_argument("--format", choices=("text", "json"), default="text")
        if name == "accounting":
            r.add_argument("--student", type=_uuid, required=True)
        elif name == "stats":
            r.add_argument("--top", type=int, default=20, help="busiest users listed")
        elif name == "entity":
            r.add_argument("--type", required=True, help="entity type, e.g. HealthRecord")
            r.add_argument("--id", type=_uuid, required=True)
        else:
            r.add_argument("--user", required=True)
        r.set_defaults(handler=_cmd_report)

    p = sub.add_parser("partitions", help="create audit_log's months ahead; list; drop expired")
    p.add_argument("--ahead", type=int, default=3, help="months to create ahead (default 3)")
    p.add_argument("--list", action="store_true", help="print every partition and its bounds")
    p.add_argument("--expired", action="store_true",
                   help="count the months past retention that could be dropped")
    p.add_argument("--apply", action="store_true",
                   help="drop the months past retention holding nothing held (owner role)")
    p.add_argument("--phi-years", type=int, default=6, help="PHI/education records (min 6)")
    p.add_argument("--other-years", type=int, default=6, help="other records (min 1)")
    p.set_defaults(handler=_cmd_partitions)

    p = sub.add_parser("retention", help="count (or --apply: purge) records past retention")
    p.add_argument("--apply", action="store_true", help="purge (needs the owner role)")
    p.add_argument("--phi-years", type=int, default=6, help="PHI/education records (min 6)")
    p.add_argument("--other-years", type=int, default=6, help="other records (min 1)")
    p.set_defaults(handler=_cmd_retention)
