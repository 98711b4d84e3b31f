"""The ``wxdata`` command line with no server to reach: help and usage errors, one-line errors
(exit 3) naming the unreachable PostgreSQL or Redis without its password and without a traceback,
``--debug``, the memory cache backend, and the properties of the error lines and argument bounds.
Commands against a real server are checked in ``tests/integration/test_cli.py``."""

from __future__ import annotations

import argparse
import base64
import json
import string
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.command_line import Run, chain_key, closed_port, dead_url, env_for, first, runner
from wxdata._cli import EPILOG, CliError, Exit, at_least, postgres_error, redis_error
from wxdata.cli import main

# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def keyed() -> Iterator[None]:
    """``AUDIT_HMAC_KEY`` configured for the chain commands."""
    with chain_key():
        yield


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """``cli(*argv)`` -> (exit code, stdout, stderr) of ``main(argv)`` (argparse's exit too)."""
    return runner(capsys)


def refused(err: str, port_from: str) -> None:
    """One line naming the server, the cause and the fix; no password, no traceback."""
    port = port_from.split("@127.0.0.1:")[1].split("/")[0]
    lines = err.strip().splitlines()
    assert lines[-1] == (f"error: cannot connect to PostgreSQL at 127.0.0.1:{port} (connection "
                         "refused) — check --database-url or start the server")
    assert "Traceback" not in err and "s3cr3t-pw" not in err


def wxdata(*argv: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wxdata.cli", *argv], env=env_for(**extra),
                          capture_output=True, text=True, timeout=120, check=False)


# --- the command line itself ----------------------------------------------------------------------


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


def test_debug_shows_the_traceback_instead() -> None:
    with pytest.raises(psycopg.OperationalError):
        main(["--debug", "migrate", "--status", "--database-url", dead_url()])


def test_a_garbled_url_is_a_configuration_error(cli: Run) -> None:
    code, _, err = cli("audit", "--database-url", "not a url at all", "report", "stats")
    assert code == 2 and first(err) == (
        "error: --database-url is not a valid PostgreSQL URL — use "
        "postgresql://user:password@host:port/dbname")


# --- unreachable servers: one line, exit 3 --------------------------------------------------------


def test_migrate_unreachable_is_one_line_exit_3(cli: Run) -> None:
    url = dead_url()
    code, out, err = cli("migrate", "--database-url", url)
    assert code == 3 and out == ""
    refused(err, url)


def test_seed_unreachable(cli: Run) -> None:
    url = dead_url()
    code, _, err = cli("seed", "--database-url", url)
    assert code == 3
    refused(err, url)


def test_demo_unreachable(cli: Run) -> None:
    url = dead_url()
    code, out, err = cli("demo", "--database-url", url)
    assert code == 3 and out == ""
    refused(err, url)


def test_health_unreachable(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_REPLICA_URLS", raising=False)
    url = dead_url()
    code, out, err = cli("health", "--database-url", url, "--timeout", "2")
    assert code == 3 and "down" in out
    assert len(err.strip().splitlines()) == 1
    assert first(err).startswith("error: primary unreachable: cannot connect to PostgreSQL at "
                                 "127.0.0.1:") and "(connection refused)" in err
    assert "s3cr3t-pw" not in err + out


def test_chain_unreachable(cli: Run, keyed: None) -> None:
    url = dead_url()
    code, out, err = cli("audit", "--database-url", url, "verify")
    assert code == 3 and out == ""
    refused(err, url)


def test_unreachable_database_exits_3_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compliance", "report", "--database-url",
                 "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"])
    assert code == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the database could not be reached")


# --- cache ----------------------------------------------------------------------------------------


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


# --- a real process: no traceback -----------------------------------------------------------------


def test_a_real_process_prints_one_line_and_no_traceback() -> None:
    url = dead_url()
    done = wxdata("audit", "--database-url", url, "export")
    assert done.returncode == 3 and done.stdout == ""
    refused(done.stderr, url)
    assert len(done.stderr.strip().splitlines()) == 1


# --- properties: no credentials in error lines, argument bounds -----------------------------------


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
