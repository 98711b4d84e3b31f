"""Witness statements and follow-up actions of incident reports.

One binding per entity (:class:`wxdata.crud.Ops`), each with every generic operation.
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
