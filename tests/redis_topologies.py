"""Private Redis topologies for tests: a 3-primary Cluster and a Sentinel-watched primary/replica.

Every process listens on a free loopback port, keeps its files in a temp folder and is killed at
the end (SIGKILL, like a crash); nothing touches a shared Redis.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.ports import free_port

_BASE = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no",
         "--repl-diskless-sync-delay", "0"]


def require_redis(*tools: str) -> None:
    """Skip the tests that need a private Redis when its binaries are not installed.

    Called where a server would be started, so only the tests (and fixtures) that start one are
    skipped; the reason is printed in pytest's summary (``-rs``).
    """
    missing = [tool for tool in tools or ("redis-server",) if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (apt-get install redis-server): "
                    "this test needs a real Redis started for it")


def wait_for(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``check`` until true (set-up only; raises if ``what`` never happens)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen")
        time.sleep(0.05)


def settle(form: Callable[[], None], renew: Callable[[int], None], views: Callable[[], str],
           attempts: int) -> None:
    """Run ``form`` until it settles: after a failed try, ``renew(attempt)`` kills what it started
    and places a new set on fresh ports; after ``attempts`` the error carries ``views()`` of the
    last one (set-up only: on a loaded host a set can miss a timeout while it forms)."""
    for attempt in range(attempts):
        if attempt:
            renew(attempt)
        try:
            form()
            return
        except RuntimeError as error:
            if attempt == attempts - 1:
                raise RuntimeError(f"{error}; last views:\n{views()}") from error
    raise AssertionError("unreachable")


def _info(port: int, section: str) -> dict[str, Any]:
    client = redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        return dict(client.info(section))
    finally:
        client.close()


class Node:
    """One ``redis-server`` process (a cluster node, a primary, a replica or a sentinel)."""

    def __init__(self, directory: Path, args: list[str], port: int | None = None) -> None:
        self.root = directory
        self.fixed_port = port is not None
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self._place(port or free_port(cluster_bus=self._clustered))

    @property
    def _clustered(self) -> bool:
        return "--cluster-enabled" in self.args

    def _place(self, port: int) -> None:
        self.port = port
        self.directory = self.root / str(port)
        self.directory.mkdir(parents=True, exist_ok=True)

    def start(self, attempts: int = 5) -> Node:
        """Start and wait until it answers PING (skips the test when redis-server is missing).

        A port found free can be taken by another socket before redis-server binds it (the
        ephemeral range is shared with every outgoing connection); a node whose process exits
        before answering is started again on a fresh port, unless its port was given.
        """
        require_redis("redis-server")
        for attempt in range(attempts):
            self.process = subprocess.Popen(
                ["redis-server", *self.args, "--port", str(self.port),
                 "--dir", str(self.directory), "--logfile", str(self.directory / "log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.directory)
            if self._answers(self.process):
                return self
            self.process.wait(timeout=10)
            tail = self.log_tail(400)
            if self.fixed_port or attempt == attempts - 1:
                raise RuntimeError(f"redis on port {self.port} exited before answering: {tail}")
            self._place(free_port(cluster_bus=self._clustered))
        raise AssertionError("unreachable")

    def _answers(self, process: subprocess.Popen[bytes]) -> bool:
        """Wait until the node answers PING (True) or its process exits (False)."""
        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)

        def up() -> bool:
            if process.poll() is not None:
                return True
            return bool(client.ping())

        try:
            wait_for(up, f"redis on port {self.port} answering")
        finally:
            client.close()
        return process.poll() is None

    def log_tail(self, size: int = 1200) -> str:
        """The end of this node's log (for the error of a set-up that did not settle)."""
        log = self.directory / "log"
        return log.read_text(errors="replace")[-size:] if log.exists() else "(no log)"

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


