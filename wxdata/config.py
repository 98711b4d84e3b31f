"""Settings from the environment, validated once at start-up.

Every configuration variable is read here and nowhere else. A bad value raises
:class:`ConfigError` naming the variable and the rule (never its value: it may be a password).
"""

from __future__ import annotations

import base64
import binascii
import functools
import os
from collections.abc import Mapping
from typing import Literal
from urllib.parse import quote

import attrs

from wxdata.redis_url import RedisUrlError, parse_redis_url


class ConfigError(ValueError):
    """A configuration variable is missing or invalid."""


def _libpq_closes_statements() -> bool:
    """Whether psycopg's libpq drops prepared statements with the protocol's Close message (libpq
    17 and newer), which a pooler keeping prepared statements tracks; older ones send DEALLOCATE."""
    from psycopg import capabilities

    return capabilities.has_send_close_prepared()


CacheBackendName = Literal["memory", "redis", "tiered"]
ReplicaStrategy = Literal["round_robin", "least_loaded"]
PoolerMode = Literal["none", "transaction", "transaction-prepared"]
_POOLER_MODES: tuple[PoolerMode, ...] = ("none", "transaction", "transaction-prepared")
#: How the commit of a read's disclosure record waits for the WAL: ``durable`` (flushed before the
#: data is returned) or ``async`` (``synchronous_commit = off`` for that commit only; see
#: :attr:`Settings.audit_read_commit`).
ReadCommitMode = Literal["durable", "async"]
_READ_COMMIT_MODES: tuple[ReadCommitMode, ...] = ("durable", "async")
_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
#: Roles that may ever be allowed break-glass access (VIEWER and SYSTEM never are).
BREAK_GLASS_ELIGIBLE = ("ADMIN", "NURSE", "SCHOOL_ADMIN", "DISTRICT_ADMIN", "COUNSELOR")
#: Default break-glass roles: the clinical ones (the nurse at the bedside, the health-services admin).
DEFAULT_BREAK_GLASS_ROLES = frozenset({"NURSE", "ADMIN"})


def _masked(value: object) -> str:
    """Repr of a URL-ish setting: whether it is set, never its text (it may hold a password)."""
    return "<set>" if value else repr(value)


