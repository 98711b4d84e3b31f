"""Districts, schools and users: one binding of every generic operation per entity, and finders.

User rows never carry credentials: password hashes, tokens and MFA secrets are write-only secret
columns, so no finder can return, cache or audit them.
"""

from __future__ import annotations

from uuid import UUID

from returns.result import Result

from wxdata.context import ExecutionContext
from wxdata.core import crud as plans
from wxdata.core.effects import Plan
from wxdata.crud import bind_entity
from wxdata.domains.finders import by_column, finder
from wxdata.errors import DataError
from wxdata.query.filters import Pattern, escape_like
from wxdata.schema.organisation import DISTRICTS, SCHOOLS, USERS, District, School, User
from wxdata.tx.scope import AnyConn

districts = bind_entity(DISTRICTS)
schools = bind_entity(SCHOOLS)
users = bind_entity(USERS)

schools_in_district = by_column(SCHOOLS, "district_id", order_by=[("name", "asc")],
                                fixed={"is_active": True}, cache=True,
                                doc="A district's active schools, by name.")
users_of_school = by_column(USERS, "school_id", order_by=[("last_name", "asc")],
                            fixed={"is_active": True}, doc="A school's active staff, by name.")


@finder(DISTRICTS, cache=True)
def find_district_by_code(
    conn: AnyConn, ctx: ExecutionContext, code: str
) -> Plan[Result[District, DataError]]:
    """The district with this code."""
    return plans.find_one(conn, ctx, DISTRICTS, {"code": code})


@finder(SCHOOLS, cache=True)
def find_school_by_code(
    conn: AnyConn, ctx: ExecutionContext, code: str
) -> Plan[Result[School, DataError]]:
    """The school with this code."""
    return plans.find_one(conn, ctx, SCHOOLS, {"code": code})


@finder(USERS, cache=True)
def find_user_by_email(
    conn: AnyConn, ctx: ExecutionContext, email: str
) -> Plan[Result[User, DataError]]:
    """The (non-deleted) user with this email, case-insensitively; never with credentials."""
    return plans.find_one(conn, ctx, USERS,
                          {"email": {"ilike": Pattern(escape_like(email.strip()))}})


@finder(USERS)
def find_user(conn: AnyConn, ctx: ExecutionContext, id: UUID | str) -> Plan[Result[User, DataError]]:
    """The user with this id."""
    return plans.find_by_id(conn, ctx, USERS, id)


__all__ = [
    "District",
    "School",
    "User",
    "districts",
    "find_district_by_code",
    "find_school_by_code",
    "find_user",
    "find_user_by_email",
    "schools",
    "schools_in_district",
    "users",
    "users_of_school",
]