class Cluster:
    """A Redis Cluster of ``primaries`` primaries, each with ``replicas`` replicas."""

    def __init__(self, directory: Path, primaries: int = 3, replicas: int = 0) -> None:
        self.root = directory
        self.size = primaries * (1 + replicas)
        self.replicas = replicas
        self.nodes = self._new_nodes(0)

    def _new_nodes(self, attempt: int) -> list[Node]:
        args = [*_BASE, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "1000", "--cluster-replica-validity-factor", "0"]
        return [Node(self.root / f"try-{attempt}", args) for _ in range(self.size)]

    @property
    def url(self) -> str:
        """``redis+cluster://`` naming two of the nodes (discovery finds the rest)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:2])

    def start(self, attempts: int = 3) -> Cluster:
        """Start every node, create the cluster, wait until every node reports it healthy.

        On a loaded host, a node's one-second failure timeout can fire while the cluster is still
        forming, and the topology it settles into may not be the one asked for. Such a cluster is
        killed and a new one formed on fresh ports; after ``attempts`` the error carries every
        node's ``CLUSTER NODES`` view of the last one.
        """
        require_redis("redis-server", "redis-cli")
        settle(self._form, self._renew, self._views, attempts)
        return self

    def _renew(self, attempt: int) -> None:
        self.stop()
        self.nodes = self._new_nodes(attempt)

    def _form(self) -> None:
        for node in self.nodes:
            node.start()
        subprocess.run(
            ["redis-cli", "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in self.nodes],
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        for node in self.nodes:
            wait_for(lambda n=node: _info(n.port, "cluster") is not None and self._ok(n.port),
                     "cluster state ok")
        if self.replicas:
            wait_for(self._replicas_synced, "replicas in sync")
            for node in self.nodes:  # every node's slot map (what clients read) lists them
                wait_for(lambda n=node: self._lists_replicas(n.port), "replicas known everywhere")

    def _views(self) -> str:
        views = []
        for node in self.nodes:
            client = redis.Redis(port=node.port, socket_timeout=1, socket_connect_timeout=1)
            try:
                nodes = client.execute_command("CLUSTER", "NODES")
                view = nodes.decode() if isinstance(nodes, bytes) else str(nodes)
            except (redis.RedisError, OSError) as error:
                view = f"unreachable: {error}"
            finally:
                client.close()
            views.append(f"-- {node.port}\n{view}")
        return "\n".join(views)

    def _lists_replicas(self, port: int) -> bool:
        client = redis.Redis(port=port, socket_timeout=1)
        try:
            ranges = client.execute_command("CLUSTER", "SLOTS")
        finally:
            client.close()
        return bool(ranges) and all(len(r) - 2 >= 1 + self.replicas for r in ranges)

    @staticmethod
    def _ok(port: int) -> bool:
        client = redis.Redis(port=port, socket_timeout=1)
        try:
            info = client.execute_command("CLUSTER", "INFO")
        finally:
            client.close()
        text = info.decode() if isinstance(info, bytes) else str(info)
        return "cluster_state:ok" in text

    def _replicas_synced(self) -> bool:
        replicas = [n for n in self.nodes if _info(n.port, "replication")["role"] == "slave"]
        return len(replicas) == len(self.nodes) - len(self.primaries()) and all(
            _info(n.port, "replication").get("master_link_status") == "up" for n in replicas)

    def primaries(self) -> list[Node]:
        """The nodes that are primaries now."""
        return [n for n in self.nodes if n.process is not None
                and _info(n.port, "replication")["role"] == "master"]

    def stop(self) -> None:
        """Kill every node."""
        for node in self.nodes:
            node.kill()


class SentinelSet:
    """A primary, one replica and three Sentinels watching them as ``service``."""

    service = "wxcache"

    def __init__(self, directory: Path) -> None:
        self.root = directory
        self._new_nodes(0)

    def _new_nodes(self, attempt: int) -> None:
        self.directory = self.root / f"try-{attempt}"
        self.primary = Node(self.directory, list(_BASE))
        self.replica = Node(self.directory, [*_BASE, "--replicaof", "127.0.0.1", "0"])
        self.sentinels: list[Node] = []

    @property
    def url(self) -> str:
        """``redis+sentinel://`` naming every Sentinel and the service."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.service}/0"

    def start(self, attempts: int = 3) -> SentinelSet:
        """Start the primary, the replica (in sync) and the Sentinels (all seeing the primary).

        A set that does not settle (a replica that never syncs on a loaded host) is killed and a
        new one started on fresh ports; after ``attempts`` the error carries the last set's logs.
        """
        try:
            settle(self._form, self._renew, self._logs, attempts)
        except RuntimeError:
            self.stop()
            raise
        return self

    def _renew(self, attempt: int) -> None:
        self.stop()
        self._new_nodes(attempt)

    def _logs(self) -> str:
        return "\n".join(f"-- {role} {node.port}\n{node.log_tail()}" for role, node in
                         [("primary", self.primary), ("replica", self.replica),
                          *(("sentinel", s) for s in self.sentinels)])

    def _form(self) -> None:
        self.primary.start()
        self.replica.args[-1] = str(self.primary.port)
        self.replica.start()
        wait_for(lambda: _info(self.replica.port, "replication").get("master_link_status") == "up",
                 "replica in sync")
        for _ in range(3):
            self.sentinels.append(self._sentinel())
        for s in self.sentinels:
            wait_for(lambda s=s: self._sees_everyone(s.port), "sentinels seeing the replica")

    def _sentinel(self, attempts: int = 5) -> Node:
        """Start one Sentinel; its port is in its config file, so a lost port means a new file."""
        for attempt in range(attempts):
            port = free_port()
            folder = self.directory / f"sentinel-{port}"
            folder.mkdir()
            conf = folder / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor {self.service} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.service} 400\n"
                f"sentinel failover-timeout {self.service} 2000\n"
                f"sentinel parallel-syncs {self.service} 1\n")
            try:
                return Node(folder, [str(conf), "--sentinel"], port=port).start()
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _sees_everyone(self, port: int) -> bool:
        client = redis.Redis(port=port, socket_timeout=1)
        try:
            master = client.sentinel_master(self.service)
            return int(master.get("num-slaves", 0)) >= 1 and int(
                master.get("num-other-sentinels", 0)) >= 2
        finally:
            client.close()

    def master_port(self) -> int:
        """The primary's port as the first live Sentinel reports it."""
        for s in self.sentinels:
            client = redis.Redis(port=s.port, socket_timeout=1)
            try:
                return int(client.sentinel_get_master_addr_by_name(self.service)[1])
            except (redis.RedisError, OSError):
                continue
            finally:
                client.close()
        raise RuntimeError("no sentinel answered")

    def stop(self) -> None:
        """Kill the Sentinels, the replica and the primary."""
        for node in [*self.sentinels, self.replica, self.primary]:
            node.kill()