@attrs.frozen(slots=True, kw_only=True)
class Settings:
    """Validated configuration; build with :func:`load_settings`."""

    database_url: str | None = attrs.field(default=None, repr=_masked)
    migration_url: str | None = attrs.field(default=None, repr=_masked)
    allow_privileged_connection: bool = False
    scope_token_max_age: int = 300
    replica_urls: tuple[str, ...] = attrs.field(default=(), repr=_masked)
    pool_min: int = 2
    pool_max: int = 10
    statement_timeout_ms: int = 30_000
    idle_in_transaction_timeout_ms: int = 30_000
    sslmode: str | None = None
    sslrootcert: str | None = None
    application_name: str = "wxdata"
    pooler: PoolerMode = "none"
    processes: int = 1
    reserved_connections: int = 3
    replica_strategy: ReplicaStrategy = "round_robin"
    replica_max_lag_bytes: int | None = 16 * 1024 * 1024
    replica_max_lag_seconds: float | None = 30.0
    slow_query_ms: int | None = None
    cache_enabled: bool = True
    cache_backend: CacheBackendName = "memory"
    cache_default_ttl: int = 900
    cache_max_size: int = 10_000
    cache_encrypt_phi: bool = False
    cache_weigh_recorded_hits: bool = True
    cache_key: bytes | None = attrs.field(default=None, repr=_masked)
    redis_url: str | None = attrs.field(default=None, repr=_masked)
    audit_enabled: bool = True
    audit_phi_access: bool = True
    #: ``durable`` (the default): a read outside a unit of work returns its rows only once the
    #: commit carrying its disclosure record is flushed to the WAL. ``async`` (opt-in,
    #: ``AUDIT_READ_COMMIT=async``): that commit alone runs with ``synchronous_commit = off``;
    #: the record is still written in the read's own statement and transaction (no rows without
    #: it), but a crash of the PostgreSQL server (not of the client) can lose the records of the
    #: reads committed in the last ``3 x wal_writer_delay`` (600 ms by default). Writes, units of
    #: work, cache invalidations and every other record stay durable.
    audit_read_commit: ReadCommitMode = attrs.field(
        default="durable", validator=attrs.validators.in_(_READ_COMMIT_MODES))
    audit_hmac_key: bytes | None = attrs.field(default=None, repr=_masked)
    audit_lane_pool_max: int = 4
    audit_lane_timeout: float = 5.0
    master_key: bytes | None = attrs.field(default=None, repr=_masked)
    scope_key: bytes | None = attrs.field(default=None, repr=_masked)
    cursor_key: bytes | None = attrs.field(default=None, repr=_masked)
    cursor_key_previous: bytes | None = attrs.field(default=None, repr=_masked)
    break_glass_min_reason: int = 20
    break_glass_roles: frozenset[str] = DEFAULT_BREAK_GLASS_ROLES
    context_max_age_seconds: int | None = None

    def secret(self, purpose: SecretPurpose) -> bytes | None:
        """The key for ``purpose``: its own variable when set, else derived from ``WXDATA_MASTER_KEY``.

        Derivation is HKDF-SHA256 with the purpose as context, so keys of different purposes are
        independent and one master key can be rotated as a whole. None when neither is configured.
        """
        own = self.scope_key if purpose == "scope" else self.cursor_key
        if own is not None:
            return own
        if self.master_key is None:
            return None
        return derive_key(self.master_key, purpose)

    @property
    def transaction_pooled(self) -> bool:
        """True behind a transaction-pooling proxy (``DB_POOLER=transaction`` or
        ``transaction-prepared``).

        Consecutive transactions of one client connection may then run on different server
        connections: wxdata keeps no session state (no startup ``options``; timeouts are applied
        per transaction) and names prepared statements only when the pooler keeps them
        (:attr:`pooler_keeps_statements`).
        """
        return self.pooler != "none"

    @property
    def pooler_keeps_statements(self) -> bool:
        """True behind a transaction pooler that keeps protocol-level prepared statements
        (``DB_POOLER=transaction-prepared``: PgBouncer 1.21 or newer with
        ``max_prepared_statements`` above 0).

        Such a pooler renames each statement a client prepares and prepares it again on whichever
        server connection runs it, so psycopg's named statements are safe; wxdata checks the
        renaming on each connection's first use (:func:`wxdata.tx.scope.role_facts`).
        """
        return self.pooler == "transaction-prepared"

    @property
    def prepare(self) -> bool:
        """``prepare=`` for wxdata's hot statements: True direct or behind a pooler that keeps
        prepared statements, False behind one that does not (``DB_POOLER=transaction``).

        Passing False explicitly keeps a statement unnamed even on a connection that was not
        opened with :func:`wxdata.db.connect_kwargs` (psycopg honours ``prepare=False`` always).
        """
        return self.pooler != "transaction"

    @property
    def owner_url(self) -> str | None:
        """The URL migrations run with: ``WXDATA_MIGRATION_URL``, else ``DATABASE_URL``."""
        return self.migration_url or self.database_url

    @property
    def database_configured(self) -> bool:
        """True when a server was configured (else the embedded PostgreSQL is used)."""
        return self.database_url is not None


SecretPurpose = Literal["scope", "cursor"]


@functools.lru_cache(maxsize=16)
def derive_key(master: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose, derived from ``master`` with HKDF-SHA256 (once per pair)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"wxdata-keys-v1",
        info=f"wxdata {purpose}".encode(),
    ).derive(master)


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false")


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be an integer") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}")
    return value


