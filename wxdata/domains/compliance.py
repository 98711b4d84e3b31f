"""PHI disclosures, compliance reports, violations, policies and consents.

One binding per entity (:class:`wxdata.crud.Ops`), each with every generic operation.
"""

from __future__ import annotations

from wxdata.crud import bind_entity
from wxdata.schema.compliance import (
    COMPLIANCE_CHECKLIST_ITEMS,
    COMPLIANCE_REPORTS,
    COMPLIANCE_VIOLATIONS,
    CONSENT_FORMS,
    CONSENT_SIGNATURES,
    DATA_RETENTION_POLICIES,
    PHI_DISCLOSURE_AUDITS,
    PHI_DISCLOSURES,
    POLICY_ACKNOWLEDGMENTS,
    REMEDIATION_ACTIONS,
    ComplianceChecklistItem,
    ComplianceReport,
    ComplianceViolation,
    ConsentForm,
    ConsentSignature,
    DataRetentionPolicy,
    PhiDisclosure,
    PhiDisclosureAudit,
    PolicyAcknowledgment,
    RemediationAction,
)

phi_disclosures = bind_entity(PHI_DISCLOSURES)
phi_disclosure_audits = bind_entity(PHI_DISCLOSURE_AUDITS)
reports = bind_entity(COMPLIANCE_REPORTS)
checklist_items = bind_entity(COMPLIANCE_CHECKLIST_ITEMS)
violations = bind_entity(COMPLIANCE_VIOLATIONS)
remediation_actions = bind_entity(REMEDIATION_ACTIONS)
policy_acknowledgments = bind_entity(POLICY_ACKNOWLEDGMENTS)
retention_policies = bind_entity(DATA_RETENTION_POLICIES)
consent_forms = bind_entity(CONSENT_FORMS)
consent_signatures = bind_entity(CONSENT_SIGNATURES)

__all__ = [
    "ComplianceChecklistItem",
    "ComplianceReport",
    "ComplianceViolation",
    "ConsentForm",
    "ConsentSignature",
    "DataRetentionPolicy",
    "PhiDisclosure",
    "PhiDisclosureAudit",
    "PolicyAcknowledgment",
    "RemediationAction",
    "checklist_items",
    "consent_forms",
    "consent_signatures",
    "phi_disclosure_audits",
    "phi_disclosures",
    "policy_acknowledgments",
    "remediation_actions",
    "reports",
    "retention_policies",
    "violations",
]
