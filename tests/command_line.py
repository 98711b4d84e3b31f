"""Running the ``wxdata`` command line in tests: ``main(argv)`` with its output captured, or a real
``python -m wxdata.cli`` process; the audit chain's test key; URLs of servers that refuse
connections."""

from __future__ import annotations

import base64
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import pytest

from wxdata.cli import main
from wxdata.config import configure
from wxdata.config import settings as wx_settings

REPO = Path(__file__).resolve().parent.parent
KEY = b"cli-test-chain-key-0123456789abc"
KEY_B64 = base64.b64encode(KEY).decode()

Run = Callable[..., tuple[int, str, str]]


def runner(capsys: pytest.CaptureFixture[str]) -> Run:
    """``run(*argv)`` -> (exit code, stdout, stderr) of ``main(argv)`` (argparse's exit too)."""

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


@contextmanager
def chain_key() -> Iterator[None]:
    """``AUDIT_HMAC_KEY`` configured (to :data:`KEY`) for the chain commands, then restored."""
    previous = configure(attrs.evolve(wx_settings(), audit_hmac_key=KEY))
    try:
        yield
    finally:
        configure(previous)


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
    """A PostgreSQL URL with a password, on a local port that refuses connections."""
    return f"postgresql://wxdata:s3cr3t-pw@127.0.0.1:{closed_port()}/wxdata?connect_timeout=2"


def env_for(**extra: str) -> dict[str, str]:
    """The environment of a real ``wxdata`` process: this one's without cache settings, the
    checkout on ``PYTHONPATH``, the test chain key, and ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CACHE_", "REDIS_"))}
    env.update(PYTHONPATH=str(REPO), AUDIT_HMAC_KEY=KEY_B64, **extra)
    return env
