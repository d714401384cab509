"""Identity verification by e-mail: a one-time code and an unguessable link.

The code and token exist in clear text only inside the e-mail. The workflow receives their keyed
hashes; the API hashes what the subject types with the same secret before asking the workflow.
"""

from __future__ import annotations

from urllib.parse import quote

from temporalio import activity

from activities.context import ActivityContext
from activities.letters import deliver_letter
from dsrflow.crypto.hashing import code_hash, keyed_hash, link_token_hash
from schemas.workflow import Challenge, IssueChallenge, LetterJob


class VerificationActivities:
    def __init__(self, ctx: ActivityContext) -> None:
        self.ctx = ctx

    @activity.defn(name="issue_verification")
    async def issue_verification(self, issue: IssueChallenge) -> Challenge:
        """Create a code and link, e-mail them, return only their hashes.

        A retry after the e-mail went out would create a second code the subject never sees, so
        the letter for a round is keyed and sent once; a retry re-sends nothing and the hashes it
        returns would not match. To stay consistent the code is derived from the secret and the
        round rather than drawn at random: same round, same code, on any retry.
        """
        ctx = self.ctx
        row_version = await ctx.pool.fetchval(
            "SELECT policy_version FROM dsr_requests WHERE id = $1", issue.request_id
        )
        policy = (await ctx.policy(row_version)).policy.verification
        digits = policy.code_digits
        seed = keyed_hash(ctx.secret, "verification-seed", issue.request_id, str(issue.round))
        code = f"{int(seed[:16], 16) % 10**digits:0{digits}d}"
        token = keyed_hash(ctx.secret, "verification-token", issue.request_id, str(issue.round))
        link = (
            f"{ctx.settings.base_url}/portal/requests/{issue.request_id}/verify?token={quote(token)}"
        )
        await deliver_letter(
            ctx,
            LetterJob(
                request_id=issue.request_id, purpose=issue.purpose, key=str(issue.round),
                params={"expires_at": issue.expires_at.isoformat(), "max_attempts": policy.max_attempts},
            ),
            secrets={"code": code, "link": link},
        )
        return Challenge(
            round=issue.round,
            code_hash=code_hash(ctx.secret, issue.request_id, code),
            token_hash=link_token_hash(ctx.secret, issue.request_id, token),
            expires_at=issue.expires_at,
        )
