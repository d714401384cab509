"""Identity verification inside a request's workflow: a one-time code and link by e-mail, a
reminder, limited attempts, expiry. Only hashes of the code and link are ever held here.

Deterministic like the workflow that owns it: the activities it runs and the timers it sets are
the workflow's own commands, in the order the workflow has always issued them.

The audit records of an attempt (`verification.succeeded`, `failed`, `locked`) and of a resent
code are owed steps (workflows/owed_steps.py): the judgement stands the moment it is made, the
record follows as an activity task, and the request goes on only once its success is on record.
Run inside the update, as before VERIFICATION_OWED, a record that failed failed the update: the
subject was told of an error although their code had been accepted, and the request went on
with no `verification.succeeded` in its audit trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from schemas.requests import RequestStatus
    from schemas.verification import Challenge, IssueChallenge, VerificationState, VerifyAttempt, VerifyResult
    from schemas.workflow import RequestFacts
    from workflows.dsr_steps import (
        CALLER_WAITS,
        MAILING,
        SHORT,
        STEP_FAILURES,
        describe_failure,
        event_record,
        run_step,
    )
    from workflows.owed_steps import ANSWER_WITHIN, OwedStep, OwedSteps, record
    from workflows.step_trouble import StepTroubles

# workflow.patched id. Before it: a verification's records ran inside its updates (above); a resend
# whose e-mail failed left `issuing` set, so every later attempt waited forever (the request then
# closed unverified while the subject typed the right code); an attempt waited for a reminder the
# relay refused as long as it waited for staff, although the current code was still the one.
VERIFICATION_OWED = "verification-owed"
# workflow.patched id: before it, a resend retried its e-mail for the policy's threshold (15 min)
# while the caller (a subject on the portal, an agent) waited; now it gives up after CALLER_WAITS
# and says so (nothing changed: the current code stays).
RESEND_BOUNDED = "resend-bounded"
# workflow.patched id: before it, a round whose step ended without its code (a resend the caller
# stopped waiting for, a reminder staff skipped) was forgotten, although an attempt still under way
# could e-mail it afterwards: the subject then typed a code the request counted as wrong. Now the
# round is settled (`_settle`): its code works too if it went, and it never goes if it had not; a
# later round gets a number of its own, never the settled round's code again.
LATE_CODE = "late-code-settled"
# workflow.patched id: before it, too many wrong codes locked the e-mail's link too, so a stranger
# holding the request's reference (a forwarded status link) could type five wrong codes after each
# new code, ask for new codes until none were left, and the request closed unverified. The lock
# guards the six-digit code against guessing; the link's 256-bit token cannot be guessed, so it
# confirms after a lock (asked only for a link that arrives once the codes are locked).
LINK_OUTLIVES_LOCK = "link-outlives-lock"
# workflow.patched id: before it, the link of an e-mail a newer code replaced (a resend, the
# reminder), pressed before any lock, counted as a wrong code: five presses of an old e-mail's
# button locked the typed code, and the subject, who typed nothing, was told the code was wrong.
# Now it is answered as an earlier e-mail's link and costs no attempt (a forged token still counts).
# Asked only when such a link arrives, so that other histories carry no marker.
EARLIER_LINK = "earlier-link-uncounted"
# workflow.patched id: before it, the code of an e-mail a newer code replaced, typed before any lock,
# counted as a wrong code against the new one: "That code is not right", an attempt gone, for the
# code we had sent them. Now it is answered as an earlier e-mail's code and costs no attempt, as its
# link does (EARLIER_LINK). Asked only when such a code arrives.
EARLIER_CODE = "earlier-code-uncounted"
ISSUE = "issue_verification"


class IdentityVerification:
    def __init__(self, owed: OwedSteps, troubles: StepTroubles) -> None:
        self.challenge: Challenge | None = None
        self.issuing = False
        self.attempts = 0
        self.verified_at: datetime | None = None
        self.method: str | None = None
        # One attempt judged at a time, in the order they arrived (see `check`).
        self._judging = asyncio.Lock()
        self._owed = owed  # the request's owed steps: the records
        self._troubles = troubles  # the request's own failed steps: a code that could not be sent
        self._success_owed: int | None = None  # the mark of the success's owed record
        # The highest round settled (LATE_CODE): never asked for again. A round still under way
        # is, by a resend beside a reminder in trouble: the same round, so the same code.
        self._settled_round = 0
        self._settling = 0  # rounds being settled (`_settle`)
        # A code whose e-mail went after its step gave up: it works beside the current one until a
        # new code is sent.
        self._late: Challenge | None = None
        # The challenges a newer code replaced, whose link and code are told apart (EARLIER_LINK,
        # EARLIER_CODE): only hashes, as for the current one; at most one per code sent.
        self._replaced: list[Challenge] = []
        self._earlier_presses = 0  # numbers their records apart (`check`)

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
        # The request goes on once the subject's success is on record (or it was closed).
        mark = self._success_owed
        await workflow.wait_condition(lambda: mark is None or self._owed.done(mark) or closed())
        return None

    async def issue(self, request_id: str, purpose: str, expires_at: datetime,
                    give_up: timedelta | None = None) -> None:
        next_round = max(self.challenge.round if self.challenge else 0, self._settled_round) + 1
        asked = IssueChallenge(request_id=request_id, round=next_round, purpose=purpose, expires_at=expires_at)
        # The e-mail goes out inside the activity, so the subject may answer before it returns:
        # `check` waits for this flag instead of judging the new code against the old hashes.
        self.issuing = True
        try:
            challenge = await run_step(
                ISSUE, asked,
                # A reminder staff may skip (the code already sent stays valid); the first code not.
                result_type=Challenge, timeouts=MAILING, skippable=purpose == "reminder", give_up=give_up,
            )
        except Exception:
            if workflow.patched(VERIFICATION_OWED):
                self.issuing = False  # no new code went out: the current one is still the one
            self._settle(asked)
            raise
        if challenge is not None:  # None: the reminder was skipped, or the subject verified meanwhile
            self._retire(self.challenge, self._late)
            self.challenge = challenge
            self.attempts = 0
            self._late = None
        else:
            self._settle(asked)
        self.issuing = False

    def _settle(self, asked: IssueChallenge) -> None:
        """A round that ended without its code may still be e-mailed by an attempt under way (an
        activity keeps running after its step gave up on it): settle it as an owed step, which
        waits for any such attempt, then says whether the e-mail went. If it did, its code works
        beside the current one; if not, it never goes. Asked for only here, so that a request
        whose codes all go out carries no marker for it."""
        if not workflow.patched(LATE_CODE):
            return
        self._settling += 1
        self._settled_round = max(self._settled_round, asked.round)

        def settled(late: Challenge | None) -> None:
            self._settling -= 1
            if (late is not None and not self.verified_at
                    and late.round > max(self.challenge.round if self.challenge else 0,
                                         self._late.round if self._late else 0)):
                self._retire(self._late)
                self._late = late
            else:
                self._retire(late)  # it went, but a newer code had already replaced it

        self._owed.owe(OwedStep("settle_verification_round", asked, SHORT, skippable=False,
                                result_type=Challenge, then=settled))

    async def check(self, request_id: str, facts: RequestFacts, attempt: VerifyAttempt) -> VerifyResult:
        """Judge one attempt (the `verify` update)."""
        async with self._judging:
            # A code being sent makes the current one dead, so an attempt waits for it, unless it
            # could not be sent and waits for staff: then the current one is still the subject's.
            current_counts = workflow.patched(VERIFICATION_OWED)
            await workflow.wait_condition(lambda: self.challenge is not None and (
                not self.issuing or (current_counts and self._stalled())))
            challenge = self.challenge
            assert challenge is not None
            # The validator saw the count before any handler of its activation ran: attempts
            # arriving together all pass it, so the limit is enforced again here, where the
            # count is current, or concurrent guesses would be compared beyond it.
            past_lock = False
            if (self.attempts >= facts.verification_max_attempts
                    and workflow.patched("verification-attempt-lock")):
                if attempt.code_hash or not workflow.patched(LINK_OUTLIVES_LOCK):
                    return VerifyResult(verified=False, attempts_left=0, locked=True)
                past_lock = True  # a link, after the codes were locked
            method = "email_code" if attempt.code_hash else "email_link"
            verified = self._matches(challenge, attempt)
            if not verified and self._settling:
                # It may be the code of a round being settled (LATE_CODE): judged once it is.
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(lambda: not self._settling, timeout=ANSWER_WITHIN)
            if not verified and self._late is not None:
                verified = self._matches(self._late, attempt)
            if past_lock and not verified:
                # Not the current e-mail's link (an older one's): the lock is on record already,
                # and a token no one can guess needs no count of its own.
                return VerifyResult(verified=False, attempts_left=0, locked=True)
            earlier = not verified and self._earlier(attempt, code=False)
            earlier_code = not verified and self._earlier(attempt, code=True)
            if verified:
                self.verified_at = workflow.now()
                self.method = method
                if current_counts and self._issue_waits():
                    # The reminder that could not be sent is no longer needed (the code may be a
                    # resent one, sent while the reminder waited).
                    self._troubles.abandon(f"not needed: the subject verified with the code of round {challenge.round}")
            elif earlier or earlier_code:
                self._earlier_presses += 1
            else:
                self.attempts += 1
            attempts = self.attempts
            left = 0 if verified else max(facts.verification_max_attempts - attempts, 0)
            # An earlier e-mail's link or code is recorded as the refused attempt it is, marked so
            # (and with a key of its own: `failed:<round>:<attempts>` may be a wrong code's already),
            # so that the trail and the evidence pack's attempts show it beside the count it left
            # unchanged.
            failed_key, marked = (
                (f"earlier_link:{challenge.round}:{self._earlier_presses}", {"earlier_link": True}) if earlier
                else (f"earlier_code:{challenge.round}:{self._earlier_presses}", {"earlier_code": True})
                if earlier_code else (f"failed:{challenge.round}:{attempts}", {}))
            records = [event_record(request_id, "verification.succeeded", f"verified:{challenge.round}",
                                    {"method": method, **({"after_lock": True} if past_lock else {})})] if verified else [
                event_record(request_id, "verification.failed", failed_key,
                             {"method": method, "attempts_left": left, **marked})]
            if left == 0 and not verified:
                # What the lock stops (LINK_OUTLIVES_LOCK; recorded `{}` before it, the link too).
                # Not a patch of its own: asked while replaying a lock made before it, the patch
                # would stay off for that request, and its link refused after all.
                records.append(event_record(request_id, "verification.locked", f"locked:{challenge.round}",
                                            {"refuses": "codes"}))
            if current_counts:
                # Owed in the same instant as the judgement: the main line, which goes on once the
                # subject is verified, finds the success's mark to wait for.
                mark = self._owed.owe(*(record("record_event", r) for r in records))
                if verified:
                    self._success_owed = mark
        if not current_counts:  # older histories: recorded at once, inside the update
            for r in records:
                await run_step("record_event", r)
        return VerifyResult(verified=verified, attempts_left=left, locked=not verified and left == 0,
                            earlier_link=earlier, earlier_code=earlier_code)

    def _retire(self, *replaced: Challenge | None) -> None:
        """Keep the challenges a newer code replaced (EARLIER_LINK, EARLIER_CODE)."""
        self._replaced += [challenge for challenge in replaced if challenge is not None]

    def _earlier(self, attempt: VerifyAttempt, *, code: bool) -> bool:
        """The attempt's link (or, `code`, its code) is one of an e-mail a newer code replaced
        (EARLIER_LINK, EARLIER_CODE); the patch is asked only then."""
        given = attempt.code_hash if code else attempt.token_hash
        return (bool(given) and any(hmac.compare_digest(c.code_hash if code else c.token_hash, given or "")
                                    for c in self._replaced)
                and workflow.patched(EARLIER_CODE if code else EARLIER_LINK))

    @staticmethod
    def _matches(challenge: Challenge, attempt: VerifyAttempt) -> bool:
        expected, given = ((challenge.code_hash, attempt.code_hash) if attempt.code_hash
                           else (challenge.token_hash, attempt.token_hash))
        return hmac.compare_digest(expected, given or "")

    def _stalled(self) -> bool:
        """A code being sent failed and waits for staff (or its own retry): none went out."""
        return self.issuing and self._issue_waits()

    def _issue_waits(self) -> bool:
        """A code the main line sends (the first, a reminder) failed and waits."""
        trouble = self._troubles.current
        return trouble is not None and trouble.step == ISSUE and self._troubles.waiting

    def validate(self, status: RequestStatus, facts: Callable[[], RequestFacts], attempt: VerifyAttempt) -> None:
        """Refuse an attempt that cannot count (the `verify` update's validator). After too many
        wrong codes a code is refused, the e-mail's link not (LINK_OUTLIVES_LOCK)."""
        if self.verified_at:
            # Its status follows once the success is on record.
            raise ValueError("request is not awaiting verification: the identity is verified already")
        if status != RequestStatus.awaiting_verification:
            raise ValueError(f"request is not awaiting verification (status {status.value})")
        if self.challenge is None and (not self.issuing or self._stalled()):
            raise ValueError("no verification code has been sent yet; try again in a moment")
        if self.attempts >= facts().verification_max_attempts and not self.issuing and attempt.code_hash:
            raise ValueError("verification is locked after too many wrong codes: the code no longer works; the "
                             "link in the e-mail still does, or ask for a new code")
        if self.challenge is not None and workflow.now() >= self.challenge.expires_at:
            raise ValueError("the verification code has expired")

    async def resend(self, request_id: str, actor: str) -> None:
        """A new code and link; the earlier ones stop working and attempts reset."""
        expires_at = self.challenge.expires_at if self.challenge else workflow.now()
        try:
            await self.issue(request_id, "verification", expires_at,
                             give_up=CALLER_WAITS if workflow.patched(RESEND_BOUNDED) else None)
        except STEP_FAILURES as error:
            if not workflow.patched(VERIFICATION_OWED):
                raise
            # Staff and the subject are told why, not "Activity task failed".
            late = ", and should the new e-mail still arrive, its code works too" if self._settling else ""
            raise ApplicationError(f"the new code could not be sent ({describe_failure(error)[0]}); nothing "
                                   f"changed: the code sent earlier stays as it was{late}") from None
        assert self.challenge is not None
        resent = event_record(request_id, "verification.resent", f"resent:{self.challenge.round}", {}, actor)
        if workflow.patched(VERIFICATION_OWED):
            self._owed.owe(record("record_event", resent))
        else:
            await run_step("record_event", resent)

    def codes_sent(self) -> int:
        """Codes asked for so far: every round, sent or settled."""
        return max(self.challenge.round if self.challenge else 0, self._settled_round)

    def state(self, facts: RequestFacts) -> VerificationState:
        return VerificationState(
            required=not facts.attested,
            verified_at=self.verified_at,
            method=self.method or ("attested" if facts.attested else None),
            attempts_left=max(facts.verification_max_attempts - self.attempts, 0),
            locked=self.attempts >= facts.verification_max_attempts,
            expires_at=self.challenge.expires_at if self.challenge else None,
            round=self.challenge.round if self.challenge else 0,
            codes_left=max(facts.verification_max_codes - self.codes_sent(), 0),
        )
