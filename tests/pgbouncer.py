"""A private PgBouncer for the tests: transaction pooling on a free loopback port, in a temp folder.

It forwards every database name to the test server (``* = host=... port=...``), authenticates
with ``trust`` (the test server trusts loopback too): ``postgres`` is listed in the auth file and
every other login role is looked up with ``auth_query``, so roles created during the run work.
PgBouncer refuses to run as root; as root it is started with ``-u`` and an unprivileged user.

``keeps_statements=True`` makes it keep protocol-level prepared statements
(``max_prepared_statements``, PgBouncer 1.21 or newer: ``bash .ci/pgbouncer`` builds one); False
(the default) passes statement names through unchanged, as every PgBouncer before 1.21 does.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.ports import free_port

_UNPRIVILEGED = ("postgres", "nobody")


def available() -> bool:
    """Whether a ``pgbouncer`` binary is installed."""
    return shutil.which("pgbouncer") is not None


#: The first release that keeps prepared statements in transaction mode.
KEEPS_STATEMENTS_SINCE = (1, 21)


def version() -> tuple[int, ...]:
    """The installed ``pgbouncer``'s version, e.g. ``(1, 24, 1)``."""
    out = subprocess.run(["pgbouncer", "--version"], capture_output=True, text=True,
                         check=True).stdout
    return tuple(int(part) for part in out.split()[1].split("."))


def _run_as() -> str | None:
    """The user to drop to when running as root (None otherwise)."""
    if os.geteuid() != 0:
        return None
    for name in _UNPRIVILEGED:
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("pgbouncer refuses root and no unprivileged user exists")


class PgBouncer:
    """One ``pgbouncer`` process pointing at ``server_url``'s host and port."""

    def __init__(self, server_url: str, *, pool_mode: str = "transaction",
                 pool_size: int = 20, keeps_statements: bool = False) -> None:
        found = version()
        if keeps_statements and found < KEEPS_STATEMENTS_SINCE:
            raise RuntimeError(
                f"pgbouncer {'.'.join(map(str, found))} cannot keep prepared statements: install "
                "1.21 or newer (bash .ci/pgbouncer builds one)")
        #: ``max_prepared_statements`` (only written where PgBouncer knows the setting).
        self.max_prepared = (200 if keeps_statements else 0) \
            if found >= KEEPS_STATEMENTS_SINCE else None
        server = conninfo_to_dict(server_url)
        self.server_host = str(server.get("host") or "127.0.0.1")
        # A Unix-socket folder (the embedded server's) is private to its owner: run as that owner.
        self.socket_owner = (pwd.getpwuid(os.stat(self.server_host).st_uid).pw_name
                             if self.server_host.startswith("/") else None)
        self.server_port = int(server.get("port") or 5432)
        self.admin_user = str(server.get("user") or "postgres")
        self.pool_mode = pool_mode
        self.pool_size = pool_size
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="wxdata-pgbouncer-"))
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, direct_url: str) -> str:
        """``direct_url`` (same user, database, password) routed through this PgBouncer."""
        return make_conninfo(direct_url, host="127.0.0.1", port=str(self.port))

    def _write_config(self) -> Path:
        users = self.directory / "users.txt"
        users.write_text(f'"{self.admin_user}" ""\n')
        ini = self.directory / "pgbouncer.ini"
        ini.write_text(
            "[databases]\n"
            f"* = host={self.server_host} port={self.server_port}\n\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            "unix_socket_dir =\n"
            "auth_type = trust\n"
            f"auth_file = {users}\n"
            f"auth_user = {self.admin_user}\n"
            f"pool_mode = {self.pool_mode}\n"
            "max_client_conn = 1000\n"
            f"default_pool_size = {self.pool_size}\n"
            "server_check_delay = 0\n"
            f"logfile = {self.directory / 'pgbouncer.log'}\n"
            f"pidfile = {self.directory / 'pgbouncer.pid'}\n"
            + (f"max_prepared_statements = {self.max_prepared}\n"
               if self.max_prepared is not None else "")
        )
        return ini

    def start(self, attempts: int = 5) -> PgBouncer:
        """Start it and wait until it answers a query.

        A port found free can be taken by another socket before PgBouncer binds it; a process that
        exits before answering is started again on a fresh port.
        """
        for _ in range(attempts):
            if self._launch():
                return self
            self.port = free_port()
        self.stop()
        raise RuntimeError("pgbouncer did not start")

    def _launch(self) -> bool:
        """Start the process; True once it answers, False when it exits first."""
        ini = self._write_config()
        command = ["pgbouncer"]
        user = self.socket_owner if self.socket_owner not in (None, "root") else _run_as()
        if user is not None:
            entry = pwd.getpwnam(user)
            for path in (self.directory, *self.directory.iterdir()):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            command += ["-u", user]
        self.process = subprocess.Popen(
            [*command, str(ini)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        probe = make_conninfo(f"host=127.0.0.1 port={self.port} user={self.admin_user} "
                              "dbname=postgres connect_timeout=2")
        deadline = time.monotonic() + 15
        while True:
            try:
                with psycopg.connect(probe, autocommit=True, prepare_threshold=None) as c:
                    c.execute("SELECT 1")
                return True
            except psycopg.OperationalError:
                if self.process.poll() is not None:
                    self.process = None
                    return False
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("pgbouncer did not answer within 15 s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL) and remove its folder."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        shutil.rmtree(self.directory, ignore_errors=True)
