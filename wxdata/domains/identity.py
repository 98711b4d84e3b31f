"""API keys, sessions, login attempts and IP restrictions.

One binding per entity (:class:`wxdata.crud.Ops`), each with every generic operation.
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.identity import (
    API_KEYS,
    IP_RESTRICTIONS,
    LOGIN_ATTEMPTS,
    SESSIONS,
    ApiKey,
    IpRestriction,
    LoginAttempt,
    Session,
)

api_keys = bind_entity(API_KEYS)
sessions = bind_entity(SESSIONS)
login_attempts = bind_entity(LOGIN_ATTEMPTS)
ip_restrictions = bind_entity(IP_RESTRICTIONS)

__all__ = [
    "ApiKey",
    "IpRestriction",
    "LoginAttempt",
    "Session",
    "api_keys",
    "ip_restrictions",
    "login_attempts",
    "sessions",
]
