"""Reading an evidence pack's page as a DPO reads it: its text, a section of it, and the check
that it speaks in words (tests/test_evidence_objection.py, tests/test_evidence_unverified.py)."""

from __future__ import annotations

import html
import re

# A time on the page: in the controller's timezone (Europe/Brussels), the zone named with its offset.
LOCAL_TIME = r"\d{1,2} \w+ \d{4}, \d{2}:\d{2} CES?T \(UTC\+[12]\)"
# A time written in UTC, as the page wrote them before; "CET (UTC+1)" is no such time.
UTC_TIME = re.compile(r"\d\d:\d\d UTC(?![+\N{MINUS SIGN}])")


def readable(page: str) -> str:
    """The page's text as a reader sees it, the letters' copies left out (they are as sent)."""
    page = re.sub(r'<pre class="letter">.*?</pre>', "", page, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def section(text: str, heading: str, following: str) -> str:
    return text.split(f" {heading} ", 1)[1].split(f" {following} ", 1)[0]


def assert_reads_as_words(page: str) -> None:
    """No code, no UTC time, nothing unset in what the page says about the request, its
    verification, deadlines and decisions; no section left empty."""
    text = readable(page)
    told = section(text, "Request", "Plan")
    for wrong in ("None", "null", "_", "status.", "verification.", "{'", '{"'):
        assert wrong not in told, (wrong, told)
    assert re.search(r'<dl class="facts">\s*</dl>', page) is None
    assert not UTC_TIME.search(text) and re.search(r"\d{4}-\d{2}-\d{2}T", text) is None
