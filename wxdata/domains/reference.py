"""Reference and configuration data.

One binding per entity (:class:`wxdata.crud.Ops`), each with every generic operation.
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.reference import (
    ALERT_RULES,
    BUDGET_CATEGORIES,
    INTEGRATION_CONFIGS,
    MESSAGE_TEMPLATES,
    POLICY_DOCUMENTS,
    SYSTEM_CONFIGS,
    AlertRule,
    BudgetCategory,
    IntegrationConfig,
    MessageTemplate,
    PolicyDocument,
    SystemConfig,
)

budget_categories = bind_entity(BUDGET_CATEGORIES)
alert_rules = bind_entity(ALERT_RULES)
message_templates = bind_entity(MESSAGE_TEMPLATES)
policy_documents = bind_entity(POLICY_DOCUMENTS)
system_configs = bind_entity(SYSTEM_CONFIGS)
integration_configs = bind_entity(INTEGRATION_CONFIGS)

__all__ = [
    "AlertRule",
    "BudgetCategory",
    "IntegrationConfig",
    "MessageTemplate",
    "PolicyDocument",
    "SystemConfig",
    "alert_rules",
    "budget_categories",
    "integration_configs",
    "message_templates",
    "policy_documents",
    "system_configs",
]
