"""Personal data never reaches a log line, whichever logger wrote it."""

from __future__ import annotations

import json
import logging
import re
import time

import pytest
import structlog

from dsrflow.infra.logging import REDACTED, bind_ids, configure_logging, get_logger, redact_emails
from schemas.workflow import task_workflow_id, workflow_id_for


@pytest.fixture
def production_logs(capsys):
    configure_logging(environment="production", level="info", redact_patterns=[r"CUST-\d{6}"])
    yield lambda: [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]
    structlog.contextvars.clear_contextvars()
    configure_logging(environment="development", level="info")


def test_structlog_event_is_redacted(production_logs):
    get_logger("t").info("sent letter to ada@example.com", to="ada@example.com",
                         nested={"phone": "+32 470 12 34 56", "customer": "CUST-123456"})
    (line,) = production_logs()
    text = json.dumps(line)
    assert "ada@example.com" not in text
    assert "+32 470 12 34 56" not in text
    assert "CUST-123456" not in text
    assert line["to"] == "[redacted]"


def test_stdlib_and_exceptions_are_redacted(production_logs):
    try:
        raise ValueError("no such subject bob@example.org")
    except ValueError:
        logging.getLogger("temporalio.activity").exception("activity failed for bob@example.org")
    (line,) = production_logs()
    assert "bob@example.org" not in json.dumps(line)
    assert "ValueError" in line["exception"]


def test_a_links_token_in_an_access_log_line_is_masked(production_logs, monkeypatch):
    """uvicorn's access log (off in `dsrflow api`, on if an operator runs uvicorn with it) writes
    the full path and query: a package link's, a processor link's or a verification link's token
    is masked; a route template stays readable."""
    token = "9f" * 32
    access = logging.getLogger("uvicorn.access")
    # As `dsrflow api` runs uvicorn (log_config=None): its loggers keep no handlers of their own and
    # pass every line to ours, whatever a uvicorn started with its defaults in this process left.
    monkeypatch.setattr(access, "handlers", [])
    monkeypatch.setattr(access, "propagate", True)
    access.setLevel(logging.INFO)
    try:
        for path in (f"/v1/public/packages/{token}", f"/portal/packages/{token}", f"/v1/callbacks/manual/{token}",
                     f"/portal/requests/0b6f/verify?token={token}&lang=nl"):
            access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 200)
        get_logger("t").warning("component unavailable", path="/v1/public/packages/{token}")
    finally:
        access.setLevel(logging.WARNING)
    lines = production_logs()
    assert len(lines) == 5 and token not in json.dumps(lines)
    assert lines[0]["event"] == '127.0.0.1:5000 - "GET /v1/public/packages/[redacted] HTTP/1.1" 200'
    assert "verify?token=[redacted]&lang=nl" in lines[3]["event"]
    assert lines[4]["path"] == "/v1/public/packages/{token}"


def test_ids_are_bound_to_every_line(production_logs):
    bind_ids(request_id="0b6f")
    get_logger("t").info("one")
    logging.getLogger("other").info("two")
    lines = production_logs()
    assert [line["request_id"] for line in lines] == ["0b6f", "0b6f"]


REQUEST = "0b6f3c2e-8d1a-4f57-9c3e-2a7d5e9b1c44"


@pytest.mark.parametrize("workflow_id", [workflow_id_for(REQUEST), task_workflow_id(REQUEST, "crm", "erase", 2)],
                         ids=["request", "system-task"])
def test_temporal_workflow_extras_become_ids(production_logs, workflow_id):
    """A line of a request's workflow, or of one of its system tasks', is found by request id."""
    logging.getLogger("temporalio.workflow").info(
        "timer fired", extra={"temporal_workflow": {"workflow_id": workflow_id, "run_id": "r1"}}
    )
    (line,) = production_logs()
    assert line["workflow_id"] == workflow_id
    assert line["request_id"] == REQUEST


def test_a_stdlib_lines_extras_are_kept_and_redacted(production_logs):
    """An activity's line names its request and what it is about through `extra=`: those were
    dropped, so "staff alert refused for good by the mail relay" named neither the request nor
    the relay's reply. Kept now, and redacted as the rest."""
    logging.getLogger("temporalio.activity").error(
        "staff alert refused for good by the mail relay",
        extra={"request_id": REQUEST, "reply": "554 5.7.1 <dpo@example.com> rejected by policy",
               "temporal_activity": {"workflow_id": "dsrflow-request-start-sweep", "activity_type": "sweep"}})
    (line,) = production_logs()
    assert line["request_id"] == REQUEST and line["reply"] == "554 5.7.1 <[redacted]> rejected by policy"
    assert line["activity_type"] == "sweep" and "temporal_activity" not in line


def test_other_workflows_get_no_request_id(production_logs):
    logging.getLogger("temporalio.workflow").info(
        "sweep done", extra={"temporal_workflow": {"workflow_id": "dsrflow-retention-sweep", "run_id": "r1"}})
    (line,) = production_logs()
    assert "request_id" not in line


def test_a_pathological_100_kb_line_is_redacted_in_linear_time(production_logs):
    """A client can put 100 kB of address characters in a field that ends up in a log line. The
    e-mail pattern as a regular expression backtracked over every start position (about ten
    seconds a line); the redactor must take a small fraction of that, and still find addresses."""
    hostile = ["a" * 100_000, "a" * 50_000 + "@" + "b-" * 25_000, "x@" * 50_000, "a." * 49_990 + " ada@example.com"]
    started = time.perf_counter()
    for text in hostile:
        get_logger("t").warning("unparsed input", value=text)
    elapsed = time.perf_counter() - started
    lines = production_logs()
    assert elapsed < 2.0, f"{elapsed:.1f}s to log {len(hostile)} lines of 100 kB"
    assert len(lines) == len(hostile)
    assert lines[0]["value"] == hostile[0] and lines[1]["value"] == hostile[1]
    assert lines[3]["value"] == "a." * 49_990 + " [redacted]"


@pytest.mark.parametrize("text", [
    "mail ada.lovelace+dsr@example.co.uk now", "a@b.c", "a@b.cd", "x@foo@bar.com", "a@b.com-x@evil.org",
    "@x.com", "a@.com", "a@b..com", "first@a.be, second@b.nl;third@c.fr", "end@dom.x1y.zz9",
    "IBAN BE71 0961 2345 6769 for ada@example.com", "dé@exämple.com ok@ok.io",
])
def test_linear_redactor_finds_what_the_pattern_found(text):
    """The same matches as `[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}` (leftmost, longest)."""
    pattern = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
    assert redact_emails(text) == pattern.sub(REDACTED, text)
