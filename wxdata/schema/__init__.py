"""Entity specs: one declaration per table of columns, data classes and rules.

Importing this package registers the core entities; :mod:`wxdata.domains` registers the rest.
"""

from wxdata.schema.health_records import HEALTH_RECORDS, HealthRecord
from wxdata.schema.organisation import DISTRICTS, SCHOOLS, USERS, District, School, User
from wxdata.schema.spec import (
    CacheTTL,
    Column,
    DataClass,
    Entity,
    Kind,
    col,
    entity,
    lookup,
    registered,
    row,
    secret,
)
from wxdata.schema.students import STUDENTS, Student

__all__ = [
    "DISTRICTS",
    "HEALTH_RECORDS",
    "SCHOOLS",
    "STUDENTS",
    "USERS",
    "CacheTTL",
    "Column",
    "DataClass",
    "District",
    "Entity",
    "HealthRecord",
    "Kind",
    "School",
    "Student",
    "User",
    "col",
    "entity",
    "lookup",
    "registered",
    "row",
    "secret",
]
