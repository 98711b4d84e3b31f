"""Districts, schools and users, each as a bound set of generic functions."""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.organisation import DISTRICTS, SCHOOLS, USERS, District, School, User

districts = bind_entity(DISTRICTS)
schools = bind_entity(SCHOOLS)
users = bind_entity(USERS)

__all__ = ["District", "School", "User", "districts", "schools", "users"]
