"""The signed school-scope token that row-level security verifies.

wxdata sends ``app.scope_token`` with every transaction it opens. The database's policy functions
(``wxdata_school_ids()``, ``wxdata_scope_bypass()``, migration ``0203_scope_token.sql``) trust only
this token, never the plain ``app.school_ids`` / ``app.bypass_scope`` settings, so SQL run as the
application role cannot widen its own scope: without the scope key it cannot sign a token.

Format (all ASCII)::

    1|<issued-at, epoch seconds>|<bypass 0/1>|<sorted school ids>|<role>|<user id>|<hmac hex>

The HMAC-SHA256 (key: ``Settings.secret("scope")``) covers everything before the last ``|``. The
database accepts a token for ``max_age_seconds`` (default 300) after it was issued, with
``skew_seconds`` (default 30) of clock tolerance either way.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import time

from wxdata.config import settings
from wxdata.context import ExecutionContext

VERSION = "1"
BLOCK = 64  # SHA-256 block size
FINGERPRINT_LABEL = b"wxdata scope key fingerprint"

_fallback: list[bytes] = []


def use_fallback_key(key: bytes) -> None:
    """Register the key of the embedded server (used when no scope key is configured)."""
    _fallback[:] = [key]


def scope_key() -> bytes | None:
    """The scope key: ``WXDATA_SCOPE_KEY`` / derived from ``WXDATA_MASTER_KEY``, else the embedded
    server's generated key, else None."""
    return settings().secret("scope") or (_fallback[0] if _fallback else None)


def bypasses(ctx: ExecutionContext) -> bool:
    """Whether the context sees every school: SYSTEM, or break-glass emergency access."""
    return ctx.is_system or ctx.is_break_glass


def message(ctx: ExecutionContext, issued_at: int) -> str:
    """The signed part of the token for ``ctx`` issued at ``issued_at`` (epoch seconds)."""
    schools = ",".join(sorted(str(s) for s in ctx.school_ids))
    flag = "1" if bypasses(ctx) else "0"
    return f"{VERSION}|{issued_at}|{flag}|{schools}|{ctx.role.value}|{ctx.user_id}"


@functools.lru_cache(maxsize=8)
def _keyed(key: bytes) -> hmac.HMAC:
    """The HMAC state after the key (copied per token: the pads are hashed once per key)."""
    return hmac.new(key, digestmod=hashlib.sha256)


def sign(key: bytes, text: str) -> str:
    """Lowercase hex HMAC-SHA256 of ``text`` (UTF-8) under ``key``."""
    mac = _keyed(key).copy()
    mac.update(text.encode("utf-8"))
    return mac.hexdigest()


def scope_token(ctx: ExecutionContext, key: bytes, now: float | None = None) -> str:
    """The token for ``ctx``, issued now (or at ``now``).

    A token names its issue time in whole seconds, so within one second the same context and key
    give the same token: it is signed once per (context, key, second), not once per statement.
    """
    return _signed(ctx, key, int(time.time() if now is None else now))


@functools.lru_cache(maxsize=256)
def _signed(ctx: ExecutionContext, key: bytes, issued: int) -> str:
    text = message(ctx, issued)
    return f"{text}|{sign(key, text)}"


def pads(key: bytes) -> tuple[bytes, bytes]:
    """The HMAC inner and outer pad blocks of ``key`` (what the database stores, not the key)."""
    k0 = hashlib.sha256(key).digest() if len(key) > BLOCK else key
    k0 = k0.ljust(BLOCK, b"\x00")
    return bytes(b ^ 0x36 for b in k0), bytes(b ^ 0x5C for b in k0)


@functools.lru_cache(maxsize=8)
def fingerprint(key: bytes) -> str:
    """16 hex digits identifying ``key`` (an HMAC of a fixed label; reveals nothing of the key)."""
    return sign(key, FINGERPRINT_LABEL.decode())[:16]
