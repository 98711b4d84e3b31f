"""Entity specs: one declaration per table of columns, data classes and rules.

Importing this package registers every entity: the core ones re-exported here, and each area
module (``wxdata.schema.student_health``, ``.medication``, ``.messaging``...) for the rest.
"""

from wxdata.schema import (
    academic,
    alerts,
    analytics,
    clinical,
    compliance,
    contacts,
    documents,
    emergency,
    identity,
    incidents,
    inventory,
    medication,
    messaging,
    operations,
    reference,
    scheduling,
    student_health,
    sync,
)
from wxdata.schema.base import Authored, AuthoredSoftDeleted, SoftDeleted, Versioned
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
    "Authored",
    "AuthoredSoftDeleted",
    "CacheTTL",
    "Column",
    "DataClass",
    "District",
    "Entity",
    "HealthRecord",
    "Kind",
    "School",
    "SoftDeleted",
    "Student",
    "User",
    "Versioned",
    "academic",
    "alerts",
    "analytics",
    "clinical",
    "col",
    "compliance",
    "contacts",
    "documents",
    "emergency",
    "entity",
    "identity",
    "incidents",
    "inventory",
    "lookup",
    "medication",
    "messaging",
    "operations",
    "reference",
    "registered",
    "row",
    "scheduling",
    "secret",
    "student_health",
    "sync",
]
