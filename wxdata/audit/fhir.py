"""Audit records as FHIR R4 AuditEvent resources, following IHE Basic Audit Log Patterns (BALP).

A pure mapping: one ``audit_log`` row (a mapping of its columns) in, a list of AuditEvent resources
(plain JSON-ready dicts) out. It reads no database and adds nothing that is not in the record, so a
FHIR server, a SIEM shipper or an export can call it on rows it already holds.

BALP's rules applied here:

- ``type``/``subtype``/``action``: data access is a RESTful-style interaction (type ``rest``, subtype
  from ``restful-interaction``: read, search-type, create, update, delete); exports are DICOM 110106
  *Export*; logins and logouts DICOM 110114 *User Authentication* with subtype 110122/110123; denied
  or failed security events DICOM 110113 *Security Alert*.
- ``outcome``: 0 success, 4 minor failure (the caller's request was refused: not found, invalid),
  8 serious failure (access denied, authorisation failed), 12 major failure (server errors).
- ``purposeOfEvent`` from the context's purpose (HL7 v3 ActReason); break-glass is ``ETREAT``.
- Agents: the user (requestor, with role and network address) and wxdata itself (the application).
- **One AuditEvent per patient**: a read that disclosed several students yields one resource per
  student (BALP's rule for searches), each naming that student as the patient entity.
- ``entity.detail`` names the fields disclosed or changed; values never appear. A record of whole
  rows stores ``*`` for its fields; the detail lists the entity's readable columns in its place.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final
from uuid import UUID

from wxdata.audit.record import fields_named

DCM: Final = "http://dicom.nema.org/resources/ontology/DCM"
EVENT_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-event-type"
INTERACTION: Final = "http://hl7.org/fhir/restful-interaction"
ACT_REASON: Final = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ENTITY_TYPE: Final = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE: Final = "http://terminology.hl7.org/CodeSystem/object-role"
SOURCE_TYPE: Final = "http://terminology.hl7.org/CodeSystem/security-source-type"
PARTICIPATION: Final = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
WXDATA_ROLE: Final = "urn:wxdata:role"
WXDATA_ACTION: Final = "urn:wxdata:audit-action"

#: wxdata action -> (type system, type code, type display, subtype system, code, display, FHIR action)
_EVENTS: Final[dict[str, tuple[str, str, str, str, str, str, str]]] = {
    "READ": (EVENT_TYPE, "rest", "RESTful Operation", INTERACTION, "read", "read", "R"),
    "VIEW": (EVENT_TYPE, "rest", "RESTful Operation", INTERACTION, "read", "read", "R"),
    "CACHE_READ": (EVENT_TYPE, "rest", "RESTful Operation", INTERACTION, "read", "read", "R"),
    "PRINT": (EVENT_TYPE, "rest", "RESTful Operation", INTERACTION, "read", "read", "R"),
    "CREATE": (EVENT_TYPE, "rest", "RESTful Operation", INTERACTION, "create", "create", "C"),
    "BULK_CREATE": (EVENT_TYPE, "rest", "RESTful Operation", INTERACTION, "create", "create", "C"),
    "IMPORT": (DCM, "110107", "Import", INTERACTION, "create", "create", "C"),
    "UPDATE": (EVENT_TYPE, "rest", "RESTful Operation", INTERACTION, "update", "update", "U"),
    "BULK_UPDATE": (EVENT_TYPE, "rest", "RESTful Operation", INTERACTION, "update", "update", "U"),
    "RESTORE": (EVENT_TYPE, "rest", "RESTful Operation", INTERACTION, "update", "update", "U"),
    "DELETE": (EVENT_TYPE, "rest", "RESTful Operation", INTERACTION, "delete", "delete", "D"),
    "BULK_DELETE": (EVENT_TYPE, "rest", "RESTful Operation", INTERACTION, "delete", "delete", "D"),
    "CACHE_DELETE": (EVENT_TYPE, "rest", "RESTful Operation", INTERACTION, "delete", "delete", "D"),
    "CACHE_WRITE": (EVENT_TYPE, "rest", "RESTful Operation", INTERACTION, "update", "update", "U"),
    "EXPORT": (DCM, "110106", "Export", DCM, "110106", "Export", "R"),
    "LOGIN": (DCM, "110114", "User Authentication", DCM, "110122", "Login", "E"),
    "LOGOUT": (DCM, "110114", "User Authentication", DCM, "110123", "Logout", "E"),
    "AUTHENTICATION_FAILED": (DCM, "110114", "User Authentication", DCM, "110122", "Login", "E"),
    "TRANSACTION_COMMIT": (EVENT_TYPE, "rest", "RESTful Operation", INTERACTION, "transaction",
                           "transaction", "E"),
    "TRANSACTION_ROLLBACK": (EVENT_TYPE, "rest", "RESTful Operation", INTERACTION, "transaction",
                             "transaction", "E"),
}
_SECURITY_ALERT: Final = (DCM, "110113", "Security Alert", DCM, "110113", "Security Alert", "E")
_SECURITY_ACTIONS: Final = frozenset({
    "ACCESS_DENIED", "AUTHORIZATION_FAILED", "RATE_LIMIT_EXCEEDED", "SECURITY_ERROR",
    "BREAK_GLASS", "SERVER_ERROR", "HEALTHCARE_ERROR", "COMPLIANCE_ERROR", "APPLICATION_ERROR",
})

#: wxdata purpose -> HL7 v3 ActReason (PurposeOfUse) code and display.
PURPOSES: Final[dict[str, tuple[str, str]]] = {
    "TREATMENT": ("TREAT", "treatment"),
    "OPERATIONS": ("HOPERAT", "healthcare operations"),
    "EDUCATION": ("HOPERAT", "healthcare operations"),
    "EMERGENCY": ("ETREAT", "Emergency Treatment"),
    "COMPLIANCE": ("HCOMPL", "compliance"),
    "PARENT_REQUEST": ("FAMRQT", "family requested"),
    "REQUIRED_BY_LAW": ("HLEGAL", "legal"),
    "SYSTEM": ("HSYSADMIN", "health system administration"),
}

#: Outcome codes (R4 ``audit-event-outcome``).
SUCCESS, MINOR_FAILURE, SERIOUS_FAILURE, MAJOR_FAILURE = "0", "4", "8", "12"
_SERIOUS: Final = frozenset({"ACCESS_DENIED", "AUTHORIZATION_FAILED", "AUTHENTICATION_FAILED",
                             "RATE_LIMIT_EXCEEDED", "SECURITY_ERROR"})
_MAJOR: Final = frozenset({"SERVER_ERROR", "HEALTHCARE_ERROR", "COMPLIANCE_ERROR",
                           "APPLICATION_ERROR"})


def outcome_of(action: str, success: bool) -> str:
    """The BALP outcome code of a record: 0, 4, 8 or 12."""
    if success and action not in _SERIOUS and action not in _MAJOR:
        return SUCCESS
    if action in _MAJOR:
        return MAJOR_FAILURE
    if action in _SERIOUS:
        return SERIOUS_FAILURE
    return MINOR_FAILURE


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _instant(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def _network_type(address: str) -> str:
    """``2`` for an IP address, ``1`` for a machine name (R4 ``network-type``)."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return "1"
    return "2"


