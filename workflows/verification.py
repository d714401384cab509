"""Identity verification inside a request's workflow: a one-time code and link by e-mail, a
reminder, limited attempts, expiry. Only hashes of the code and link are ever held here.

Deterministic like the workflow that owns it: the activities it runs and the timers it sets are
the workflow's own commands, in the order the workflow has always issued them.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.requests import RequestStatus
    from schemas.workflow import (
        Challenge,
        IssueChallenge,
        RequestFacts,
        VerificationState,
        VerifyAttempt,
        VerifyResult,
    )
    from workflows.dsr_steps import MAILING, record_event, run_step


class IdentityVerification:
    def __init__(self) -> None:
        self.challenge: Challenge | None = None
        self.issuing = False
        self.attempts = 0
        self.verified_at: datetime | None = None
        self.method: str | None = None
        # One attempt judged at a time, in the order they arrived (see `check`).
        self._judging = asyncio.Lock()

    async def run(self, request_id: str, facts: RequestFacts, closed: Callable[[], bool]) -> datetime | None:
        """Send the code and wait for the subject; return the expiry instant if the window
        passed unverified (the caller closes the request), None once verified or closed."""
        expires_at = facts.received_at + timedelta(days=facts.expires_after_days)
        if workflow.now() >= expires_at:
            # Received (back-dated) longer ago than the verification window: still give the
            # subject the full window from now.
            expires_at = workflow.now() + timedelta(days=facts.expires_after_days)
        await self.issue(request_id, "verification", expires_at)
        reminder_at = workflow.now() + timedelta(days=facts.reminder_after_days)
        reminded = False
        while not self.verified_at and not closed():
            now = workflow.now()
            expires_at = self.challenge.expires_at if self.challenge else expires_at
            if now >= expires_at:
                return expires_at
            wake = reminder_at if not reminded and reminder_at < expires_at else expires_at
            round_now = self.challenge.round if self.challenge else 0

            def answered(round_now: int = round_now) -> bool:
                return (bool(self.verified_at) or closed()
                        or (self.challenge is not None and self.challenge.round != round_now))

            try:
                await workflow.wait_condition(answered, timeout=max(wake - now, timedelta(seconds=1)))
            except TimeoutError:
                if not reminded and workflow.now() >= reminder_at and workflow.now() < expires_at:
                    reminded = True
                    await self.issue(request_id, "reminder", expires_at)
        return None

    async def issue(self, request_id: str, purpose: str, expires_at: datetime) -> None:
        next_round = (self.challenge.round if self.challenge else 0) + 1
        # The e-mail goes out inside the activity, so the subject may answer before it returns:
        # `check` waits for this flag instead of judging the new code against the old hashes.
        self.issuing = True
        self.challenge = await run_step(
            "issue_verification",
            IssueChallenge(request_id=request_id, round=next_round, purpose=purpose, expires_at=expires_at),
            result_type=Challenge, timeouts=MAILING, skippable=False,
        )
        self.attempts = 0
        self.issuing = False

    async def check(self, request_id: str, facts: RequestFacts, attempt: VerifyAttempt) -> VerifyResult:
        """Judge one attempt (the `verify` update)."""
        async with self._judging:
            await workflow.wait_condition(lambda: not self.issuing and self.challenge is not None)
            challenge = self.challenge
            assert challenge is not None
            # The validator saw the count before any handler of its activation ran: attempts
            # arriving together all pass it, so the limit is enforced again here, where the
            # count is current, or concurrent guesses would be compared beyond it.
            if (self.attempts >= facts.verification_max_attempts
                    and workflow.patched("verification-attempt-lock")):
                return VerifyResult(verified=False, attempts_left=0, locked=True)
            expected, given, method = (
                (challenge.code_hash, attempt.code_hash, "email_code") if attempt.code_hash
                else (challenge.token_hash, attempt.token_hash, "email_link")
            )
            verified = hmac.compare_digest(expected, given or "")
            if verified:
                self.verified_at = workflow.now()
                self.method = method
            else:
                self.attempts += 1
            attempts = self.attempts
        if verified:
            await record_event(request_id, "verification.succeeded", f"verified:{challenge.round}", {"method": method})
            return VerifyResult(verified=True, attempts_left=0, locked=False)
        left = max(facts.verification_max_attempts - attempts, 0)
        await record_event(
            request_id, "verification.failed", f"failed:{challenge.round}:{attempts}",
            {"method": method, "attempts_left": left},
        )
        if left == 0:
            await record_event(request_id, "verification.locked", f"locked:{challenge.round}", {})
        return VerifyResult(verified=False, attempts_left=left, locked=left == 0)

    def validate(self, status: RequestStatus, facts: Callable[[], RequestFacts]) -> None:
        """Refuse an attempt that cannot count (the `verify` update's validator)."""
        if status != RequestStatus.awaiting_verification or self.verified_at:
            raise ValueError(f"request is not awaiting verification (status {status.value})")
        if self.challenge is None and not self.issuing:
            raise ValueError("no verification code has been sent yet; try again in a moment")
        if self.attempts >= facts().verification_max_attempts and not self.issuing:
            raise ValueError("verification is locked after too many wrong codes; ask for a new code")
        if self.challenge is not None and workflow.now() >= self.challenge.expires_at:
            raise ValueError("the verification code has expired")

    async def resend(self, request_id: str, actor: str) -> None:
        """A new code and link; the earlier ones stop working and attempts reset."""
        expires_at = self.challenge.expires_at if self.challenge else workflow.now()
        await self.issue(request_id, "verification", expires_at)
        assert self.challenge is not None
        await record_event(request_id, "verification.resent", f"resent:{self.challenge.round}", {}, actor)

    def state(self, facts: RequestFacts) -> VerificationState:
        return VerificationState(
            required=not facts.attested,
            verified_at=self.verified_at,
            method=self.method or ("attested" if facts.attested else None),
            attempts_left=max(facts.verification_max_attempts - self.attempts, 0),
            locked=self.attempts >= facts.verification_max_attempts,
            expires_at=self.challenge.expires_at if self.challenge else None,
            round=self.challenge.round if self.challenge else 0,
        )
