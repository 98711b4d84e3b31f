"""A throw-away primary and streaming replicas on this machine (tests, benchmarks, demos).

``LocalCluster.create()`` runs ``initdb`` (binaries from ``pg_config --bindir``), starts a primary
with ``wal_level = replica`` on a free loopback port, clones each replica with
``pg_basebackup -R`` (a replication slot each, so a stopped replica can catch up), starts them and
waits until every one is streaming. PostgreSQL refuses to run as root: when the caller is root the
servers run as an unprivileged OS user (``wxdata_pg``, ``postgres`` or ``embedded_postgres``,
whichever exists, else ``wxdata_pg`` is created with ``useradd``) and the folder is handed to it.
Everything lives in one temporary folder, removed by :meth:`LocalCluster.destroy`. Trust
authentication on 127.0.0.1 only, Unix sockets off, ``fsync = off``: never for real data.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import attrs
import psycopg
from psycopg import sql

from tests.ports import free_port

SUPERUSER = "wxdata"
DATABASE = "wxdata"
_USERS = ("wxdata_pg", "postgres", "embedded_postgres")
_TOOLS = ("initdb", "pg_ctl", "pg_basebackup", "postgres")


class ClusterError(RuntimeError):
    """The local cluster could not be built or driven."""


def bindir() -> Path | None:
    """The PostgreSQL server binaries folder, or None when they are not installed."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            )
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    candidates.extend(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for folder in candidates:
        if all((folder / tool).is_file() for tool in _TOOLS):
            return folder
    return None


def missing() -> str | None:
    """Why a local cluster cannot be built here (None when it can)."""
    if bindir() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl, pg_basebackup) are not installed"
    if os.geteuid() == 0 and not (shutil.which("runuser") or shutil.which("setpriv")):
        return "running as root without runuser/setpriv to drop privileges for PostgreSQL"
    return None


def _os_user() -> str | None:
    """The unprivileged user to run PostgreSQL as (None when we are not root)."""
    if os.geteuid() != 0:
        return None
    for name in _USERS:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _USERS[0]],
        check=True, capture_output=True, timeout=30,
    )
    return _USERS[0]


