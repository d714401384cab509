"""manual_email: a processor without an API, asked by e-mail and confirming through a signed link.

System config (strings go through `expand_env`):
    contact_email   the processor's privacy contact (required)
    contact_name    how to address them, e.g. "Privacy team" (optional)
    reminder_days   days without confirmation before a reminder, default 3

Erasure, rectification, restriction (and lifting it) and objection each send the processor's
contact one e-mail with the minimum needed to act: who we are, what to do (the corrected values,
the objection's scope), the subject's e-mail address (the one identifier they need, nothing
else), our request reference and a confirmation link `{base_url}/v1/callbacks/manual/{token}`.
The token is derived from our secret and (request, system, action), so every retry computes the
same link; only its sha256 is stored, as the task's external id (`job_id` gives it to the fan-out
before the e-mail goes out). The action is `pending` until the processor confirms on that page
(api/callbacks/manual_confirm.py), which signals the task's workflow; its polls of `status` send a reminder
once `reminder_days` have passed since the last e-mail. An e-mail the relay (or the database) does
not take for now leaves the task pending with nothing on record, and the next poll sends it: a
relay down for an hour delays the processors asked meanwhile, and no longer leaves them to staff.
So does an e-mail another attempt holds (the outbox's `busy`), for as long as it holds it. What the e-mails say, in the words and
citations of the request's law: activities/processor_mail.py.

Erasure under a legal-claims hold that reaches the processor's categories sends nothing and needs
attention: the processor cannot be asked to destroy what the hold keeps.

Each e-mail goes out once through the outbox (activities/outbox.py): the `manual_tasks` row (or a
reminder's count) is written when the message is marked sent, so a committed row means sent and a
retry sends nothing, and a crash outside the SMTP transaction never sends twice. The Message-ID
derives from the e-mail's key, so the outbox's one resend after a sender died inside the SMTP
transaction is recognisable as the same message.

Access and portability ask the processor for its export (`request_export`, action `access`):
the same e-mail and link, whose page takes an upload of its files instead of a confirmation
(api/callbacks/manual_confirm.py, api/callbacks/processor_uploads.py; limits in the policy's `processor_exports`).
The upload confirms the task; the request's response waits for it (or for staff to resolve the
task), and the package takes the files from there (activities/processor_exports.py), so `access`
itself reads nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import datetime
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any
from zoneinfo import ZoneInfo

import aiosmtplib

from activities.connectors import expand_env
from activities.connectors.base import (
    AccessRecord,
    ActionHook,
    ActionOutcome,
    Connector,
    ConnectorEnv,
    ErasureContext,
    HeldRecord,
    PermanentConnectorError,
    Subject,
)
from activities.connectors.manual_email_message import Addressee, processor_message
from activities.errors import TRANSIENT_DB_ERRORS, failure_message, refused_for_good
from activities.outbox import OnSent, Sent, send_once
from activities.processor_mail import (
    REMINDER_PURPOSE,
    REQUEST_PURPOSE,
    SCOPES,
    TITLES,
    WITHDRAWAL_PURPOSE,
)
from dsrflow.crypto.hashing import keyed_hash
from dsrflow.domain.audit import append_event
from dsrflow.infra.writes import Write
from dsrflow.stores.lifts_outstanding_store import lifts_told, lifts_told_then

TOKEN_PURPOSE = "manual-confirm"
# The first check of a task whose e-mail did not go, in seconds (a relay's restart takes seconds;
# at 60, the chaos suite's 4-second one delayed each processor asked meanwhile by 65 s); later ones
# back off from there (workflows/system_task.py): an hour's outage delays it about as long again.
_UNSENT_CHECK = 15
# What keeps an e-mail from going for now: the relay unreachable, gone or answering 4yz, the
# database down as the outbox claims it (TRANSIENT_DB_ERRORS holds OSError: refused, reset, timed
# out). A relay's 5yz refusal (`refused_for_good`) stays an error.
_NOT_YET: tuple[type[BaseException], ...] = (aiosmtplib.SMTPException, *TRANSIENT_DB_ERRORS)
# Why a task's e-mail is not on record when another attempt holds its claim (`Sent.BUSY`).
_BUSY = "another attempt holds it, perhaps one a crash or a database restart cut off"


class _NotYet(Exception):
    """An e-mail that did not go for now (`_NOT_YET`); its message says why, for the task's note."""

