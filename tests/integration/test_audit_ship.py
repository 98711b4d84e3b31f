"""Shipping the sealed trail to a SIEM: a real rsyslog receiver (TCP and TLS) started on a private
port is stopped mid-stream and restarted; every record arrives, in chain order, deduplicated by seq."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.ports import free_port
from wxdata.audit.chain import seal
from wxdata.audit.ship import JsonLinesSink, Shipped, SyslogSink, lag, ship, sink_from_url
from wxdata.cli import main

KEY = b"test-ship-audit-key-0123456789abcdefgh"
RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
SEQ = re.compile(r'\[wxdata@32473 seq="(\d+)" position="(\d+)"\] (\{.*\})$')

pytestmark = pytest.mark.skipif(not Path(RSYSLOGD).exists(),
                                reason="rsyslogd is not installed (.ci/run installs it)")


class Rsyslog:
    """A private rsyslogd writing every received message, raw, to ``out``."""

    def __init__(self, folder: Path, tls: tuple[Path, Path, Path] | None = None) -> None:
        self.folder, self.port, self.tls = folder, free_port(), tls
        self.out = folder / "received.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _config(self) -> str:
        glob = f'global(workDirectory="{self.folder}"'
        module = 'module(load="imtcp"'
        if self.tls is not None:
            ca, cert, key = self.tls
            glob += (f' DefaultNetstreamDriverCAFile="{ca}" DefaultNetstreamDriverCertFile="{cert}"'
                     f' DefaultNetstreamDriverKeyFile="{key}"')
            module += ' StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon"'
        return (f"{glob})\n{module})\n"
                'template(name="raw" type="string" string="%rawmsg%\\n")\n'
                f'ruleset(name="wx") {{ action(type="omfile" file="{self.out}" template="raw") }}\n'
                f'input(type="imtcp" port="{self.port}" address="127.0.0.1" ruleset="wx")\n')

    def start(self, attempts: int = 5) -> Rsyslog:
        """Start rsyslogd; a port taken before it bound it means a fresh port and a new config."""
        for _ in range(attempts):
            conf = self.folder / "rsyslog.conf"
            conf.write_text(self._config())
            self.process = subprocess.Popen(
                [RSYSLOGD, "-n", "-f", str(conf), "-i", str(self.folder / "rsyslog.pid")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                    return self
                except OSError:
                    time.sleep(0.05)
            self.stop()
            self.port = free_port()
        raise RuntimeError("rsyslogd did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def received(self, at_least: int = 0) -> list[tuple[int, int, dict[str, Any]]]:
        """What rsyslog wrote (it writes asynchronously after reading: wait for ``at_least``)."""
        deadline = time.monotonic() + 15
        lines: list[str] = []
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            now = self.out.read_text(encoding="utf-8").splitlines() if self.out.exists() else []
            if len(now) != len(lines):
                lines, stable_since = now, time.monotonic()
            elif len(lines) >= at_least and time.monotonic() - stable_since > 0.3:
                break
            time.sleep(0.05)
        found = []
        for line in lines:
            match = SEQ.search(line)
            assert match is not None, "every message is RFC 5424 with wxdata structured data"
            found.append((int(match.group(1)), int(match.group(2)), json.loads(match.group(3))))
        return found


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Rsyslog]:
    server = Rsyslog(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def _write(conn: psycopg.Connection[Any], n: int) -> None:
    conn.execute("INSERT INTO audit_log (action, entity_type, user_id, subject_ids) "
                 "SELECT 'READ', 'Student', 'u-ship-' || g, ARRAY[gen_random_uuid()] "
                 "FROM generate_series(1, %s) g", (n,))
    seal(conn, KEY).unwrap()


def _sealed_seqs(conn: psycopg.Connection[Any]) -> list[int]:
    return [r[0] for r in conn.execute("SELECT audit_seq FROM audit_seal ORDER BY position")]


def _records(seqs: list[int]) -> list[int]:
    """One entry per record: a record naming several students arrives as consecutive events."""
    return [s for i, s in enumerate(seqs) if i == 0 or seqs[i - 1] != s]


def _deduplicated(found: list[tuple[int, int, dict[str, Any]]]) -> list[int]:
    seen: dict[int, None] = {}
    for seq, _, _ in found:
        seen.setdefault(seq, None)
    return list(seen)


def test_a_receiver_stopped_mid_stream_gets_every_record_in_order_after_restart(
    fresh_database: Callable[[], str], receiver: Rsyslog,
) -> None:
    with psycopg.connect(fresh_database(), autocommit=True) as conn:
        _write(conn, 120)
        total = len(_sealed_seqs(conn))  # the cloned database may hold records already
        sink = SyslogSink("siem", "127.0.0.1", receiver.port, timeout=3)
        sent = []

        class StopsMidStream:
            name = "siem"

            def send(self, batch: Sequence[Shipped]) -> None:
                if len(sent) == 2:
                    receiver.stop()  # the SIEM goes down in the middle of the run
                sink.send(batch)
                sent.append(len(batch))

        down = ship(conn, StopsMidStream(), batch_size=25)
        assert down.failure().code == "UNAVAILABLE" and sent == [25, 25]
        assert lag(conn, "siem").unwrap().pending == total - 50
        _write(conn, 30)  # the trail keeps growing while the sink is down
        assert ship(conn, sink, batch_size=25).failure().code == "UNAVAILABLE"
        receiver.start()
        report = ship(conn, sink, batch_size=25).unwrap()
        assert report.shipped == total + 30 - 50 and lag(conn, "siem").unwrap().pending == 0
        found = receiver.received(at_least=len(_sealed_seqs(conn)))
        assert _deduplicated(found) == _sealed_seqs(conn)  # all of them, in chain order
        positions = [p for _, p, _ in found]
        assert positions == sorted(positions)
        assert all(event["resourceType"] == "AuditEvent" for _, _, event in found)


def test_the_mark_persists_across_shippers_and_nothing_is_sent_twice(
    fresh_database: Callable[[], str], receiver: Rsyslog,
) -> None:
    with psycopg.connect(fresh_database(), autocommit=True) as conn:
        _write(conn, 10)
        total = len(_sealed_seqs(conn))
        assert ship(conn, SyslogSink("a", "127.0.0.1", receiver.port)).unwrap().shipped == total
        assert ship(conn, SyslogSink("a", "127.0.0.1", receiver.port)).unwrap().shipped == 0
        _write(conn, 5)
        assert ship(conn, SyslogSink("a", "127.0.0.1", receiver.port)).unwrap().shipped == 5
        expected = _sealed_seqs(conn)
        assert _records([s for s, _, _ in receiver.received(len(expected))]) == expected


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(
                "127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    return cert_path, cert_path, key_path


def test_tls_sink_delivers_to_a_tls_receiver_and_refuses_an_unknown_certificate(
    fresh_database: Callable[[], str], tmp_path: Path,
) -> None:
    ca, cert, key = _certificates(tmp_path)
    server = Rsyslog(tmp_path, tls=(ca, cert, key)).start()
    try:
        with psycopg.connect(fresh_database(), autocommit=True) as conn:
            _write(conn, 12)
            total = len(_sealed_seqs(conn))
            untrusted = SyslogSink("tls", "127.0.0.1", server.port, ssl.create_default_context())
            assert ship(conn, untrusted).failure().code == "UNAVAILABLE"
            trusted = sink_from_url(f"syslog+tls://127.0.0.1:{server.port}", cafile=str(ca)).unwrap()
            assert ship(conn, trusted).unwrap().shipped == total
            expected = _sealed_seqs(conn)
            assert _records([s for s, _, _ in server.received(len(expected))]) == expected
    finally:
        server.stop()


def test_json_lines_file_sink_and_the_cli(
    fresh_database: Callable[[], str], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    url = fresh_database()
    with psycopg.connect(url, autocommit=True) as conn:
        _write(conn, 7)
        out = tmp_path / "audit.ndjson"
        total = len(_sealed_seqs(conn))
        assert ship(conn, JsonLinesSink("file", str(out))).unwrap().shipped == total
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert _records([line["seq"] for line in lines]) == _sealed_seqs(conn)
        expected = _sealed_seqs(conn)
    cli_out = tmp_path / "cli.ndjson"
    assert main(["audit", "--database-url", url, "ship", "--sink", f"file://{cli_out}"]) == 0
    assert _records([json.loads(x)["seq"] for x in cli_out.read_text().splitlines()]) == expected
    assert main(["audit", "--database-url", url, "ship", "--sink", f"file://{cli_out}",
                 "--lag"]) == 0
    assert "0 pending" in capsys.readouterr().out
    assert main(["audit", "--database-url", url, "ship", "--sink", "ftp://nowhere"]) == 2
