"""Every ``wxdata`` command against a server, with good and bad arguments: exit code and first line
of output.

Runs against the real test server (a database of this module's own, cloned from the migrated
template). Most cases call ``main(argv)`` and read what it printed; Ctrl-C and closed pipes are
checked on a real ``python -m wxdata.cli`` process. What the command line does with no server to
reach (usage, unreachable servers, error lines) is checked in ``tests/unit/test_cli_errors.py``.
"""

from __future__ import annotations

import json
import signal
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

from tests.command_line import Run, chain_key, dead_url, env_for, first, runner
from wxdata import system_context
from wxdata.config import configure
from wxdata.config import settings as wx_settings
from wxdata.seed import SeedReport, district_code, seed

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
    with chain_key():
        yield


@pytest.fixture
def student(cli_db: str) -> str:
    with psycopg.connect(cli_db, autocommit=True) as conn:
        row = conn.execute("SELECT id FROM students ORDER BY student_number LIMIT 1").fetchone()
    assert row is not None
    return str(row[0])


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """``cli(*argv)`` -> (exit code, stdout, stderr) of ``main(argv)`` (argparse's exit too)."""
    return runner(capsys)


def districts(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM districts").fetchone()
    return int(row[0]) if row else -1


# --- the command line itself ---------------------------------------------------------------------


def test_options_are_accepted_after_the_subcommand(cli: Run, cli_db: str, keyed: None) -> None:
    code, out, _ = cli("audit", "head", "--database-url", cli_db, "-v")
    assert code == 0 and first(out).startswith("wxah1:")


# --- migrate ----------------------------------------------------------------------------------------


def test_migrate_status(cli: Run, cli_db: str) -> None:
    code, out, _ = cli("migrate", "--status", "--database-url", cli_db)
    assert code == 0 and first(out).startswith("applied  0001_")
    code, out, _ = cli("migrate", "--status", "--json", "--database-url", cli_db)
    rows = json.loads(out)
    assert code == 0 and rows[0]["state"] == "applied" and rows[0]["migration"].startswith("0001_")


def test_a_wrong_database_name_is_a_configuration_error(cli: Run, server_url: str) -> None:
    url = make_conninfo(server_url, dbname=f"missing_{uuid.uuid4().hex[:8]}")
    code, _, err = cli("migrate", "--status", "--database-url", url)
    assert code == 2
    assert first(err).startswith("error: cannot connect to PostgreSQL at ")
    assert "(no such database) — check the database name in --database-url" in first(err)


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


# --- compliance -----------------------------------------------------------------------------------------


def test_compliance(cli: Run, cli_db: str) -> None:
    code, out, _ = cli("compliance", "report", "--database-url", cli_db, "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    failed = any(r["status"] == "FAIL" for r in rows)
    assert code == (1 if failed else 0) and "citation" in rows[0]
    code, out, err = cli("compliance", "report", "--database-url", dead_url())
    assert (code, out) == (3, "") and first(err).startswith("error: ")


# --- real processes: Ctrl-C, closed pipes --------------------------------------------------------------


def _as_at_a_terminal() -> None:
    """Give the child the SIGINT disposition a terminal's foreground job has. A job started in
    the background by a non-interactive shell inherits SIGINT ignored, and so would the child."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_on_seal_every_exits_130_with_one_line(cli_db: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "wxdata.cli", "-v", "audit", "--database-url", cli_db, "seal",
         "--every", "0.2"], env=env_for(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=_as_at_a_terminal)
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
