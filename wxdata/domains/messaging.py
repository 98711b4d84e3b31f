"""Conversations, participants, messages, deliveries, reads and reactions.

One binding per entity (:class:`wxdata.crud.Ops`), each with every generic operation.
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.messaging import (
    CONVERSATION_PARTICIPANTS,
    CONVERSATIONS,
    MESSAGE_DELIVERIES,
    MESSAGE_REACTIONS,
    MESSAGE_READS,
    MESSAGES,
    Conversation,
    ConversationParticipant,
    Message,
    MessageDelivery,
    MessageReaction,
    MessageRead,
)

conversations = bind_entity(CONVERSATIONS)
participants = bind_entity(CONVERSATION_PARTICIPANTS)
messages = bind_entity(MESSAGES)
deliveries = bind_entity(MESSAGE_DELIVERIES)
reads = bind_entity(MESSAGE_READS)
reactions = bind_entity(MESSAGE_REACTIONS)

__all__ = [
    "Conversation",
    "ConversationParticipant",
    "Message",
    "MessageDelivery",
    "MessageReaction",
    "MessageRead",
    "conversations",
    "deliveries",
    "messages",
    "participants",
    "reactions",
    "reads",
]
