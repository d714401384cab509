"""Contracts of a request's identity verification between its workflow, its activity and the
subject's portal: the challenge issued (`IssueChallenge`, answered with its hashes only), an
attempt at it and its answer (`VerifyAttempt`, `VerifyResult`, the `verify` update's input and
result), and the verification's part of the request's live state (`VerificationState`, within
schemas/workflow.py `RequestState`). Only hashes of a code or a link's token: the code and link
exist in clear text only in the e-mail.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Self

from pydantic import model_validator

from schemas.contract import Contract

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class IssueChallenge(Contract):
    request_id: str
    round: int
    purpose: str  # "verification" or "reminder"
    expires_at: datetime


class Challenge(Contract):
    """Only hashes: the code and link token exist in clear text only in the e-mail."""

    round: int
    code_hash: str
    token_hash: str
    expires_at: datetime


class VerifyAttempt(Contract):
    code_hash: str | None = None
    token_hash: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        given = [h for h in (self.code_hash, self.token_hash) if h is not None]
        if len(given) != 1 or not _HEX64.match(given[0]):
            raise ValueError("exactly one of code_hash or token_hash, as 64 hex characters")
        return self


class VerifyResult(Contract):
    verified: bool
    attempts_left: int
    locked: bool
    # The link of an e-mail a newer code replaced, before any lock: refused, no attempt counted.
    earlier_link: bool = False
    # The code of an e-mail a newer code replaced, before any lock: refused, no attempt counted.
    earlier_code: bool = False


class VerificationState(Contract):
    required: bool
    verified_at: datetime | None = None
    method: str | None = None
    attempts_left: int = 0
    locked: bool = False
    expires_at: datetime | None = None
    round: int = 0
    # New codes the subject may still ask for (`verification_max_codes`).
    codes_left: int = 0