def _seconds(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds") from None
    if not low < value <= high:  # NaN fails both comparisons
        raise ConfigError(f"{name} must be more than {low:g} and at most {high:g} seconds")
    return value


def _key(env: Mapping[str, str], name: str, sizes: tuple[int, ...]) -> bytes | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        key = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{name} must be base64") from None
    if len(key) not in sizes:
        raise ConfigError(f"{name} must decode to {' or '.join(map(str, sizes))} bytes")
    return key


def _roles(env: Mapping[str, str], name: str) -> frozenset[str]:
    """Comma-separated break-glass roles; ``none`` disables break-glass; unset gives the default."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return DEFAULT_BREAK_GLASS_ROLES
    if raw.strip().lower() == "none":
        return frozenset()
    roles = frozenset(r.strip().upper() for r in raw.split(",") if r.strip())
    if not roles <= set(BREAK_GLASS_ELIGIBLE):
        raise ConfigError(f"{name} must be 'none' or a comma-separated subset of "
                          + ", ".join(BREAK_GLASS_ELIGIBLE))
    return roles


def _database_url(env: Mapping[str, str]) -> str | None:
    url = env.get("DATABASE_URL")
    if url:
        if not url.startswith(("postgresql://", "postgres://")) and "=" not in url:
            raise ConfigError("DATABASE_URL must be a postgresql:// URL or a libpq conninfo")
        return url
    host = env.get("DB_HOST")
    if not host:
        return None
    port = _int(env, "DB_PORT", 5432, 1, 65535)
    user = quote(env.get("DB_USERNAME", "postgres"), safe="")
    password = env.get("DB_PASSWORD")
    auth = user + (":" + quote(password, safe="") if password else "")
    name = quote(env.get("DB_NAME", "wxdata"), safe="")
    return f"postgresql://{auth}@{quote(host, safe='')}:{port}/{name}"


def _url(env: Mapping[str, str], name: str) -> str | None:
    url = env.get(name) or None
    if url is not None and not url.startswith(("postgresql://", "postgres://")) and "=" not in url:
        raise ConfigError(f"{name} must be a postgresql:// URL or a libpq conninfo")
    return url


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate every wxdata variable; raises ConfigError naming the first bad one."""
    env = os.environ if env is None else env
    backend = env.get("CACHE_BACKEND", "memory").strip().lower()
    if backend not in ("memory", "redis", "tiered"):
        raise ConfigError("CACHE_BACKEND must be memory, redis or tiered")
    sslmode = env.get("DB_SSLMODE") or None
    if sslmode is not None and sslmode not in _SSLMODES:
        raise ConfigError("DB_SSLMODE must be one of " + ", ".join(_SSLMODES))
    redis_url = env.get("REDIS_URL") or None
    if redis_url is not None:
        try:
            parse_redis_url(redis_url)
        except RedisUrlError as exc:
            raise ConfigError(f"REDIS_URL {exc}") from None
    if backend in ("redis", "tiered") and redis_url is None:
        raise ConfigError("REDIS_URL is required when CACHE_BACKEND is redis or tiered")
    replicas = tuple(u.strip() for u in env.get("DATABASE_REPLICA_URLS", "").split(",") if u.strip())
    for replica in replicas:
        if not replica.startswith(("postgresql://", "postgres://")) and "=" not in replica:
            raise ConfigError("DATABASE_REPLICA_URLS must be comma-separated postgresql:// URLs")
    strategy = env.get("DB_REPLICA_STRATEGY", "round_robin").strip().lower().replace("-", "_")
    if strategy not in ("round_robin", "least_loaded"):
        raise ConfigError("DB_REPLICA_STRATEGY must be round_robin or least_loaded")
    lag_bytes = _int(env, "DB_REPLICA_MAX_LAG_BYTES", 16 * 1024 * 1024, 0, 2**62)
    lag_seconds = _int(env, "DB_REPLICA_MAX_LAG_SECONDS", 30, 0, 86_400)
    slow_ms = _int(env, "DB_SLOW_QUERY_MS", -1, 0, 86_400_000)
    pool_min = _int(env, "DB_POOL_MIN", 2, 0, 1000)
    pool_max = _int(env, "DB_POOL_MAX", 10, 1, 1000)
    if pool_max < pool_min:
        raise ConfigError("DB_POOL_MAX must be at least DB_POOL_MIN")
    pooler = env.get("DB_POOLER", "none").strip().lower() or "none"
    if pooler not in _POOLER_MODES:
        raise ConfigError("DB_POOLER must be none, transaction or transaction-prepared")
    if pooler == "transaction-prepared" and not _libpq_closes_statements():
        raise ConfigError(
            "DB_POOLER=transaction-prepared needs libpq 17 or newer: an older libpq drops a "
            "prepared statement with DEALLOCATE, which the pooler does not track (psycopg-binary "
            "bundles a recent libpq)")
    read_commit = env.get("AUDIT_READ_COMMIT", "durable").strip().lower() or "durable"
    if read_commit not in _READ_COMMIT_MODES:
        raise ConfigError("AUDIT_READ_COMMIT must be durable or async")
    settings = Settings(
        database_url=_database_url(env),
        migration_url=_url(env, "WXDATA_MIGRATION_URL"),
        allow_privileged_connection=_bool(env, "WXDATA_ALLOW_PRIVILEGED_CONNECTION", False),
        scope_token_max_age=_int(env, "WXDATA_SCOPE_TOKEN_MAX_AGE", 300, 5, 86_400),
        replica_urls=replicas,
        pool_min=pool_min,
        pool_max=pool_max,
        statement_timeout_ms=_int(env, "DB_STATEMENT_TIMEOUT", 30_000, 0, 86_400_000),
        idle_in_transaction_timeout_ms=_int(
            env, "DB_IDLE_IN_TRANSACTION_TIMEOUT", 30_000, 0, 86_400_000
        ),
        sslmode=sslmode,
        sslrootcert=env.get("DB_SSLROOTCERT") or None,
        application_name=env.get("DB_APPLICATION_NAME", "wxdata")[:63] or "wxdata",
        pooler=pooler,
        processes=_int(env, "WXDATA_PROCESSES", 1, 1, 100_000),
        reserved_connections=_int(env, "DB_RESERVED_CONNECTIONS", 3, 0, 10_000),
        replica_strategy=strategy,  # type: ignore[arg-type]
        replica_max_lag_bytes=lag_bytes or None,
        replica_max_lag_seconds=float(lag_seconds) or None,
        slow_query_ms=None if slow_ms < 0 else slow_ms,
        cache_enabled=_bool(env, "CACHE_ENABLED", True),
        cache_backend=backend,  # type: ignore[arg-type]
        cache_default_ttl=_int(env, "CACHE_DEFAULT_TTL", 900, 1, 86_400 * 7),
        cache_max_size=_int(env, "CACHE_MAX_SIZE", 10_000, 1, 10_000_000),
        cache_encrypt_phi=_bool(env, "CACHE_ENCRYPT_PHI", False),
        cache_weigh_recorded_hits=_bool(env, "CACHE_WEIGH_RECORDED_HITS", True),
        cache_key=_key(env, "CACHE_KEY", (16, 24, 32)),
        redis_url=redis_url,
        audit_enabled=_bool(env, "AUDIT_ENABLED", True),
        audit_phi_access=_bool(env, "AUDIT_PHI_ACCESS", True),
        audit_read_commit=read_commit,
        audit_hmac_key=_key(env, "AUDIT_HMAC_KEY", tuple(range(16, 129))),
        audit_lane_pool_max=_int(env, "AUDIT_LANE_POOL_MAX", 4, 1, 1000),
        audit_lane_timeout=_seconds(env, "AUDIT_LANE_TIMEOUT", 5.0, 0.0, 300.0),
        master_key=_key(env, "WXDATA_MASTER_KEY", tuple(range(32, 129))),
        scope_key=_key(env, "WXDATA_SCOPE_KEY", tuple(range(32, 129))),
        cursor_key=_key(env, "WXDATA_CURSOR_KEY", (32,)),
        cursor_key_previous=_key(env, "WXDATA_CURSOR_KEY_PREVIOUS", (32,)),
        break_glass_min_reason=_int(env, "WXDATA_BREAK_GLASS_MIN_REASON", 20, 10, 500),
        break_glass_roles=_roles(env, "WXDATA_BREAK_GLASS_ROLES"),
        context_max_age_seconds=_int(env, "WXDATA_CONTEXT_MAX_AGE", 0, 0, 7 * 86_400) or None,
    )
    if settings.cache_encrypt_phi and settings.cache_key is None:
        raise ConfigError("CACHE_KEY is required when CACHE_ENCRYPT_PHI is true")
    return settings


_current: list[Settings] = []


def settings() -> Settings:
    """The process settings, loaded from the environment on first use."""
    if not _current:
        _current.append(load_settings())
    return _current[0]


def configure(new: Settings) -> Settings:
    """Replace the process settings (tests, embedding applications); returns the previous ones."""
    previous = settings()
    _current[:] = [new]
    return previous
