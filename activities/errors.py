"""Which failures retrying can cure, and which it cannot.

A step that can only fail must not be retried for ever in silence: the worker's interceptor
(`ClassifyingInterceptor`, wired in workers/dsr_worker.py) turns every deterministic error an
activity raises into a non-retryable `ApplicationError` that carries its message, so the step
fails at once and the workflow flags the request for staff (workflows/dsr_steps.py); so is a mail
relay's permanent refusal (a 5yz reply). Transient failures (database, SMTP, a processor or
Temporal unreachable) propagate unchanged and are retried with backoff. An error of neither list
keeps the old behaviour, retried, and the workflow's attention threshold still bounds how long
that goes unnoticed.
"""

from __future__ import annotations

from typing import Any

import aiosmtplib
import asyncpg
import jinja2
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from schemas.plain_text import without_addresses

# The database is restarting, unreachable or shedding load (connection classes 08, 53, 57, and
# 40: a serialisation failure or deadlock succeeds when tried again).
TRANSIENT_DB_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, timed out (TimeoutError is an OSError)
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # the connection went away under the query
    asyncpg.InternalClientError,  # ... or in mid-protocol (seen when a restart ends the backend)
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, crash shutdown, starting up
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,
)

# Mistakes in data, policy or code: the same input fails the same way on every attempt.
DETERMINISTIC_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,  # includes pydantic's ValidationError and a bad country or date
    LookupError,  # KeyError, IndexError, a request or policy entry that does not exist
    TypeError,
    AttributeError,
    NotImplementedError,
    jinja2.TemplateError,  # a letter that cannot render
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.exceptions.SyntaxOrAccessError,  # a missing table or column: a migration not applied
)


def is_deterministic(exc: BaseException) -> bool:
    return (isinstance(exc, DETERMINISTIC_ERRORS) and not isinstance(exc, TRANSIENT_DB_ERRORS)) or \
        refused_for_good(exc)


def refused_for_good(exc: BaseException) -> bool:
    """The mail relay's permanent refusal: a 5yz reply (RFC 5321 4.2.1), to every recipient when
    it answers each. The same message is refused again (a mailbox that does not exist, a sender the
    relay does not accept, a policy rejection), so the letter's step waits for staff at once instead
    of retrying until the attention threshold. 4yz replies and lost connections stay transient."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(refused_for_good(r) for r in exc.recipients)
    return isinstance(exc, aiosmtplib.SMTPResponseException) and 500 <= exc.code < 600


def failure_message(exc: BaseException) -> str:
    """What staff read about a failed step: the error's kind and message, without a traceback (a
    relay's refusal as its replies: "550 5.1.1 mailbox unavailable")."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        text = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
    elif isinstance(exc, aiosmtplib.SMTPResponseException):
        text = f"{exc.code} {exc.message}"
    else:
        text = str(exc).strip() or "no message"
    # Without the addresses a relay's refusal quotes: this goes into Temporal's history in clear.
    return without_addresses(f"{type(exc).__name__}: {text}")[:500]


class _ClassifyingActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except ApplicationError:
            raise  # classified where it was raised
        except Exception as exc:
            if not is_deterministic(exc):
                raise
            raise ApplicationError(failure_message(exc), type=type(exc).__name__, non_retryable=True) from exc


class ClassifyingInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ClassifyingActivityInbound(next)
