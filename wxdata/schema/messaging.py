"""Messaging: conversations, their participants, messages, per-recipient deliveries, read
receipts and reactions.

Messages between nurses, staff and families routinely carry health information about a student:
message content is PHI and soft-deletes. Conversation containers and receipts are GENERAL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from wxdata.schema.base import SoftDeleted, Versioned
from wxdata.schema.spec import (
    CacheTTL,
    DataClass,
    col,
    created_at,
    entity,
    pk,
    row,
    updated_at,
)

P, G = DataClass.PHI, DataClass.GENERAL
CONVERSATION_TYPES = ("DIRECT", "GROUP", "CHANNEL")


@row
class Conversation(SoftDeleted):
    """A direct, group or channel conversation."""

    id: UUID = pk()
    type: str = col(G, max_length=50, choices=CONVERSATION_TYPES)
    name: str | None = col(G, max_length=255)
    description: str | None = col(G, sql="text")
    avatar_url: str | None = col(G, max_length=500)
    tenant_id: UUID = col(G)
    created_by_id: UUID = col(G, references="users")
    last_message_at: datetime | None = col(G)
    metadata: dict[str, Any] | None = col(G, has_default=True)
    is_archived: bool = col(G, has_default=True)


CONVERSATIONS = entity(Conversation, table="conversations", cache_ttl=CacheTTL.SHORT)

PARTICIPANT_ROLES = ("OWNER", "ADMIN", "MEMBER", "VIEWER")
NOTIFY_PREFERENCES = ("ALL", "MENTIONS", "NONE")


@row
class ConversationParticipant(Versioned):
    """A user's membership of a conversation, with role and read position."""

    id: UUID = pk()
    conversation_id: UUID = col(G, references="conversations")
    user_id: UUID = col(G, references="users")
    role: str = col(G, max_length=50, choices=PARTICIPANT_ROLES, has_default=True)
    joined_at: datetime = col(G, has_default=True)
    last_read_at: datetime | None = col(G)
    is_muted: bool = col(G, has_default=True)
    is_pinned: bool = col(G, has_default=True)
    custom_name: str | None = col(G, max_length=255)
    notification_preference: str = col(G, max_length=20, choices=NOTIFY_PREFERENCES,
                                       has_default=True)
    metadata: dict[str, Any] | None = col(G, has_default=True)


CONVERSATION_PARTICIPANTS = entity(
    ConversationParticipant, table="conversation_participants", cache_ttl=CacheTTL.SHORT,
    unique_together=(("conversation_id", "user_id"),),
)

MESSAGE_PRIORITIES = ("LOW", "MEDIUM", "HIGH", "URGENT")
MESSAGE_CATEGORIES = ("EMERGENCY", "HEALTH_UPDATE", "APPOINTMENT_REMINDER", "MEDICATION_REMINDER",
                      "GENERAL", "INCIDENT_NOTIFICATION", "COMPLIANCE")


@row
class Message(SoftDeleted):
    """A chat or broadcast message (content is PHI; E2E ciphertext is kept as sent)."""

    id: UUID = pk()
    conversation_id: UUID | None = col(P, references="conversations")
    subject: str | None = col(P, max_length=255)
    content: str = col(P, sql="text", clinical_text=True)
    encrypted_content: str | None = col(P, sql="text", filterable=False, sortable=False)
    is_encrypted: bool = col(P, has_default=True)
    encryption_metadata: dict[str, Any] | None = col(P)
    encryption_version: str | None = col(P, max_length=20)
    priority: str = col(P, max_length=50, choices=MESSAGE_PRIORITIES, has_default=True)
    category: str = col(P, max_length=50, choices=MESSAGE_CATEGORIES, has_default=True)
    recipient_count: int = col(P, minimum=0, has_default=True)
    scheduled_at: datetime | None = col(P)
    attachments: list[str] = col(P, has_default=True)
    sender_id: UUID = col(P, references="users")
    template_id: UUID | None = col(P, references="message_templates")
    parent_id: UUID | None = col(P, references="messages")
    thread_id: UUID | None = col(P, references="messages")
    is_edited: bool = col(P, has_default=True)
    edited_at: datetime | None = col(P)
    metadata: dict[str, Any] | None = col(P, has_default=True)


MESSAGES = entity(Message, table="messages", cache_ttl=CacheTTL.SHORT)

RECIPIENT_TYPES = ("NURSE", "PARENT", "GUARDIAN", "EMERGENCY_CONTACT", "STUDENT", "STAFF",
                   "ADMINISTRATOR")
MESSAGE_DELIVERY_STATUSES = ("PENDING", "SENT", "DELIVERED", "FAILED", "BOUNCED")
MESSAGE_CHANNELS = ("EMAIL", "SMS", "PUSH", "IN_APP")


@row
class MessageDelivery(SoftDeleted):
    """Delivery of a message to one recipient over one channel (contact details are PHI)."""

    id: UUID = pk()
    recipient_type: str = col(P, max_length=50, choices=RECIPIENT_TYPES)
    recipient_id: UUID = col(P)
    channel: str = col(P, max_length=50, choices=MESSAGE_CHANNELS)
    status: str = col(P, max_length=50, choices=MESSAGE_DELIVERY_STATUSES)
    contact_info: str | None = col(P, max_length=500)
    sent_at: datetime | None = col(P)
    delivered_at: datetime | None = col(P)
    failure_reason: str | None = col(P, sql="text")
    external_id: str | None = col(P, max_length=255)
    message_id: UUID = col(P, references="messages")


MESSAGE_DELIVERIES = entity(MessageDelivery, table="message_deliveries", cache_ttl=CacheTTL.SHORT)


@row
class MessageRead:
    """A read receipt: one per message and user."""

    id: UUID = pk()
    message_id: UUID = col(G, references="messages")
    user_id: UUID = col(G, references="users")
    read_at: datetime = col(G, has_default=True)
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()


MESSAGE_READS = entity(MessageRead, table="message_reads", cache_ttl=CacheTTL.SHORT,
                       unique_together=(("message_id", "user_id"),))


@row
class MessageReaction:
    """An emoji reaction to a message: one per message, user and emoji."""

    id: UUID = pk()
    message_id: UUID = col(G, references="messages")
    user_id: UUID = col(G, references="users")
    emoji: str = col(G, max_length=20)
    created_at: datetime = created_at()
    updated_at: datetime = updated_at()


MESSAGE_REACTIONS = entity(MessageReaction, table="message_reactions", cache_ttl=CacheTTL.SHORT,
                           unique_together=(("message_id", "user_id", "emoji"),))
