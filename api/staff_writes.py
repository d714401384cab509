"""What staff do on a request that is not a workflow update, with the role each needs: team work
(assignments, internal notes, saved views), deferred erasures, resuming a request whose workflow
ended, the direct-marketing suppression list; and the idempotency keys the console opens requests under. The console and the REST API
read these as they read api/staff_actions.py's table for the workflow's updates.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field

from api.read_models.staff_reach import READABLE_BY
from dsrflow.stores.lifts_by_hand import LIFT_NOTE_MAX
from dsrflow.stores.mailbox_store import CONVERT_KEY
from dsrflow.stores.staff_tokens import LastAdmin, OutlivesCreator
from dsrflow.stores.team_store import NOTE_MAX
from schemas.plain_text import StaffLine, StaffText
from schemas.staff_tokens import LONGEST_LIFETIME

# The idempotency keys the console opens requests under, in the staff's one key space
# (dsrflow/stores/requests_store.py): an Inbox message converted (`mailbox:<message id>`, which
# dsrflow/stores/mailbox_store.py `finish_interrupted_converts` takes as that message's request)
# and the new-request form's submission (`console:<submission>`). Refused as a REST caller's own
# `Idempotency-Key` (api/rest/staff_requests.py): an agent who sent `mailbox:<id>` with any
# request had the message recorded as converted into it, and it left the Inbox unanswered.
NEW_REQUEST_KEY = "console:"
CONSOLE_KEYS = (CONVERT_KEY, NEW_REQUEST_KEY)


# Staff's team work on a request: not workflow updates, so not StaffActions. The workflow neither
# knows nor needs who works on a request, internal notes never reach the subject, and both hold
# for closed requests too: they are Postgres writes beside the request (dsrflow/stores/team_store.py),
# each an audit event, run by the console (api/console/team.py) and the REST API (api/rest/team.py)
# with the lowest role each needs, from here. Any member of staff may hand work on or take it.
TEAM_ROLES = {"assign": "agent", "note": "agent", "save-view": "agent", "delete-view": "agent"}

# An erasure a hold deferred, once a processor asked after the hold ended did not carry it out
# (dsrflow/stores/deferred_store.py): asking it again, or recording it as done by other means, is
# compliance's, who also read them (READABLE_BY). Postgres writes too: the request closed long
# before; run by the console (api/console/deferred.py) and REST (api/rest/deferred_erasures.py).
DEFERRED_ROLES = {"read": READABLE_BY["deferred-erasures"], "retry": "compliance", "settle": "compliance"}

# A request whose workflow ended while it was open (dsrflow/domain/request_resume.py): resuming it
# carries it on from where it stopped, and what it does again takes effect once; deciding that the
# cause is fixed is compliance's, who answer for the request's steps (retry-step). Not a workflow
# update either: there is no workflow running to take one. Run by the console
# (api/console/request_resume.py) and REST (api/rest/request_resume.py).
RESUME_ROLE = "compliance"

# A subject's dispute of the accuracy of data a correction did not correct (dsrflow/stores/
# accuracy_disputes.py): recorded against the refusal compliance answers for, as its evidence, by
# compliance (admins too). An audit event, not a workflow update: the request is decided. Run by
# the console (api/console/accuracy_disputes.py) and REST (api/rest/accuracy_disputes.py).
DISPUTE_ROLE = "compliance"


class ResumeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: StaffText = Field(min_length=1, max_length=NOTE_MAX,
                             description="why it may carry on now (the cause that ended it, and how it was "
                                         "fixed); kept in the audit trail, never sent to the subject",
                             examples=["The mail relay refused staff alerts; its allow-list is fixed."])

# A held lift handed to staff to carry out by hand (activities/held_lifts.py): recording that they
# did is compliance's, as resolving a task is (api/staff_actions.py `resolve-task`). An audit event
# beside the closed request (dsrflow/stores/lifts_by_hand.py), run by the console
# (api/console/lifts_by_hand.py) and REST (api/rest/lifts_by_hand.py).
LIFT_BY_HAND_ROLE = "compliance"


class LiftByHandBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    system: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$", description="the system's id, as the timeline's "
                        "'tell it the restriction has ended' line and the request page's list name it",
                        examples=["email_marketing"])
    note: StaffText = Field(min_length=1, max_length=LIFT_NOTE_MAX,
                           description="how and when it was lifted; kept in the audit trail and the evidence pack, "
                                       "never sent to the subject",
                           examples=["Asked their DPO by phone on 7 December; they confirmed the flag is off."])

# The direct-marketing suppression list (dsrflow/stores/suppressions_store.py): any member of staff
# may ask whether addresses are on it (an agent before importing contacts); taking one off, once
# its subject consented to marketing again, is compliance's, who answer for the objection. Run by
# REST (api/rest/suppressions.py) and the console (api/console/suppressions.py).
SUPPRESSION_ROLES = {"check": "agent", "lift": "compliance"}
SUPPRESSION_CHECK_MAX = 1000  # addresses in one check
CONSENT_MIN, CONSENT_MAX = 10, 2000


class SuppressionLiftBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: EmailStr
    consent: StaffText = Field(min_length=CONSENT_MIN, max_length=CONSENT_MAX, description=(
        "how and when the subject consented to direct marketing again: kept in the audit trail"),
        examples=["Subscribed again through the newsletter form on 3 December 2026 (double opt-in confirmed)"])


# Staff tokens: an admin's (api/rest/tokens.py, api/console/tokens.py), as `dsrflow token create`
# is the server's. The body both read.
TOKEN_ROLE = "admin"


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"role": "agent", "label": "Support desk, Ghent", "expires_in_days": 90}]})
    role: Literal["agent", "compliance", "admin"]
    label: StaffLine | None = Field(None, min_length=1, max_length=200,
                                     description="who or what the token is for: one line, shown with the "
                                                 "token's role wherever its holder acted")
    expires_in_days: int | None = Field(None, ge=1, le=LONGEST_LIFETIME.days,
                                        description="days the token works; DSRFLOW_TOKEN_DAYS (90) when left out")

    def lifetime(self, default_days: int) -> timedelta:
        """How long the token works: the days asked for, else `default_days` (DSRFLOW_TOKEN_DAYS)."""
        return timedelta(days=self.expires_in_days or default_days)


def outlives_words(refused: OutlivesCreator) -> str:
    """Why a token created with a token is refused the lifetime asked for (REST's 422, the
    console's form): the limit and its date, and where a longer one comes from."""
    expires = f"{refused.expires_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    fits = (f"at most {refused.days} day{'s' if refused.days != 1 else ''}" if refused.days
            else "within a day: no number of days fits")
    return (f"a token created with your token cannot outlive it: yours expires on {expires}, so {fits}. "
            "A longer-lived token is issued at the server (dsrflow token create)")


def last_admin_words(token_id: str, refused: LastAdmin, *, with_descendants: bool) -> str:
    """Why a revocation is refused (REST's 409; the console says it in its words): which admin
    tokens in force it would take, leaving none, and what to do instead."""
    if not with_descendants:
        return (f"token {token_id} is the last admin token in force: revoked, no one could manage staff tokens "
                "over the API. Create another admin token first (POST /v1/tokens), or revoke it on the server "
                "with dsrflow token revoke")
    return (f"revoking token {token_id} with the tokens it created would leave no admin token in force: it would "
            f"take the admin tokens {', '.join(refused.admins)}. Create another admin token first, with a token "
            "not among them or at the server (dsrflow token create), or revoke them on the server with dsrflow "
            "token revoke --with-descendants")
