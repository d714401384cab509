"""What a verification attempt is counted against on the request it names, and what the client may
still try there: the public API's verify and the portal's code form and link button
(api/public/intake.py `check_identity`). The client itself is counted before the body is read
(`count_verification`); the address's guesses when a code is compared (`guess`)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Request

from api.ratelimit import RateLimiter
from api.state import AppState
from dsrflow.crypto.hashing import link_token, verification_code
from dsrflow.crypto.keys import load_secret_key
from schemas.verification import VerifyResult


@dataclass(frozen=True)
class Attempted:
    """The workflow's answer to an attempt, and what the client may still try on the request's
    code (`count_attempt`): `left_here` more codes within `retry_after` seconds (None for a link
    we sent or an earlier e-mail's code, which are not counted so)."""

    result: VerifyResult
    left_here: int | None = None
    retry_after: int = 0

    @property
    def attempts_left(self) -> int:
        """The code's attempts left, or the client's on it where fewer: the page said the code's
        four while the client had two, and then refused the third with 429."""
        left = self.result.attempts_left
        return left if self.left_here is None else min(left, self.left_here)

    @property
    def spent_here(self) -> bool:
        """The client may try no more codes now, although the code itself is not locked."""
        return not self.result.verified and not self.result.locked and self.attempts_left == 0


# The verification e-mails sent for a request, each its round's (activities/verification.py): the
# letter's key ends with the round.
_ROUNDS_SENT = "SELECT letter_key FROM sent_letters WHERE request_id = $1 AND purpose IN ('verification', 'reminder')"


async def count_attempt(state: AppState, limiter: RateLimiter, request: Request, request_id: str, *,
                        token: str | None = None, code: str | None = None) -> tuple[int, int] | None:
    """Count an attempt against this client on the request's latest code (`hit_request`: what it
    may still try, and until when), so that one client cannot spend a code's attempts and lock it;
    a new code sent (the portal's "Send me a new code", staff's, the reminder) is counted apart, as
    the code's own attempts start again with it. Counted on the request alone, the subject's own
    wrong codes left the new code they had asked for refused (429) for the hour. What limits
    guesses over every code and request is the address's allowance (`guess`), which no new code
    gives back. A link one of our e-mails carried is not counted (None): its token cannot be
    guessed, and after wrong codes it is the way on the page offers; any other token is. Nor is
    the code of an earlier e-mail (one a newer code replaced), which the workflow counts no attempt
    of either (workflows/verification.py EARLIER_CODE): codes are derived, so the API can tell one
    we sent from a guess (one in 10^digits)."""
    secret = load_secret_key(state.settings)
    rounds = [int(row["letter_key"].rsplit(":", 1)[1]) for row in await (await state.db()).fetch(_ROUNDS_SENT, request_id)]
    # Round 1 before any e-mail is on record: the first code's e-mail reaches the subject a moment
    # before its record, and attempts in between were counted on a round 0 of their own, a client
    # spending the first code's allowance twice (three clean-clone runs met it).
    latest = max(rounds, default=1)
    if token is not None and any(hmac.compare_digest(link_token(secret, request_id, r), token) for r in rounds):
        return None
    if code is not None and any(hmac.compare_digest(verification_code(secret, request_id, r, len(code)), code)
                                for r in rounds if r != latest):
        return None
    return await limiter.hit_request(request, "verify", request_id, str(latest))