@attrs.define(slots=True, eq=False)
class LocalCluster:
    """A primary and its streaming replicas in a temporary folder; see the module docstring."""

    root: Path
    bin: Path
    user: str | None
    primary_port: int
    replica_ports: list[int]
    running: set[str] = attrs.field(factory=set)
    conf: tuple[str, ...] = ()  # extra postgresql.conf lines of the primary (they win)

    # --- building -----------------------------------------------------------------------------

    @classmethod
    def create(
        cls, replicas: int = 1, *, timeout: float = 60.0, conf: Sequence[str] = ()
    ) -> LocalCluster:
        """Build, start and wait for a primary and ``replicas`` streaming replicas.

        ``conf``: extra ``postgresql.conf`` lines for the primary (e.g. ``max_connections = 20``).
        """
        reason = missing()
        if reason is not None:
            raise ClusterError(reason)
        folder = bindir()
        assert folder is not None
        user = _os_user()
        root = Path(tempfile.mkdtemp(prefix="wxdata-repl-"))
        cluster = cls(root=root, bin=folder, user=user, primary_port=free_port(),
                      replica_ports=[free_port() for _ in range(replicas)], conf=tuple(conf))
        try:
            if user is not None:
                entry = pwd.getpwnam(user)
                os.chown(root, entry.pw_uid, entry.pw_gid)
            cluster._init_primary()
            cluster._first_start("primary", timeout)
            for i in range(1, replicas + 1):
                cluster._clone(i)
                cluster._first_start(f"replica-{i}", timeout)
            cluster.wait_streaming(timeout=timeout)
            with psycopg.connect(cluster.admin_url("primary"), autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
            for name in cluster.replica_names:
                cluster.wait_replayed(name, timeout=timeout)
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    def _run(self, args: Sequence[str | Path], *, timeout: float = 120.0) -> str:
        command = [str(a) for a in args]
        if self.user is not None:
            if shutil.which("runuser"):
                command = ["runuser", "-u", self.user, "--", *command]
            else:
                command = ["setpriv", f"--reuid={self.user}", f"--regid={self.user}",
                           "--init-groups", "--", *command]
        try:
            done = subprocess.run(
                command, cwd=self.root, capture_output=True, text=True, timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"{Path(command[0]).name} timed out") from exc
        if done.returncode != 0:
            raise ClusterError(f"{' '.join(command[-6:])} failed: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def data(self, name: str) -> Path:
        """The data folder of ``primary`` or ``replica-N``."""
        return self.root / name

    def port(self, name: str) -> int:
        """The port of ``primary`` or ``replica-N``."""
        if name == "primary":
            return self.primary_port
        return self.replica_ports[int(name.rsplit("-", 1)[1]) - 1]

    def _conf(self, name: str, lines: Sequence[str]) -> None:
        path = self.data(name) / "postgresql.conf"
        with path.open("a", encoding="utf-8") as f:
            f.write("\n# wxdata LocalCluster\n" + "\n".join(lines) + "\n")

    def _init_primary(self) -> None:
        self._run([self.bin / "initdb", "-D", self.data("primary"), "-U", SUPERUSER,
                   "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
        self._conf("primary", [
            f"port = {self.primary_port}",
            "listen_addresses = '127.0.0.1'",
            "unix_socket_directories = ''",
            "wal_level = replica",
            "max_wal_senders = 10",
            "max_replication_slots = 10",
            "wal_keep_size = '256MB'",
            "hot_standby = on",
            "hot_standby_feedback = on",
            "wal_receiver_status_interval = '1s'",
            "fsync = off",
            "shared_buffers = '32MB'",
            "max_connections = 100",
            "log_min_messages = warning",
            "log_line_prefix = '%m [%p] '",
            *self.conf,
        ])

    def _clone(self, i: int) -> None:
        name = f"replica-{i}"
        self._run([self.bin / "pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port),
                   "-U", SUPERUSER, "-D", self.data(name), "-R", "-X", "stream",
                   "-C", "-S", f"wxdata_replica_{i}", "--checkpoint=fast", "--no-sync"])
        self._conf(name, [f"port = {self.port(name)}"])

    # --- driving ------------------------------------------------------------------------------

    def start(self, name: str, *, timeout: float = 60.0) -> None:
        """Start ``primary`` or ``replica-N`` and wait until it accepts connections."""
        self._run([self.bin / "pg_ctl", "-D", self.data(name), "-l", self.root / f"{name}.log",
                   "-w", "-t", str(int(timeout)), "start"], timeout=timeout + 10)
        self.running.add(name)

    def _first_start(self, name: str, timeout: float, attempts: int = 5) -> None:
        """Start a server for the first time; a port found free but taken before the server bound
        it (the ephemeral range is shared with every outgoing connection) means a fresh port,
        written after the first (the last ``port`` line of postgresql.conf wins)."""
        for attempt in range(attempts):
            try:
                self.start(name, timeout=timeout)
                return
            except ClusterError:
                log = self.root / f"{name}.log"
                text = log.read_text(errors="replace") if log.exists() else ""
                if "could not bind" not in text or attempt == attempts - 1:
                    raise
                log.unlink()
                port = free_port()
                if name == "primary":
                    self.primary_port = port
                else:
                    self.replica_ports[int(name.rsplit("-", 1)[1]) - 1] = port
                self._conf(name, [f"port = {port}"])

    def stop(self, name: str, mode: str = "fast") -> None:
        """Stop ``primary`` or ``replica-N`` (``fast``: disconnect clients, clean shutdown)."""
        self._run([self.bin / "pg_ctl", "-D", self.data(name), "-m", mode, "-w", "-t", "60",
                   "stop"], timeout=70)
        self.running.discard(name)

    def admin_url(self, name: str, database: str = "postgres") -> str:
        """Superuser URL of ``primary`` or ``replica-N``."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port(name)}/{database}"

    def url(self, name: str) -> str:
        """URL of the ``wxdata`` database on ``primary`` or ``replica-N``."""
        return self.admin_url(name, DATABASE)

    @property
    def replica_names(self) -> list[str]:
        """``replica-1`` ... ``replica-N``."""
        return [f"replica-{i}" for i in range(1, len(self.replica_ports) + 1)]

    def wait_streaming(self, *, timeout: float = 60.0) -> None:
        """Wait until every running replica streams from the primary."""
        wanted = len([n for n in self.replica_names if n in self.running])
        deadline = time.monotonic() + timeout
        while True:
            with psycopg.connect(self.admin_url("primary"), autocommit=True) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'"
                ).fetchone()
            if row is not None and row[0] >= wanted:
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"replicas not streaming after {timeout} s")
            time.sleep(0.05)

    def wait_replayed(self, name: str, *, timeout: float = 60.0) -> None:
        """Wait until ``replica-N`` has replayed everything the primary has written so far."""
        with psycopg.connect(self.admin_url("primary"), autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        assert row is not None
        target = row[0]
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.admin_url(name), autocommit=True) as conn:
            while True:
                done = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
                ).fetchone()
                if done is not None and done[0]:
                    return
                if time.monotonic() > deadline:
                    raise ClusterError(f"{name} did not replay up to {target} in {timeout} s")
                time.sleep(0.02)

    def pause_replay(self, name: str, *, timeout: float = 30.0) -> None:
        """``pg_wal_replay_pause()`` on ``replica-N`` (it keeps receiving WAL, replays nothing)."""
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.admin_url(name), autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()")
            while True:  # 'pause requested' until the startup process notices
                row = conn.execute("SELECT pg_get_wal_replay_pause_state()").fetchone()
                if row is not None and row[0] == "paused":
                    return
                if time.monotonic() > deadline:
                    raise ClusterError(f"{name} did not pause replay in {timeout} s")
                time.sleep(0.01)

    def resume_replay(self, name: str) -> None:
        """``pg_wal_replay_resume()`` on ``replica-N``."""
        with psycopg.connect(self.admin_url(name), autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_resume()")

    def destroy(self) -> None:
        """Stop every server and remove the folder."""
        for name in sorted(self.running, reverse=True):  # replicas first
            with contextlib.suppress(ClusterError):
                self.stop(name, "immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()
