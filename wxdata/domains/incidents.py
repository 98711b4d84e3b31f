"""Witness statements and follow-up actions of incident reports.

Each entity is exposed as one bound set of the generic data functions (:class:`wxdata.crud.Ops`).
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.incidents import (
    FOLLOW_UP_ACTIONS,
    WITNESS_STATEMENTS,
    FollowUpAction,
    WitnessStatement,
)

witness_statements = bind_entity(WITNESS_STATEMENTS)
follow_up_actions = bind_entity(FOLLOW_UP_ACTIONS)

__all__ = [
    "FollowUpAction",
    "WitnessStatement",
    "follow_up_actions",
    "witness_statements",
]
