"""Every ``wxdata`` command, with good and bad arguments: exit code and first line of output.

Runs against the real test server (a database of this module's own, cloned from the migrated
template). Most cases call ``main(argv)`` and read what it printed; Ctrl-C, a closed pipe and the
absence of a traceback are checked on a real ``python -m wxdata.cli`` process.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import string
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import make_conninfo
from returns.result import Failure

from wxdata import system_context
from wxdata._cli import EPILOG, CliError, Exit, at_least, postgres_error, redis_error
from wxdata.cli import main
from wxdata.config import configure
from wxdata.config import settings as wx_settings
from wxdata.seed import SeedReport, district_code, seed

REPO = Path(__file__).resolve().parent.parent
KEY = b"cli-test-chain-key-0123456789abc"
KEY_B64 = base64.b64encode(KEY).decode()
SEED = 4242


# --- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_db(server_url: str, pristine_template: str) -> Iterator[str]:
    """A database of this module's own (superuser URL), seeded once with a small district."""
    name = f"wxdata_cli_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{pristine_template}"')
    url = make_conninfo(server_url, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            seed(conn, system_context("cli-tests"), schools=1, students=4, seed=SEED,
                 per_student=1).unwrap()
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def keyed() -> Iterator[None]:
    """``AUDIT_HMAC_KEY`` configured for the chain commands."""
    previous = configure(attrs.evolve(wx_settings(), audit_hmac_key=KEY))
    try:
        yield
    finally:
        configure(previous)


@pytest.fixture
def student(cli_db: str) -> str:
    with psycopg.connect(cli_db, autocommit=True) as conn:
        row = conn.execute("SELECT id FROM students ORDER BY student_number LIMIT 1").fetchone()
    assert row is not None
    return str(row[0])


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """``cli(*argv)`` -> (exit code, stdout, stderr) of ``main(argv)`` (argparse's exit too)."""

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def first(text: str) -> str:
    """The first non-empty line."""
    return next((line for line in text.splitlines() if line.strip()), "")


def closed_port() -> int:
    """A local port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def dead_url() -> str:
    return f"postgresql://wxdata:s3cr3t-pw@127.0.0.1:{closed_port()}/wxdata?connect_timeout=2"


def refused(err: str, port_from: str) -> None:
    """One line naming the server, the cause and the fix; no password, no traceback."""
    port = port_from.split("@127.0.0.1:")[1].split("/")[0]
    lines = err.strip().splitlines()
    assert lines[-1] == (f"error: cannot connect to PostgreSQL at 127.0.0.1:{port} (connection "
                         "refused) — check --database-url or start the server")
    assert "Traceback" not in err and "s3cr3t-pw" not in err


def env_for(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CACHE_", "REDIS_"))}
    env.update(PYTHONPATH=str(REPO), AUDIT_HMAC_KEY=KEY_B64, **extra)
    return env


def wxdata(*argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wxdata.cli", *argv], env=env_for(**extra),
                          capture_output=True, text=True, timeout=120, check=False)


def districts(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM districts").fetchone()
    return int(row[0]) if row else -1


# --- the command line itself ---------------------------------------------------------------------


def test_help_documents_the_exit_codes(cli: Run) -> None:
    code, out, _ = cli("--help")
    assert code == 0 and first(out).startswith("usage: wxdata")
    assert EPILOG.splitlines()[0] in out
    for number in ("0 ", "1 ", "2 ", "3 ", "130 "):
        assert f"\n  {number}" in out
    code, out, _ = cli("audit", "verify", "--help")
    assert code == 0 and "3 unavailable" in out


def test_unknown_command_and_bad_option_are_usage_errors(cli: Run) -> None:
    code, _, err = cli("frobnicate")
    assert code == 2 and "invalid choice" in err
    code, _, err = cli("audit", "seal", "--batch", "0")
    assert code == 2 and "--batch: must be at least 1, not 0" in err
    code, _, err = cli("audit", "seal", "--every", "-1")
    assert code == 2 and "--every" in err


def test_options_are_accepted_after_the_subcommand(cli: Run, cli_db: str, keyed: None) -> None:
    code, out, _ = cli("audit", "head", "--database-url", cli_db, "-v")
    assert code == 0 and first(out).startswith("wxah1:")


def test_debug_shows_the_traceback_instead() -> None:
    with pytest.raises(psycopg.OperationalError):
        main(["--debug", "migrate", "--status", "--database-url", dead_url()])


# --- migrate ----------------------------------------------------------------------------------------


def test_migrate_status(cli: Run, cli_db: str) -> None:
    code, out, _ = cli("migrate", "--status", "--database-url", cli_db)
    assert code == 0 and first(out).startswith("applied  0001_")
    code, out, _ = cli("migrate", "--status", "--json", "--database-url", cli_db)
    rows = json.loads(out)
    assert code == 0 and rows[0]["state"] == "applied" and rows[0]["migration"].startswith("0001_")


def test_migrate_unreachable_is_one_line_exit_3(cli: Run) -> None:
    url = dead_url()
    code, out, err = cli("migrate", "--database-url", url)
    assert code == 3 and out == ""
    refused(err, url)


def test_a_wrong_database_name_is_a_configuration_error(cli: Run, server_url: str) -> None:
    url = make_conninfo(server_url, dbname=f"missing_{uuid.uuid4().hex[:8]}")
    code, _, err = cli("migrate", "--status", "--database-url", url)
    assert code == 2
    assert first(err).startswith("error: cannot connect to PostgreSQL at ")
    assert "(no such database) — check the database name in --database-url" in first(err)


def test_a_garbled_url_is_a_configuration_error(cli: Run) -> None:
    code, _, err = cli("audit", "--database-url", "not a url at all", "report", "stats")
    assert code == 2 and first(err) == (
        "error: --database-url is not a valid PostgreSQL URL — use "
        "postgresql://user:password@host:port/dbname")


# --- seed ---------------------------------------------------------------------------------------------


def test_seed_loads_then_reports_already_seeded(cli: Run, fresh_database: Callable[[], str]
                                                ) -> None:
    url = fresh_database()
    before = districts(url)
    argv = ("seed", "--database-url", url, "--schools", "2", "--students", "6",
            "--per-student", "1", "--seed", "31", "--quiet")
    code, out, err = cli(*argv)
    assert code == 0, err
    assert first(out).startswith(f"seeded district {district_code(31)}: ")
    assert "skipped" not in out and "warning" not in err
    assert districts(url) == before + 1
    code, out, _ = cli(*argv)
    assert code == 0 and first(out) == (
        f"already seeded: district {district_code(31)} (seed 31) exists; nothing written (use "
        "another --seed for more data)")
    code, out, _ = cli(*argv, "--json")
    assert code == 0 and json.loads(out)["already_seeded"] is True
    assert districts(url) == before + 1


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--schools", "0", "--schools: must be at least 1, not 0"),
    ("--students", "-5", "--students: must be at least 1, not -5"),
    ("--per-student", "-1", "--per-student: must be at least 0, not -1"),
    ("--seed", "10000", "--seed: must be between 0 and 9999, not 10000"),
    ("--students", "many", "--students: must be a whole number, not 'many'"),
])
def test_seed_refuses_bad_counts_before_writing(cli: Run, cli_db: str, option: str, value: str,
                                                message: str) -> None:
    before = districts(cli_db)
    code, out, err = cli("seed", "--database-url", cli_db, option, value)
    assert code == 2 and out == "" and message in err and "Traceback" not in err
    assert districts(cli_db) == before


def test_seed_function_refuses_bad_counts(cli_db: str) -> None:
    before = districts(cli_db)
    with psycopg.connect(cli_db, autocommit=True) as conn:
        result = seed(conn, system_context("cli-tests"), schools=0, students=-5, seed=77)
    assert isinstance(result, Failure)
    fields = {e.field for e in result.failure().errors}
    assert fields == {"schools", "students"}
    assert districts(cli_db) == before


def test_a_failing_seed_leaves_nothing_behind(cli: Run, fresh_database: Callable[[], str]
                                              ) -> None:
    """All or nothing: the district is loaded first, a school then conflicts: no district stays."""
    url = fresh_database()
    argv = ("seed", "--database-url", url, "--schools", "1", "--students", "2", "--seed", "32",
            "--quiet")
    assert cli(*argv)[0] == 0
    with psycopg.connect(url, autocommit=True) as conn:  # the district is renamed: its schools stay
        conn.execute("UPDATE districts SET code = 'RENAMED' WHERE code = %s", (district_code(32),))
    before = districts(url)
    code, out, err = cli(*argv)
    assert code == 1 and out == ""
    assert first(err).startswith("error: School conflict on code") and err.count("\n") == 1
    assert "nothing was written" in err
    assert districts(url) == before


def test_seed_unreachable(cli: Run) -> None:
    url = dead_url()
    code, _, err = cli("seed", "--database-url", url)
    assert code == 3
    refused(err, url)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(schools=st.integers(1, 4), students=st.integers(1, 9), number=st.integers(0, 9999))
def test_seeded_rows_all_pass_validation(cli_db: str, schools: int, students: int, number: int
                                         ) -> None:
    """Whatever the counts and seed, no generated row is skipped and every student is loaded
    (each example rolls back, so seeds may repeat)."""
    from wxdata.tx import RollbackScope, unit_of_work

    ctx = system_context("cli-tests")
    reports: list[SeedReport] = []
    with psycopg.connect(cli_db, autocommit=True) as conn:
        try:
            with unit_of_work(conn, ctx):
                result = seed(conn, ctx, schools=schools, students=students, seed=number,
                              per_student=1)
                reports.append(result.unwrap())
                raise RollbackScope
        finally:
            conn.rollback()
    report = reports[0]
    if report.already_seeded:  # the module's own district
        assert number == SEED
        return
    assert report.skipped == {}
    assert report.rows["Student"] == students and report.rows["School"] == schools


# --- demo ---------------------------------------------------------------------------------------------


def test_demo_unreachable(cli: Run) -> None:
    url = dead_url()
    code, out, err = cli("demo", "--database-url", url)
    assert code == 3 and out == ""
    refused(err, url)


# --- health -------------------------------------------------------------------------------------------


def test_health(cli: Run, cli_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_REPLICA_URLS", raising=False)
    code, out, _ = cli("health", "--database-url", cli_db)
    assert code == 0 and first(out).split() == [
        "server", "role", "state", "size", "in_use", "idle", "waiting", "requests", "errors",
        "reads", "lag"]
    code, out, _ = cli("health", "--database-url", cli_db, "--json")
    assert code == 0 and json.loads(out)["primary_up"] is True


def test_health_require_replicas_without_replicas(cli: Run, cli_db: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_REPLICA_URLS", raising=False)
    code, out, err = cli("health", "--database-url", cli_db, "--require-replicas")
    assert code == 2 and out == ""
    assert first(err) == ("error: --require-replicas but no replica is configured — set "
                          "DATABASE_REPLICA_URLS, or drop --require-replicas")


def test_health_unreachable(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_REPLICA_URLS", raising=False)
    url = dead_url()
    code, out, err = cli("health", "--database-url", url, "--timeout", "2")
    assert code == 3 and "down" in out
    assert len(err.strip().splitlines()) == 1
    assert first(err).startswith("error: primary unreachable: cannot connect to PostgreSQL at "
                                 "127.0.0.1:") and "(connection refused)" in err
    assert "s3cr3t-pw" not in err + out


# --- audit: the chain ---------------------------------------------------------------------------------


def test_seal_and_verify(cli: Run, cli_db: str, keyed: None) -> None:
    code, out, _ = cli("audit", "--database-url", cli_db, "seal")
    assert code == 0 and (first(out).startswith("sealed ") or first(out) == "nothing to seal")
    code, out, _ = cli("audit", "--database-url", cli_db, "seal", "--json")
    assert code == 0 and json.loads(first(out))["run"] == 1
    code, out, err = cli("audit", "--database-url", cli_db, "verify")
    assert code == 0 and first(out).startswith("OK: ") and first(err).startswith("note: ")
    code, out, _ = cli("audit", "--database-url", cli_db, "verify", "--json")
    body = json.loads(out)
    assert code == 0 and body["ok"] is True and body["broken"] is None


def test_chain_commands_without_a_key(cli: Run, cli_db: str) -> None:
    previous = configure(attrs.evolve(wx_settings(), audit_hmac_key=None))
    try:
        for sub in ("seal", "verify", "head"):
            code, out, err = cli("audit", "--database-url", cli_db, sub)
            assert code == 2 and out == ""
            assert first(err) == ("error: configuration: AUDIT_HMAC_KEY is not configured — set "
                                  "AUDIT_HMAC_KEY (base64, 32 bytes) to the chain's key")
    finally:
        configure(previous)


def test_verify_head_file(cli: Run, cli_db: str, keyed: None, tmp_path: Path) -> None:
    code, out, err = cli("audit", "--database-url", cli_db, "verify", "--head-file",
                         "/nonexistent/head")
    assert (code, out) == (2, "")
    assert first(err) == ("error: cannot read --head-file /nonexistent/head (no such file or "
                          "directory) — check the path")
    kept = tmp_path / "head"
    assert cli("audit", "--database-url", cli_db, "head", "--out", str(kept))[0] == 0
    assert kept.stat().st_mode & 0o777 == 0o600
    code, out, _ = cli("audit", "--database-url", cli_db, "verify", "--head-file", str(kept))
    assert code == 0 and first(out).startswith("OK: ")
    code, _, err = cli("audit", "--database-url", cli_db, "verify", "--head", "x", "--head-file",
                       str(kept))
    assert code == 2 and first(err) == "error: give --head or --head-file, not both"
    code, _, err = cli("audit", "--database-url", cli_db, "verify", "--head", "garbage")
    assert code == 2 and first(err).startswith("error: invalid query: head")


def test_verify_a_broken_chain_exits_1(cli: Run, fresh_database: Callable[[], str],
                                       keyed: None) -> None:
    url = fresh_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO audit_log (action, entity_type, user_id) "
                     "SELECT 'READ', 'Student', 'u-' || g FROM generate_series(1, 5) g")
    assert cli("audit", "--database-url", url, "seal")[0] == 0
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE audit_log SET user_id = 'u-forged' WHERE user_id = 'u-3'")
    code, out, _ = cli("audit", "--database-url", url, "verify")
    assert code == 1 and first(out).startswith("BROKEN at position ")
    assert "u-forged" not in out
    code, out, _ = cli("audit", "--database-url", url, "verify", "--json")
    assert code == 1 and json.loads(out)["broken"]["reason"] == "edited"


def test_head_unwritable_out(cli: Run, cli_db: str, keyed: None) -> None:
    code, out, err = cli("audit", "--database-url", cli_db, "head", "--out", "/nonexistent/h")
    assert (code, out) == (2, "")
    assert first(err) == ("error: cannot write --out /nonexistent/h (no such file or directory) "
                          "— choose a path in an existing, writable directory")
    code, out, _ = cli("audit", "--database-url", cli_db, "head", "--json")
    assert code == 0 and json.loads(out)["head"].startswith("wxah1:")


def test_chain_unreachable(cli: Run, keyed: None) -> None:
    url = dead_url()
    code, out, err = cli("audit", "--database-url", url, "verify")
    assert code == 3 and out == ""
    refused(err, url)


def test_ship(cli: Run, cli_db: str, keyed: None, tmp_path: Path) -> None:
    sink = f"file://{tmp_path / 'siem.ndjson'}"
    assert cli("audit", "--database-url", cli_db, "seal")[0] == 0
    code, _, err = cli("audit", "--database-url", cli_db, "ship", "--sink", sink)
    assert code == 0 and first(err).startswith("shipped ")
    code, out, _ = cli("audit", "--database-url", cli_db, "ship", "--sink", sink, "--lag")
    assert code == 0 and ", 0 pending" in first(out)
    code, out, _ = cli("audit", "--database-url", cli_db, "ship", "--sink", sink, "--lag",
                       "--json")
    assert code == 0 and json.loads(out)["pending"] == 0
    code, out, err = cli("audit", "--database-url", cli_db, "ship", "--sink", "ftp://nowhere")
    assert (code, out) == (2, "") and first(err).startswith("error: ")
    assert "file:///path" in first(err)


# --- audit: export and reports ------------------------------------------------------------------------


def test_export(cli: Run, cli_db: str, tmp_path: Path) -> None:
    code, out, err = cli("audit", "--database-url", cli_db, "export")
    assert code == 0 and first(out).startswith("seq,id,action,")
    assert first(err).startswith("exported ")
    target = tmp_path / "audit.csv"
    code, out, _ = cli("audit", "--database-url", cli_db, "export", "--out", str(target))
    assert code == 0 and out == ""
    assert target.read_text(encoding="utf-8").startswith("seq,id,action,")
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["audit.csv"]  # no temporary file left


def test_export_to_an_unwritable_path_writes_nothing(cli: Run, cli_db: str) -> None:
    def exports() -> int:
        with psycopg.connect(cli_db, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'EXPORT'").fetchone()
        return int(row[0]) if row else -1

    before = exports()
    code, out, err = cli("audit", "--database-url", cli_db, "export", "--out",
                         "/nonexistent/x.csv")
    assert (code, out) == (2, "")
    assert first(err) == ("error: cannot write --out /nonexistent/x.csv (no such file or "
                          "directory) — choose a path in an existing, writable directory")
    assert exports() == before  # refused before any record was read


def test_report_stats(cli: Run, cli_db: str) -> None:
    code, out, _ = cli("audit", "--database-url", cli_db, "report", "stats")
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith("window: ") and lines[1].startswith("total: ")
    assert "(" not in "".join(lines[2:])  # tables, not Python tuples
    assert any(line.split() == ["action", "records"] for line in lines)
    code, out, _ = cli("audit", "--database-url", cli_db, "report", "stats", "--json")
    body = json.loads(out)
    assert code == 0 and body["total"] >= 1 and isinstance(body["by_action"], dict)
    code, _, err = cli("audit", "--database-url", cli_db, "report", "stats", "--top", "0")
    assert code == 2 and "--top: must be at least 1" in err


def test_report_accounting(cli: Run, cli_db: str, student: str) -> None:
    code, out, _ = cli("audit", "--database-url", cli_db, "report", "accounting", "--student",
                       student)
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:4] == ["created_at", "user_id", "user_role", "action"]
    assert set(lines[1]) == {"-", " "} and len(lines) >= 3
    code, out, _ = cli("audit", "--database-url", cli_db, "report", "accounting", "--student",
                       student, "--json")
    assert code == 0 and json.loads(first(out))["action"] == "BULK_CREATE"


def test_report_unknown_subjects_exit_1_without_echo(cli: Run, cli_db: str) -> None:
    unknown = str(uuid.uuid4())
    for argv, subject in ((("accounting", "--student", unknown), "this student"),
                          (("entity", "--type", "Student", "--id", unknown), "this record"),
                          (("user", "--user", "u-nobody-at-all"), "this user")):
        code, out, err = cli("audit", "--database-url", cli_db, "report", *argv)
        assert (code, out) == (1, "")
        assert first(err) == (f"error: no audit records for {subject} in the window — check "
                              "the id (and --since/--until)")
        assert unknown not in err and "u-nobody" not in err
    code, _, err = cli("audit", "--database-url", cli_db, "report", "accounting", "--student",
                       "not-a-uuid")
    assert code == 2 and "--student: must be a UUID" in err


def test_report_entity_and_user(cli: Run, cli_db: str, student: str) -> None:
    code, out, _ = cli("audit", "--database-url", cli_db, "report", "user", "--user", "system")
    assert code == 0 and first(out).split()[:3] == ["seq", "created_at", "action"]
    with psycopg.connect(cli_db, autocommit=True) as conn:
        row = conn.execute("SELECT entity_type, entity_id FROM audit_log WHERE entity_id IS NOT "
                           "NULL ORDER BY seq LIMIT 1").fetchone()
    assert row is not None
    code, out, _ = cli("audit", "--database-url", cli_db, "report", "entity", "--type", row[0],
                       "--id", str(row[1]), "--format", "json")
    assert code == 0 and json.loads(first(out))["entity_type"] == row[0]


def test_retention(cli: Run, cli_db: str) -> None:
    code, out, _ = cli("audit", "--database-url", cli_db, "retention")
    assert code == 0 and first(out).startswith("would purge ")
    code, out, _ = cli("audit", "--database-url", cli_db, "retention", "--json")
    assert code == 0 and json.loads(out)["dry_run"] is True
    code, out, err = cli("audit", "--database-url", cli_db, "retention", "--phi-years", "5")
    assert (code, out) == (2, "") and first(err).startswith("error: ")
    code, _, err = cli("audit", "--database-url", cli_db, "--actor", "bad actor", "retention")
    assert code == 2 and first(err).startswith("error: --actor must be") and "bad actor" not in err


def test_partitions(cli: Run, cli_db: str) -> None:
    code, out, _ = cli("audit", "--database-url", cli_db, "partitions", "--ahead", "2", "--list")
    assert code == 0 and first(out).startswith("created ")
    assert any(line.startswith("audit_log_") for line in out.splitlines())
    code, out, _ = cli("audit", "--database-url", cli_db, "partitions", "--expired", "--json")
    report = json.loads(out)
    assert code == 0 and report["expired"]["dry_run"] is True and report["created"] == []
    code, out, err = cli("audit", "--database-url", cli_db, "partitions", "--ahead", "-1")
    assert (code, out) == (2, "") and first(err).startswith("usage: ")
    code, out, err = cli("audit", "--database-url", dead_url(), "partitions")
    assert (code, out) == (3, "") and first(err).startswith("error: ")


# --- compliance and cache -----------------------------------------------------------------------------


def test_compliance(cli: Run, cli_db: str) -> None:
    code, out, _ = cli("compliance", "report", "--database-url", cli_db, "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    failed = any(r["status"] == "FAIL" for r in rows)
    assert code == (1 if failed else 0) and "citation" in rows[0]
    code, out, err = cli("compliance", "report", "--database-url", dead_url())
    assert (code, out) == (3, "") and first(err).startswith("error: ")


def test_cache_commands_on_the_memory_backend(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_BACKEND", "memory")
    code, out, _ = cli("cache", "stats", "--json")
    body = json.loads(out)
    assert code == 0 and body["backend"] == "memory" and body["shared"] is False
    code, out, _ = cli("cache", "stats")
    assert code == 0 and first(out).startswith("CACHE_BACKEND=memory")
    code, out, err = cli("cache", "clear")
    assert (code, out) == (2, "")
    assert first(err) == ("error: refusing to clear without --yes — add --yes to delete every "
                          "entry under white-cross:")
    code, out, _ = cli("cache", "clear", "--yes", "--json")
    assert code == 0 and json.loads(out)["shared"] is False


def test_cache_redis_unreachable(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port()
    monkeypatch.setenv("CACHE_BACKEND", "redis")
    monkeypatch.setenv("REDIS_URL", f"redis://:r3dis-pw@127.0.0.1:{port}/0")
    monkeypatch.setenv("CACHE_KEY", base64.b64encode(b"k" * 32).decode())
    monkeypatch.setenv("CACHE_ENCRYPT_PHI", "true")
    for argv in (("cache", "stats"), ("cache", "clear", "--yes")):
        code, out, err = cli(*argv)
        assert (code, out) == (3, "")
        assert err.strip() == (f"error: cannot connect to Redis at 127.0.0.1:{port} (connection "
                               "refused) — set REDIS_URL or start the server")
    monkeypatch.delenv("REDIS_URL")
    code, _, err = cli("cache", "stats")
    assert code == 2 and first(err).startswith("error: configuration: REDIS_URL is required")


# --- real processes: no traceback, Ctrl-C, closed pipes ------------------------------------------------


def test_a_real_process_prints_one_line_and_no_traceback() -> None:
    url = dead_url()
    done = wxdata("audit", "--database-url", url, "export")
    assert done.returncode == 3 and done.stdout == ""
    refused(done.stderr, url)
    assert len(done.stderr.strip().splitlines()) == 1


def test_ctrl_c_on_seal_every_exits_130_with_one_line(cli_db: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "wxdata.cli", "-v", "audit", "--database-url", cli_db, "seal",
         "--every", "0.2"], env=env_for(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # progress of the first run (-v): the loop is running
        while line and "run 1" not in line:
            line = proc.stderr.readline()
        assert "run 1" in line
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert rest.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in rest and "KeyboardInterrupt" not in rest


def test_a_closed_pipe_ends_quietly(cli_db: str) -> None:
    """``wxdata audit seal --every ... --json | head -1``: exit 0, nothing on stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "wxdata.cli", "audit", "--database-url", cli_db, "seal",
         "--every", "0.05", "--json"], env=env_for(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        assert json.loads(proc.stdout.readline())["run"] == 1
        proc.stdout.close()  # the reader goes away, as `head` does
        proc.wait(timeout=60)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert [line for line in err.splitlines() if not line.startswith("WARNING")] == []


def test_export_into_a_closed_pipe_is_quiet_and_recorded(fresh_database: Callable[[], str]
                                                          ) -> None:
    """``wxdata audit export | head -c 10``: exit 0 quietly; the export's failure record says
    how far it got (a disclosure cut short is still recorded)."""
    url = fresh_database()
    with psycopg.connect(url, autocommit=True) as conn:  # several MB: more than a pipe holds
        conn.execute("INSERT INTO audit_log (action, entity_type, user_id) "
                     "SELECT 'READ', 'Student', 'u-' || g FROM generate_series(1, 20000) g")
    shell = (f"{sys.executable} -m wxdata.cli audit --database-url '{url}' export "
             "--format json | head -c 10 > /dev/null")
    done = subprocess.run(["bash", "-o", "pipefail", "-c", shell], env=env_for(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
    assert "exported" not in done.stderr
    assert done.returncode == 0, done.stderr
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'EXPORT' "
                           "AND NOT success AND error_message = 'OUTPUT_FAILED'").fetchone()
    assert row == (1,)


# --- properties: no credentials in error lines, argument bounds --------------------------------------


SECRET = st.text(alphabet=string.ascii_letters + string.digits, min_size=16, max_size=40)


@settings(max_examples=60, deadline=None)
@given(password=SECRET, user=st.sampled_from(["wxdata", "app", "owner"]),
       port=st.integers(1, 65535),
       message=st.sampled_from([
           'connection failed: connection to server at "127.0.0.1", port {port} failed: '
           "Connection refused",
           'connection failed: connection to server at "127.0.0.1", port {port} failed: FATAL:'
           '  password authentication failed for user "{user}"',
           "connection timeout expired", "something unexpected happened"]))
def test_postgres_errors_never_show_credentials(password: str, user: str, port: int,
                                                message: str) -> None:
    url = f"postgresql://{user}:{password}@db.example.org:{port}/wxdata"
    exc = psycopg.OperationalError(message.format(port=port, user=user))
    error = postgres_error(exc, url)
    assert password not in error.line()
    assert f"db.example.org:{port}" in error.line()
    assert error.code in (Exit.USAGE, Exit.UNAVAILABLE)
    assert "\n" not in error.line()


@settings(max_examples=40, deadline=None)
@given(password=SECRET, port=st.integers(1, 65535),
       scheme=st.sampled_from(["redis", "rediss", "redis+cluster", "redis+sentinel"]))
def test_redis_errors_never_show_credentials(password: str, port: int, scheme: str) -> None:
    path = "/mymaster" if scheme == "redis+sentinel" else ""
    url = f"{scheme}://user:{password}@cache.example.org:{port}{path}"
    import redis

    error = redis_error(redis.ConnectionError("Error 111 connecting. Connection refused."), url)
    assert password not in error.line() and f"cache.example.org:{port}" in error.line()
    assert error.code == Exit.UNAVAILABLE


@given(low=st.integers(-5, 5), value=st.integers(-1000, 1000))
def test_at_least_accepts_exactly_the_bound_and_above(low: int, value: int) -> None:
    parse = at_least(low)
    if value >= low:
        assert parse(str(value)) == value
    else:
        with pytest.raises(argparse.ArgumentTypeError):
            parse(str(value))


def test_cli_error_line_shape() -> None:
    assert CliError(Exit.USAGE, "x", "y").line() == "error: x — y"
    assert CliError(Exit.USAGE, "x").line() == "error: x"


def test_unhandled_exceptions_become_one_line_without_their_text() -> None:
    """An exception's text may quote a value: only its class is shown."""
    from wxdata.cli import explain

    args = argparse.Namespace(database_url=None)
    internal = explain(ValueError("student Imani Okafor, DOB 2015-04-02"), args)
    assert internal.code == Exit.CHECK_FAILED
    assert internal.line() == ("error: internal error (ValueError) — rerun with --debug for the "
                               "traceback")
    opened = explain(FileNotFoundError(2, "No such file or directory", "/srv/in.csv"), args)
    assert (opened.code, opened.line()) == (
        Exit.USAGE, "error: cannot open /srv/in.csv (no such file or directory) — check the path")
    network = explain(ConnectionRefusedError(111, "Connection refused"), args)
    assert network.code == Exit.UNAVAILABLE and network.message == "network error (Connection refused)"