# The audit event of each e-mail to the processor.
_EVENT_TYPES = {REQUEST_PURPOSE: "processor.asked", REMINDER_PURPOSE: "processor.reminded",
                WITHDRAWAL_PURPOSE: "processor.withdrawn"}
# How many files a processor uploaded for the task (an access task answered without any: it holds no data).
_EXPORTED = "(SELECT count(*) FROM processor_exports e WHERE e.external_id = m.external_id) AS exported_files"

def confirmation_token(secret: bytes, request_id: str, system: str, action: str) -> str:
    """The link token of one action of one request at one system (hex); never stored."""
    return keyed_hash(secret, TOKEN_PURPOSE, request_id, system, action)


def external_id_for(token: str) -> str:
    """What is stored instead of the token: its sha256 (hex)."""
    return hashlib.sha256(token.encode()).hexdigest()


class ManualEmailConnector(Connector):
    answers_later = True

    def __init__(self, env: ConnectorEnv) -> None:
        self.env = env
        self.name = env.system_name
        try:
            config = expand_env(env.system.config)
        except KeyError as exc:  # an unset ${VAR}: retrying will not set it
            raise PermanentConnectorError(f"system {self.name}: {exc.args[0]}") from None
        contact = str(config.get("contact_email") or "").strip()
        if "@" not in parseaddr(contact)[1] or parseaddr(contact)[1] != contact:
            raise PermanentConnectorError(
                f"system {self.name}: the manual_email connector needs config.contact_email, one e-mail address"
            )
        self.contact_email = contact
        self.contact_name = str(config["contact_name"]).strip() if config.get("contact_name") else None
        if self.contact_name is not None and not self.contact_name.isprintable():
            # A line break in it was a ValueError from the To header at each e-mail's composing,
            # retried as a passing failure and naming neither the system nor the key to change.
            raise PermanentConnectorError(f"system {self.name}: config.contact_name must be one line of text")
        try:
            self.reminder_days = int(config.get("reminder_days", 3))
        except (TypeError, ValueError):
            self.reminder_days = 0
        if self.reminder_days < 1:
            raise PermanentConnectorError(f"system {self.name}: config.reminder_days must be a whole number >= 1")
        if env.pool is None or env.mailer is None:
            raise PermanentConnectorError(f"system {self.name}: the manual_email connector needs the database and mail")

    # -- the Connector interface -----------------------------------------------------------

    def job_id(self, subject: Subject, action: str) -> str | None:
        """The task's external id, known before the e-mail goes out (so the task row exists when
        the processor follows the link)."""
        if action not in TITLES:
            return None
        return external_id_for(self._token(subject.request_id, action))

    async def erase(self, subject: Subject, context: ErasureContext | None = None) -> ActionOutcome:
        held = self._holds(context)
        if held:
            # Art. 17(3)(e): asking the processor to erase would destroy what the hold keeps. Kept
            # whole, as a processor without datasets is (activities/fanout.py), so that the letter
            # says so with its reason and remedies, and the processor is asked when the hold ends
            # (activities/deferred_processors.py). Before, the task waited for staff, whose
            # "resolve" left a letter saying the processor had been told of the erasure.
            outcome = ActionOutcome(status="done", message="kept under a legal-claims hold")
            outcome.held = [HeldRecord("all", "all", "legal_claims", hold, None) for hold in held]
            return outcome
        return await self._ask(subject, "erase")

    async def rectify(self, subject: Subject, corrections: dict[str, str], *,
                      before_commit: ActionHook | None = None) -> ActionOutcome:
        if not corrections:
            return ActionOutcome(status="needs_attention",
                                 message="the request names no corrections to send to the processor")
        return await self._ask(subject, "rectify")

    async def restrict(self, subject: Subject, *, before_commit: ActionHook | None = None) -> ActionOutcome:
        return await self._ask(subject, "restrict")

    async def lift_restriction(self, subject: Subject, *,
                               before_commit: ActionHook | None = None) -> ActionOutcome:
        return await self._ask(subject, "lift_restriction")

    async def object(self, subject: Subject, scope: str, *,
                     before_commit: ActionHook | None = None) -> ActionOutcome:
        if scope not in SCOPES:
            raise PermanentConnectorError(f"system {self.name}: unknown objection scope {scope!r}")
        return await self._ask(subject, "object", scope=scope)

    async def request_export(self, subject: Subject) -> ActionOutcome:
        """Access and portability: ask the processor to upload its export of the subject's data."""
        return await self._ask(subject, "access")

    async def status(self, subject: Subject, external_id: str) -> ActionOutcome:
        """Done once the processor confirmed; else a reminder once `reminder_days` passed since the last
        e-mail, still pending; ended on a request closed unanswered (its link takes no answer now)."""
        async with self.env.pool.acquire() as conn:
            row = await conn.fetchrow(
                f"SELECT m.*, {_EXPORTED} FROM manual_tasks m WHERE external_id = $1 AND system = $2",
                external_id, self.name)
            due = None if row is None or row["confirmed_at"] is not None or subject.closed else await conn.fetchrow(
                """SELECT * FROM manual_tasks WHERE external_id = $1 AND confirmed_at IS NULL
                     AND coalesce(last_reminded_at, sent_at) <= now() - make_interval(days => $2)""",
                external_id, self.reminder_days,
            )
            if due is not None:
                number = int(due["reminders"]) + 1
                told = await lifts_told_then(conn, subject.request_id, self.name, due["action"])
                message = await self._compose(
                    conn, subject, REMINDER_PURPOSE, due["action"], scope=None,
                    key=f"{subject.request_id}:{REMINDER_PURPOSE}:{self.name}:{due['action']}:{number}",
                    extra={"reminder_number": number, "first_sent_at": due["sent_at"], **told},
                    in_reply_to=due["message_id"],
                )
        if row is not None and row["confirmed_at"] is not None:
            return self._confirmed(row)
        if subject.closed:  # its link takes no answer now: nothing can come, the task ends (asked or not)
            if row is None:
                return ActionOutcome(status="needs_attention", external_id=external_id, message=(
                    f"not e-mailed to {self.env.system.label}: the request was closed before the e-mail went"))
            return await self._withdraw(subject, row)
        if row is None:
            return await self._ask_unsent(subject, external_id)
        if due is None:
            return self._pending(row["action"], external_id)

        async def record(c: Any, marked: Write) -> None:
            counted = Write("""UPDATE manual_tasks SET reminders = $2, last_reminded_at = now()
                               WHERE external_id = $1 AND reminders < $2""", (external_id, number))
            await self._audit(c, subject.request_id, due["action"], REMINDER_PURPOSE,
                              message["Message-ID"], key_suffix=str(number), along=[marked, counted])

        # Concurrent polls compute the same reminder number: one of them sends it.
        try:
            reminded = await self._send(subject, message, record) is Sent.SENT
        except _NotYet:
            return self._pending(row["action"], external_id)  # the next check reminds
        return self._pending(row["action"], external_id, reminded=reminded)

    async def _withdraw(self, subject: Subject, row: Mapping[str, Any]) -> ActionOutcome:
        """The processor was asked and has not confirmed, and its request closed unanswered: it is told
        once (the outbox's key) that the request is withdrawn and not to act on it, and the task ends.
        Not a restriction: it stays in force wherever it is carried out (the closing letter says so)."""
        action, external_id = row["action"], row["external_id"]
        ended = (f"not answered: the request was closed before {self.env.system.label} confirmed the "
                 f"{TITLES[action]}, and its link takes no answer any more")
        if action in ("restrict", "lift_restriction"):
            return ActionOutcome(status="needs_attention", external_id=external_id, message=ended)
        async with self.env.pool.acquire() as conn:
            message = await self._compose(
                conn, subject, WITHDRAWAL_PURPOSE, action, scope=None,
                key=f"{subject.request_id}:{WITHDRAWAL_PURPOSE}:{self.name}:{action}",
                extra={"first_sent_at": row["sent_at"]}, in_reply_to=row["message_id"])

        async def record(c: Any, marked: Write) -> None:
            await self._audit(c, subject.request_id, action, WITHDRAWAL_PURPOSE, message["Message-ID"], along=[marked])

        try:
            sent = await self._send(subject, message, record)
        except _NotYet as not_yet:
            sent, why = Sent.BUSY, str(not_yet)
        else:
            why = _BUSY
        if sent is Sent.BUSY:  # the task's next check sends it (a told task checks at its next poll)
            return ActionOutcome(status="pending", external_id=external_id, poll_after_seconds=_UNSENT_CHECK, message=(
                f"{ended}; not yet told that the request is withdrawn ({why}): the task's next check tells it"))
        return ActionOutcome(status="needs_attention", external_id=external_id,
                             message=f"{ended}; told by e-mail that the request is withdrawn, not to act on it")

    async def access(self, subject: Subject) -> AsyncIterator[AccessRecord]:
        """Nothing to read: the processor's uploaded export goes into the package as its files."""
        return
        yield  # an async generator that yields nothing

    async def close(self) -> None:
        return None

    # -- e-mail ------------------------------------------------------------------------------

    def _holds(self, context: ErasureContext | None) -> list[str]:
        """Ids of the legal-claims holds that reach this processor's categories (all, if the
        policy names none for its recipient)."""
        if context is None:
            return []
        recipient = self.env.policy.recipients.get(self.env.system.recipient or "")
        categories = set(recipient.categories) if recipient else set()
        return [hold.id for hold in context.legal_holds
                if hold.categories is None or not categories or categories & set(hold.categories)]

    async def _ask_unsent(self, subject: Subject, external_id: str) -> ActionOutcome:
        """A task with no e-mail on record: `_ask` could not send it yet, so it asks now (or again at
        the next check)."""
        action = next((action for action in TITLES if self.job_id(subject, action) == external_id), None)
        if action is None:
            return ActionOutcome(status="needs_attention", external_id=external_id,
                                 message=f"no e-mail to {self.env.system.label} is on record for this task")
        return await self._ask(subject, action)

    def _token(self, request_id: str, action: str) -> str:
        return confirmation_token(self.env.secret, request_id, self.name, action)

    async def _ask(self, subject: Subject, action: str, *, scope: str | None = None) -> ActionOutcome:
        token = self._token(subject.request_id, action)
        external_id = external_id_for(token)
        key = f"{subject.request_id}:{REQUEST_PURPOSE}:{self.name}:{action}"
        async with self.env.pool.acquire() as conn:
            existing = await conn.fetchrow(
                f"SELECT m.*, {_EXPORTED} FROM manual_tasks m WHERE request_id = $1 AND system = $2 AND action = $3",
                subject.request_id, self.name, action,
            )
            if existing is not None:  # sent by an earlier attempt
                return self._confirmed(existing) if existing["confirmed_at"] else self._pending(action, external_id)
            lifts = await lifts_told(conn, subject.request_id, self.name, action)
            message = await self._compose(conn, subject, REQUEST_PURPOSE, action, scope=scope, key=key, extra=lifts)

        supersedes = lifts.get("supersedes", [])

        async def record(c: Any, marked: Write) -> None:
            task = Write(
                """INSERT INTO manual_tasks (request_id, system, action, external_id, contact_email, message_id)
                   VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (request_id, system, action) DO NOTHING""",
                (subject.request_id, self.name, action, external_id, self.contact_email, message["Message-ID"]))
            # A task that waited with its e-mail unsent says so on record (a poll's pending result
            # is not stored again): staff now read that the processor was asked.
            told = Write("""UPDATE system_tasks SET message = $3, updated_at = now()
                            WHERE request_id = $1 AND external_id = $2 AND status = 'pending'""",
                         (subject.request_id, external_id, self._pending(action, external_id).message))
            await self._audit(c, subject.request_id, action, REQUEST_PURPOSE, message["Message-ID"],
                              along=[marked, task, told], supersedes=[lift["id"] for lift in supersedes])

        try:
            sent = await self._send(subject, message, record)
        except _NotYet as not_yet:
            # Nothing on record but the outbox's `failed`: the task waits as if asked, and its
            # checks (`status`) send the e-mail once the relay takes it. Retried here, a relay
            # down for minutes ran out the task's attempts and left every processor asked
            # meanwhile waiting for staff.
            return self._pending(action, external_id, unsent=str(not_yet))
        if sent is Sent.BUSY:
            # Another attempt may be asking the processor right now: the task waits as if asked, and
            # its next check finds the e-mail on record or sends it. The outbox can answer `busy` for
            # 7 minutes (a claim whose sender a PostgreSQL restart may have cut off,
            # outbox.SENDER_LIFETIME): raised, as before, it ran out the task's attempts (about 4
            # minutes) and left the task to staff, the processor never asked (hCS: a worker killed
            # as it asked, PostgreSQL restarted before the retry).
            return self._pending(action, external_id, unsent=_BUSY)
        return self._pending(action, external_id)

    async def _send(self, subject: Subject, message: EmailMessage, record: OnSent) -> Sent:
        """`send_once`; `_NotYet` if the relay (or the database) did not take it for now."""
        try:
            return await send_once(self.env.pool, self.env.mailer, str(message["Message-ID"]), message,
                                   request_id=subject.request_id, on_sent=record)
        except _NOT_YET as exc:
            if refused_for_good(exc):
                raise
            raise _NotYet(failure_message(exc)) from exc

    async def _compose(
        self, conn: Any, subject: Subject, purpose: str, action: str, *, scope: str | None, key: str,
        extra: dict[str, Any] | None = None, in_reply_to: str | None = None,
    ) -> EmailMessage:
        return await processor_message(
            conn, self.env, Addressee(self.contact_email, self.contact_name, self.reminder_days), subject, purpose,
            action, scope=scope, key=key, token=self._token(subject.request_id, action), extra=extra,
            in_reply_to=in_reply_to)

    async def _audit(self, conn: Any, request_id: str, action: str, purpose: str, message_id: str,
                     key_suffix: str = "", along: Sequence[Write] = (), supersedes: Sequence[str] = ()) -> None:
        await append_event(
            conn, event_key=f"{request_id}:{purpose}:{self.name}:{action}" + (f":{key_suffix}" if key_suffix else ""),
            request_id=request_id, event_type=_EVENT_TYPES[purpose],
            actor="workflow",
            data={"system": self.name, "action": action, "to": self.contact_email, "message_id": message_id,
                  **({"supersedes": list(supersedes)} if supersedes else {})},
            along=along,
        )

    def _pending(self, action: str, external_id: str, *, reminded: bool = False,
                 unsent: str | None = None) -> ActionOutcome:
        if unsent is not None:
            return ActionOutcome(
                status="pending", external_id=external_id, unsent=True, poll_after_seconds=_UNSENT_CHECK,
                message=f"not yet e-mailed {self.env.system.label} to carry out the {TITLES[action]} ({unsent}): "
                "the task's next check sends it")
        what = "reminded" if reminded else "asked"
        return ActionOutcome(
            status="pending", external_id=external_id,
            message=f"{what} {self.env.system.label} ({self.contact_email}) by e-mail to carry out the "
            f"{TITLES[action]}; waiting for their confirmation",
        )

    def _confirmed(self, row: Mapping[str, Any]) -> ActionOutcome:
        confirmed: datetime = row["confirmed_at"]
        if row["action"] != "access":
            what = f"confirmed the {TITLES[row['action']]}"
        elif row["exported_files"]:
            what = f"sent its export ({row['exported_files']} file{'' if row['exported_files'] == 1 else 's'})"
        else:
            what = "said it holds no personal data about the subject"
        # In the controller's timezone, as every time staff read (the console, the evidence pack).
        local = confirmed.astimezone(ZoneInfo(self.env.policy.defaults.timezone))
        return ActionOutcome(status="done", external_id=row["external_id"],
                             message=f"{self.env.system.label} {what} on {local:%Y-%m-%d %H:%M %Z}")


__all__ = ["ManualEmailConnector", "confirmation_token", "external_id_for"]
