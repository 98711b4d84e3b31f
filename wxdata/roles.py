"""The two database roles: the owner that migrates, and the application role that serves requests.

- The **owner** (``WXDATA_MIGRATION_URL``, else ``DATABASE_URL``) owns the tables, runs the
  migrations and holds the scope key (``wxdata_scope_key``, readable by it alone).
- The **application role** (the user of ``DATABASE_URL``) is a LOGIN role, NOSUPERUSER NOBYPASSRLS
  NOCREATEDB NOCREATEROLE, member of the group ``wxdata_app`` that holds the grants. Row-level
  security applies to it, and it cannot read the scope key, so it cannot sign a wider scope.

:func:`provision` (run by ``wxdata migrate`` after the migrations) installs the scope key and
creates or updates the application role.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from wxdata.config import ConfigError, Settings
from wxdata.tx.token import pads

Conn = psycopg.Connection[Any]


def install_scope_key(conn: Conn, key: bytes, max_age_seconds: int = 300) -> None:
    """Store ``key``'s HMAC pad blocks (never the key itself) as the database's scope key."""
    ipad, opad = pads(key)
    conn.execute(
        "INSERT INTO wxdata_scope_key (id, ipad, opad, max_age_seconds) VALUES (true, %s, %s, %s) "
        "ON CONFLICT (id) DO UPDATE SET ipad = excluded.ipad, opad = excluded.opad, "
        "max_age_seconds = excluded.max_age_seconds, installed_at = now()",
        (ipad, opad, max_age_seconds),
    )


def ensure_app_role(conn: Conn, name: str, password: str | None) -> None:
    """Create (or bring back in line) the application LOGIN role ``name``, member of wxdata_app."""
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone()
    verb = sql.SQL("ALTER ROLE" if exists else "CREATE ROLE")
    attributes = sql.SQL("LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION")
    if password is not None:
        conn.execute(sql.SQL("{} {} {} PASSWORD {}").format(
            verb, sql.Identifier(name), attributes, sql.Literal(password)))
    else:
        conn.execute(sql.SQL("{} {} {}").format(verb, sql.Identifier(name), attributes))
    conn.execute(sql.SQL("GRANT wxdata_app TO {}").format(sql.Identifier(name)))


def url_user(url: str) -> tuple[str | None, str | None]:
    """The user and password a URL/conninfo connects with (None when unset)."""
    params = conninfo_to_dict(url)
    user, password = params.get("user"), params.get("password")
    return (None if user is None else str(user)), (None if password is None else str(password))


def current_role(conn: Conn) -> str:
    """The role ``conn`` is logged in as."""
    row = conn.execute("SELECT session_user").fetchone()
    return str(row[0]) if row else ""


def provision(conn: Conn, config: Settings, key: bytes | None) -> str | None:
    """Install the scope key and create the application role of ``DATABASE_URL``.

    ``conn`` is the owner's connection. Returns the application role's name, or None when
    ``DATABASE_URL`` names the owner itself (then there is no separate application role, and
    wxdata refuses non-SYSTEM contexts on such a connection). Raises ConfigError when no scope
    key is configured.
    """
    if key is None:
        raise ConfigError(
            "WXDATA_SCOPE_KEY (or WXDATA_MASTER_KEY) is required to migrate: row-level security "
            "verifies a scope signed with it"
        )
    install_scope_key(conn, key, config.scope_token_max_age)
    if config.database_url is None:
        return None
    user, password = url_user(config.database_url)
    if not user or user == current_role(conn):
        return None
    ensure_app_role(conn, user, password)
    return user
