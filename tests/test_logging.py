"""Personal data never reaches a log line, whichever logger wrote it."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from dsrflow.logging import bind_ids, configure_logging, get_logger


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


def test_ids_are_bound_to_every_line(production_logs):
    bind_ids(request_id="0b6f")
    get_logger("t").info("one")
    logging.getLogger("other").info("two")
    lines = production_logs()
    assert [line["request_id"] for line in lines] == ["0b6f", "0b6f"]


def test_temporal_workflow_extras_become_ids(production_logs):
    logging.getLogger("temporalio.workflow").info(
        "timer fired", extra={"temporal_workflow": {"workflow_id": "dsr-42", "run_id": "r1"}}
    )
    (line,) = production_logs()
    assert line["workflow_id"] == "dsr-42"
    assert line["request_id"] == "42"
