"""Districts, schools and users: each a bound set of generic functions, plus their finders.

User rows never carry credentials: password hashes, tokens and MFA secrets are write-only secret
columns, so no finder can return, cache or audit them.
"""

from __future__ import annotations

from uuid import UUID

from returns.result import Result

from wxdata import crud
from wxdata.cache import cached
from wxdata.context import ExecutionContext
from wxdata.domains.finders import by_column
from wxdata.errors import DataError
from wxdata.query.filters import Pattern, escape_like
from wxdata.schema.organisation import DISTRICTS, SCHOOLS, USERS, District, School, User

districts = crud.bind_entity(DISTRICTS)
schools = crud.bind_entity(SCHOOLS)
users = crud.bind_entity(USERS)
Conn = crud.Conn

schools_in_district = cached(entity=SCHOOLS)(
    by_column(SCHOOLS, "district_id", order_by=[("name", "asc")], fixed={"is_active": True},
              doc="A district's active schools, by name."))
users_of_school = by_column(USERS, "school_id", order_by=[("last_name", "asc")],
                            fixed={"is_active": True}, doc="A school's active staff, by name.")


@cached(entity=DISTRICTS)
def find_district_by_code(conn: Conn, ctx: ExecutionContext, code: str) -> Result[District, DataError]:
    """The district with this code."""
    return crud.find_one(conn, ctx, DISTRICTS, {"code": code})


@cached(entity=SCHOOLS)
def find_school_by_code(conn: Conn, ctx: ExecutionContext, code: str) -> Result[School, DataError]:
    """The school with this code."""
    return crud.find_one(conn, ctx, SCHOOLS, {"code": code})


@cached(entity=USERS)
def find_user_by_email(conn: Conn, ctx: ExecutionContext, email: str) -> Result[User, DataError]:
    """The (non-deleted) user with this email, case-insensitively; never with credentials."""
    return crud.find_one(conn, ctx, USERS, {"email": {"ilike": Pattern(escape_like(email.strip()))}})


def find_user(conn: Conn, ctx: ExecutionContext, id: UUID | str) -> Result[User, DataError]:
    """The user with this id."""
    return users.find_by_id(conn, ctx, id)


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
