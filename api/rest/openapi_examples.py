"""Examples shown in the OpenAPI document (and tried by the fuzz test, so they must be valid)."""

from __future__ import annotations

from typing import Any

from dsrflow.domain.references import short_reference

REQUEST_ID = "3f2a9c1e-8b7d-4e21-9a55-0c6d2b9e4f10"

NEW_REQUEST: dict[str, dict[str, Any]] = {
    "erasure": {
        "summary": "Erasure received by e-mail; the subject verifies by code",
        "value": {"type": "erasure", "channel": "email", "received_at": "2026-11-20T10:00:00+01:00",
                  "subject": {"email": "ada@example.com", "name": "Ada Lovelace"}},
    },
    "access_attested": {
        "summary": "Access for a customer the agent authenticated on the phone",
        "value": {"type": "access", "channel": "phone", "identity_attested": True,
                  "subject": {"email": "grace@example.com", "customer_id": "C-000042"},
                  "client_request_id": "crm-ticket-4711"},
    },
    "rectification": {
        "summary": "Rectification of a name",
        "value": {"type": "rectification", "subject": {"email": "ada@example.com"},
                  "corrections": {"last_name": "King"}},
    },
    "objection": {
        "summary": "Objection to direct marketing, UK subject",
        "value": {"type": "objection", "regime": "uk_gdpr", "country": "GB",
                  "subject": {"email": "alan@example.co.uk"}, "objection_scope": "direct_marketing"},
    },
}

REQUEST_VIEW: dict[str, Any] = {
    "id": REQUEST_ID, "reference": short_reference(REQUEST_ID), "workflow_id": f"dsr-{REQUEST_ID}", "type": "access",
    "regime": "gdpr",
    "country": "BE", "language": "nl", "channel": "email", "origin": "staff", "status": "awaiting_approval",
    "subject": {"email": "ada@example.com", "name": "Ada Lovelace", "customer_id": None},
    "details": {}, "received_at": "2026-11-20T09:00:00Z", "due_date": "2026-12-21",
    "extended_due_date": "2027-02-22", "current_due_date": "2026-12-21", "acknowledge_by": None,
    "extended": False, "verified_at": "2026-11-20T09:14:03Z",
    "policy_version": "5d41402abc4b2a76b9719d911017c592ae2e0c6b0f6f5f7d7b0c1c3e9a1f2b3c",
    "created_at": "2026-11-20T09:00:01Z", "closed_at": None, "stopped": None, "due_dates_provisional": False,
    "overdue": False, "warnings_sent": [],
    "verification": {"required": True, "verified_at": "2026-11-20T09:14:03Z", "method": "email_code",
                     "attempts_left": 5, "locked": False, "expires_at": "2026-11-27T09:00:00Z", "round": 1},
    "plan": {"request_id": REQUEST_ID, "policy_version": "5d41402abc4b2a76b9719d911017c592ae2e0c6b0f6f5f7d7b0c1c3e9a1f2b3c",
             "request_type": "access", "tasks": [{"system": "crm", "action": "access", "connector": "sql",
                                                  "label": "CRM", "recipient": None,
                                                  "completion_timeout_days": 14, "scope": None}]},
    "results": [], "closed_reason": None, "extension_reason": None, "approval_required": True,
    "approval": None,
}


def json_response(example: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": example}}}