def _user_agent(row: Mapping[str, Any], purpose: list[dict[str, Any]]) -> dict[str, Any]:
    agent: dict[str, Any] = {
        "type": {"coding": [_coding(PARTICIPATION, "IRCP", "information recipient")]},
        "who": {"identifier": {"system": "urn:wxdata:user", "value": str(row.get("user_id") or "unknown")}},
        "requestor": True,
    }
    if row.get("user_name"):
        agent["who"]["display"] = str(row["user_name"])
    if row.get("user_role"):
        role = str(row["user_role"])
        agent["role"] = [{"coding": [_coding(WXDATA_ROLE, role, role.replace("_", " ").lower())]}]
    if row.get("ip_address"):
        address = str(row["ip_address"])
        agent["network"] = {"address": address, "type": _network_type(address)}
    if row.get("session_id"):
        agent["altId"] = str(row["session_id"])
    if purpose:
        agent["purposeOfUse"] = purpose
    return agent


def _system_agent(observer: str) -> dict[str, Any]:
    return {
        "type": {"coding": [_coding(DCM, "110150", "Application")]},
        "who": {"display": observer},
        "requestor": False,
    }


def _detail(kind: str, names: Sequence[str]) -> dict[str, str]:
    return {"type": kind, "valueString": ",".join(names)}


