"""Districts, schools and users: the organisation every student record hangs from."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from wxdata.context import Role
from wxdata.schema.base import SoftDeleted, Versioned
from wxdata.schema.spec import (
    CacheTTL,
    DataClass,
    col,
    entity,
    pk,
    row,
    secret,
)

G = DataClass.GENERAL
_STATE = r"[A-Z]{2}"
_ZIP = r"\d{5}(-\d{4})?"
_EMAIL = r"[^@\s]{1,64}@[^@\s]{1,255}"


@row
class District(Versioned):
    """A school district."""

    id: UUID = pk()
    name: str = col(G, max_length=200)
    code: str = col(G, max_length=50, unique=True)
    address: str | None = col(G, sql="text")
    city: str | None = col(G, max_length=100)
    state: str | None = col(G, max_length=2, pattern=_STATE)
    zip_code: str | None = col(G, max_length=10, pattern=_ZIP)
    phone: str | None = col(G, max_length=20)
    email: str | None = col(G, max_length=255, pattern=_EMAIL)
    is_active: bool = col(G, has_default=True)


DISTRICTS = entity(District, table="districts", cache_ttl=CacheTTL.DAY)


@row
class School(Versioned):
    """A school within a district."""

    id: UUID = pk()
    name: str = col(G, max_length=200)
    code: str = col(G, max_length=50, unique=True)
    district_id: UUID = col(G, references="districts")
    address: str | None = col(G, sql="text")
    city: str | None = col(G, max_length=100)
    state: str | None = col(G, max_length=2, pattern=_STATE)
    zip_code: str | None = col(G, max_length=10, pattern=_ZIP)
    phone: str | None = col(G, max_length=20)
    email: str | None = col(G, max_length=255, pattern=_EMAIL)
    principal: str | None = col(G, max_length=200)
    total_enrollment: int | None = col(G, minimum=0)
    is_active: bool = col(G, has_default=True)


SCHOOLS = entity(School, table="schools", school="id", cache_ttl=CacheTTL.DAY)


@row
class User(SoftDeleted):
    """A staff account. Credentials are write-only secrets: never selected, cached or audited."""

    id: UUID = pk()
    email: str = col(G, max_length=255, unique=True, pattern=_EMAIL)
    first_name: str = col(G, max_length=100)
    last_name: str = col(G, max_length=100)
    role: str = col(G, max_length=50, choices=Role)
    is_active: bool = col(G, has_default=True)
    last_login: datetime | None = col(G)
    school_id: UUID | None = col(G, references="schools")
    district_id: UUID | None = col(G, references="districts")
    phone: str | None = col(G, max_length=20)
    email_verified: bool = col(G, has_default=True)
    email_verification_expires: datetime | None = col(G)
    password_reset_expires: datetime | None = col(G)
    password_changed_at: datetime | None = col(G)
    two_factor_enabled: bool = col(G, has_default=True)
    failed_login_attempts: int = col(G, has_default=True, minimum=0)
    lockout_until: datetime | None = col(G)
    must_change_password: bool = col(G, has_default=True)
    mfa_enabled: bool = col(G, has_default=True)
    mfa_enabled_at: datetime | None = col(G)
    oauth_provider: str | None = col(G, max_length=50)
    oauth_provider_id: str | None = col(G, max_length=255)
    profile_picture_url: str | None = col(G, max_length=500)


USERS = entity(
    User,
    table="users",
    school="school_id",
    cache_ttl=CacheTTL.LONG,
    secrets=(
        secret("password_hash", sql="varchar(255)", nullable=False, max_length=255),
        secret("email_verification_token", sql="varchar(255)", max_length=255),
        secret("password_reset_token", sql="varchar(255)", max_length=255),
        secret("two_factor_secret", sql="varchar(255)", max_length=255),
        secret("mfa_secret", sql="varchar(255)", max_length=255),
        secret("mfa_backup_codes", sql="text"),
    ),
)
