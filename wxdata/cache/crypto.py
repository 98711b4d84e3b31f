"""Keys derived from ``CACHE_KEY`` and the envelope every Redis value is stored in.

From the one configured secret, HKDF-SHA256 derives independent subkeys: one to hash cache keys and
tags (HMAC), one to authenticate plaintext entries (HMAC), one to encrypt sensitive entries
(AES-256-GCM). Each key has a public 4-byte *key id* (a hash of the derived key) written in front of
the ciphertext, so a rotated key can still decrypt old entries during rotation (pass the old secret
in ``previous``) and an entry under an unknown key is simply a miss.

Envelopes (the Redis key is bound to every entry as associated data / MAC input, so an entry copied
under another key — another patient's — fails verification)::

    b"P" + version + mac_kid(4) + HMAC-SHA256(redis_key || payload)(32) + payload   non-sensitive
    b"E" + version + enc_kid(4) + nonce(12) + AES-GCM(payload, aad=redis_key)        sensitive
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from wxdata.cache.keys import Hmac256
from wxdata.cache.serde import FORMAT_VERSION, CorruptPayload

_VERSION = bytes([FORMAT_VERSION])
_PLAIN = b"P" + _VERSION
_SEALED = b"E" + _VERSION


def derive(secret: bytes, purpose: str) -> bytes:
    """A 32-byte subkey of ``secret`` for one purpose (HKDF-SHA256, fixed salt)."""
    if len(secret) < 16:
        raise ValueError("cache secret must be at least 16 bytes")
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"wxdata-cache-v1",
        info=f"wxdata cache {purpose}".encode(),
    ).derive(secret)


def key_id(key: bytes) -> bytes:
    """Public 4-byte identifier of a derived key (reveals nothing usable about it)."""
    return hashlib.sha256(b"wxdata cache kid" + key).digest()[:4]


def key_hash_key(secret: bytes | None) -> bytes:
    """The key that hashes cache keys and tags: derived from the secret, else random per process."""
    return derive(secret, "key-hash") if secret is not None else os.urandom(32)


class Envelope:
    """Seals payloads for Redis: encrypts sensitive ones, authenticates the rest."""

    def __init__(self, secret: bytes, *, encrypt: bool = True, previous: Iterable[bytes] = ()) -> None:
        self.encrypts = encrypt
        mac_key = derive(secret, "value-mac")
        enc_key = derive(secret, "value-enc")
        self._mac_kid = key_id(mac_key)
        self._enc_kid = key_id(enc_key)
        self._mac = Hmac256(mac_key)
        self._aead = AESGCM(enc_key)
        self._macs: dict[bytes, Hmac256] = {self._mac_kid: self._mac}
        self._aeads: dict[bytes, AESGCM] = {self._enc_kid: self._aead}
        for old in previous:
            m, e = derive(old, "value-mac"), derive(old, "value-enc")
            self._macs.setdefault(key_id(m), Hmac256(m))
            self._aeads.setdefault(key_id(e), AESGCM(e))

    def seal(self, redis_key: str, payload: bytes, sensitive: bool) -> bytes:
        """The stored bytes for a payload under ``redis_key``."""
        aad = redis_key.encode()
        if sensitive:
            if not self.encrypts:
                raise PermissionError("sensitive values need encryption (CACHE_ENCRYPT_PHI)")
            nonce = os.urandom(12)
            return _SEALED + self._enc_kid + nonce + self._aead.encrypt(nonce, payload, aad)
        tag = self._mac.digest(aad + b"\x00" + payload)
        return _PLAIN + self._mac_kid + tag + payload

    def open(self, redis_key: str, blob: bytes, sensitive: bool) -> bytes:
        """The payload of stored bytes; :class:`CorruptPayload` if forged, garbled or foreign."""
        head = blob[:2]
        aad = redis_key.encode()
        if head == _SEALED:
            aead = self._aeads.get(blob[2:6])
            if aead is None or len(blob) < 6 + 12 + 16:
                raise CorruptPayload("unknown key or short entry")
            try:
                return aead.decrypt(blob[6:18], blob[18:], aad)
            except InvalidTag:
                raise CorruptPayload("authentication failed") from None
        if head == _PLAIN and not sensitive:
            mac = self._macs.get(blob[2:6])
            if mac is None or len(blob) < 38:
                raise CorruptPayload("unknown key or short entry")
            payload = blob[38:]
            if not hmac.compare_digest(blob[6:38], mac.digest(aad + b"\x00" + payload)):
                raise CorruptPayload("authentication failed")
            return payload
        raise CorruptPayload("unknown envelope")