def _data_entity(row: Mapping[str, Any], action: str) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "type": _coding(ENTITY_TYPE, "2", "System Object"),
        "role": _coding(OBJECT_ROLE, "4", "Domain Resource"),
        "name": str(row.get("entity_type") or "unknown"),
    }
    if row.get("entity_id"):
        entity["what"] = {"identifier": {"system": f"urn:wxdata:{row.get('entity_type')}",
                                         "value": str(row["entity_id"])}}
    details = []
    fields = fields_named(row.get("entity_type"), row.get("fields_disclosed"))
    if fields:
        details.append(_detail("fields-disclosed", fields))
    changes = row.get("changes")
    if isinstance(changes, Mapping) and changes:
        details.append(_detail("fields-changed", sorted(str(k) for k in changes)))
    ids = list(row.get("entity_ids") or ())
    if len(ids) > 1:
        details.append({"type": "row-count", "valueString": str(len(ids))})
    details.append({"type": "wxdata-action", "valueString": action})
    entity["detail"] = details
    return entity


def _patient_entity(student_id: UUID | str) -> dict[str, Any]:
    return {
        "what": {"identifier": {"system": "urn:wxdata:students", "value": str(student_id)}},
        "type": _coding(ENTITY_TYPE, "1", "Person"),
        "role": _coding(OBJECT_ROLE, "1", "Patient"),
    }


def _subjects(row: Mapping[str, Any]) -> list[str]:
    seen: dict[str, None] = {}
    first = row.get("subject_student_id")
    if first:
        seen[str(first)] = None
    for sid in row.get("subject_ids") or ():
        seen[str(sid)] = None
    return list(seen)


def to_audit_events(row: Mapping[str, Any], *, observer: str = "wxdata") -> list[dict[str, Any]]:
    """FHIR R4 AuditEvent resources (JSON dicts) for one audit record, one per patient disclosed.

    ``row`` holds ``audit_log`` columns (``seq``, ``action``, ``created_at`` and ``success`` are
    required; the rest are used when present). A record with no student subject yields exactly one
    resource with no patient entity.
    """
    action = str(row["action"])
    event = _SECURITY_ALERT if action in _SECURITY_ACTIONS else _EVENTS.get(action, _SECURITY_ALERT)
    type_system, type_code, type_display, sub_system, sub_code, sub_display, fhir_action = event
    purpose_name = "EMERGENCY" if row.get("break_glass_reason") else str(row.get("purpose") or "")
    purpose = []
    if purpose_name in PURPOSES:
        code, display = PURPOSES[purpose_name]
        purpose = [{"coding": [_coding(ACT_REASON, code, display)]}]
    base: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "type": _coding(type_system, type_code, type_display),
        "subtype": [_coding(sub_system, sub_code, sub_display)],
        "action": fhir_action,
        "recorded": _instant(row["created_at"]),
        "outcome": outcome_of(action, bool(row["success"])),
        "agent": [_user_agent(row, purpose), _system_agent(observer)],
        "source": {
            "observer": {"display": observer},
            "type": [_coding(SOURCE_TYPE, "4", "Application Server")],
        },
    }
    if row.get("success") is False and row.get("error_message"):
        base["outcomeDesc"] = str(row["error_message"])[:200]
    if purpose:
        base["purposeOfEvent"] = purpose
    data = _data_entity(row, action)
    subjects = _subjects(row)
    seq = row["seq"]
    if not subjects:
        return [{**base, "id": f"wxdata-{seq}", "entity": [data]}]
    return [
        {**base, "id": f"wxdata-{seq}-{n}", "entity": [_patient_entity(sid), data]}
        for n, sid in enumerate(subjects)
    ]
