"""Identity verification by e-mail: a one-time code and an unguessable link.

The code and token exist in clear text only inside the e-mail. The workflow receives their keyed
hashes; the API hashes what the subject types with the same secret before asking the workflow.
"""

from __future__ import annotations

from urllib.parse import quote

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.context import ActivityContext
from activities.letters import deliver_letter, settle_letter
from activities.outbox import Sent
from dsrflow.crypto.hashing import code_hash, link_token, link_token_hash, verification_code
from policy.model import Verification
from schemas.verification import Challenge, IssueChallenge
from schemas.workflow import LetterJob


class VerificationActivities:
    def __init__(self, ctx: ActivityContext) -> None:
        self.ctx = ctx

    @activity.defn(name="issue_verification")
    async def issue_verification(self, issue: IssueChallenge) -> Challenge:
        """Create a code and link, e-mail them, return only their hashes.

        The letter for a round is keyed and sent once: a retry re-sends nothing, and returns the
        hashes of the code in it (`_secrets`).
        """
        job, secrets, challenge = await self._round(issue)
        await deliver_letter(self.ctx, job, secrets=secrets)
        return challenge

    @activity.defn(name="settle_verification_round")
    async def settle_verification_round(self, issue: IssueChallenge) -> Challenge | None:
        """A round whose step gave up while its e-mail may still have been under way (a resend the
        caller stopped waiting for, a reminder staff skipped): its challenge if the e-mail went
        after all, so that the code the subject got works (and the e-mail is on record as sent,
        code withheld, like any letter that went); None if it had not, and then it never goes.
        Retried while an attempt is still sending it."""
        job, secrets, challenge = await self._round(issue)
        settled = await settle_letter(self.ctx, job, secrets=secrets)
        if settled is Sent.BUSY:
            raise ApplicationError("the e-mail of this round is being sent right now")
        return None if settled is Sent.WITHDRAWN else challenge

    async def _round(self, issue: IssueChallenge) -> tuple[LetterJob, dict[str, str], Challenge]:
        """The round's letter, the code and link it carries, and the challenge they answer."""
        policy = await self._policy(issue.request_id)
        code, token = self._secrets(issue, policy.code_digits)
        link = f"{self.ctx.settings.base_url}/portal/requests/{issue.request_id}/verify?token={quote(token)}"
        job = LetterJob(request_id=issue.request_id, purpose=issue.purpose, key=str(issue.round),
                        params={"expires_at": issue.expires_at.isoformat(), "max_attempts": policy.max_attempts})
        return job, {"code": code, "link": link}, self._challenge(issue, code, token)

    async def _policy(self, request_id: str) -> Verification:
        """The verification rules of the policy the request was opened under."""
        row_version = await self.ctx.pool.fetchval("SELECT policy_version FROM dsr_requests WHERE id = $1", request_id)
        return (await self.ctx.policy(row_version)).policy.verification

    def _secrets(self, issue: IssueChallenge, digits: int) -> tuple[str, str]:
        """The round's code and link token. A retry after the e-mail went out would create a
        second code the subject never sees, so they are derived from the secret and the round
        rather than drawn at random: same round, same code, on any retry."""
        return (verification_code(self.ctx.secret, issue.request_id, issue.round, digits),
                link_token(self.ctx.secret, issue.request_id, issue.round))

    def _challenge(self, issue: IssueChallenge, code: str, token: str) -> Challenge:
        return Challenge(
            round=issue.round,
            code_hash=code_hash(self.ctx.secret, issue.request_id, code),
            token_hash=link_token_hash(self.ctx.secret, issue.request_id, token),
            expires_at=issue.expires_at,
        )
