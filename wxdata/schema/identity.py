"""Identity and access: API keys, user sessions, login attempts and IP restrictions.

Key hashes and session tokens are write-only secrets: never selected, cached, logged or audited.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from wxdata.schema.base import Authored, Versioned
from wxdata.schema.spec import (
    CacheTTL,
    DataClass,
    col,
    created_at,
    entity,
    pk,
    row,
    secret,
)

G = DataClass.GENERAL


@row
class ApiKey(Authored):
    """A service-to-service API key; only its SHA-256 hash is stored (write-only)."""

    id: UUID = pk()
    name: str = col(G, max_length=255)
    key_prefix: str = col(G, max_length=100)
    description: str | None = col(G, sql="text")
    scopes: list[str] | None = col(G)
    is_active: bool = col(G, has_default=True)
    expires_at: datetime | None = col(G)
    last_used_at: datetime | None = col(G)
    usage_count: int = col(G, minimum=0, has_default=True)
    ip_restriction: str | None = col(G, max_length=100)
    rate_limit: int | None = col(G, minimum=0)


API_KEYS = entity(
    ApiKey, table="api_keys", cache_ttl=CacheTTL.HOUR,
    secrets=(secret("key_hash", sql="varchar(255)", nullable=False, max_length=255, unique=True),),
)


@row
class Session(Versioned):
    """An authenticated user session; the session token is a write-only secret."""

    id: UUID = pk()
    user_id: UUID = col(G, references="users")
    ip_address: str = col(G, max_length=64)
    user_agent: str | None = col(G, sql="text")
    expires_at: datetime = col(G)
    last_accessed_at: datetime | None = col(G)
    is_active: bool = col(G, has_default=True)
    metadata: dict[str, Any] | None = col(G)


SESSIONS = entity(
    Session, table="sessions", cache_ttl=CacheTTL.SHORT,
    secrets=(secret("session_token", sql="varchar(255)", nullable=False, max_length=255,
                   unique=True),),
)


@row
class LoginAttempt:
    """A successful or failed login (append-only; feeds brute-force detection)."""

    id: UUID = pk()
    user_id: UUID | None = col(G, references="users")
    username: str | None = col(G, max_length=255)
    ip_address: str = col(G, max_length=64)
    user_agent: str | None = col(G, sql="text")
    success: bool = col(G, has_default=True)
    failure_reason: str | None = col(G, sql="text")
    metadata: dict[str, Any] | None = col(G)
    created_at: datetime = created_at()


LOGIN_ATTEMPTS = entity(LoginAttempt, table="login_attempts", cache_ttl=CacheTTL.SHORT)

IP_RESTRICTION_TYPES = ("whitelist", "blacklist", "geo_restriction")


@row
class IpRestriction(Authored):
    """An allow/deny rule by IP address, range or country."""

    id: UUID = pk()
    type: str = col(G, max_length=20, choices=IP_RESTRICTION_TYPES)
    ip_address: str | None = col(G, max_length=64)
    ip_range: dict[str, Any] | None = col(G)
    countries: list[str] | None = col(G)
    reason: str = col(G, sql="text")
    expires_at: datetime | None = col(G)
    is_active: bool = col(G, has_default=True)


IP_RESTRICTIONS = entity(IpRestriction, table="ip_restrictions", cache_ttl=CacheTTL.HOUR)
