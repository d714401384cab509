"""What reading a hostile processor's answer costs the worker: the largest answer the size cap lets
in (32 MB), crafted against the scan that measures a JSON document's depth before it is parsed
(activities/connectors/bounded_http.py). The scan's string pattern looked for each string's
closing quote past its escapes: on an answer of unclosed strings it failed at every quote and
read the rest of the answer from each, quadratic (80 KB took 18 s of CPU, 32 MB days: the shared
worker's other requests starved while one task read), and on a string of escapes it kept a
backtracking entry per escape (2 GB of memory for 32 MB). A valid answer of tiny values
(`[{},{},...]`, `[[[]],[[]],...]`) cost about a gigabyte, half in the scan's pieces of text, half
in what the parser made of it; now past one value for each 16 bytes of the cap it is refused by
a count taken in the same scan, which reads the text a slice at a time. Each body is read by the
real reader in a process of its own (a fork of one that imported the reader), so its CPU time and
peak memory are its own; the reader is killed past a minute."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

import pytest

from activities.connectors.bounded_http import ANSWER_BYTES, VALUE_BYTES

HALF = ANSWER_BYTES // 2
MORE = f"holds more than {ANSWER_BYTES // VALUE_BYTES:,} JSON values"

# name -> (Python expression building the body, what the reader says of it).
BODIES = {
    "unclosed strings with escaped quotes": ("b'\"' + b'\\\\\"' * (HALF - 1)", "is not valid JSON"),
    "a quote and a backslash, again and again": ("b'\"\\\\' * HALF", "is not valid JSON"),
    "one string of escapes, closed": ("b'[\"' + b'\\\\a' * (HALF - 4) + b'\"]'", "is not valid JSON"),
    "quotes only": ("b'\"' * ANSWER_BYTES", "is not valid JSON"),
    # The depth scan's most passes over the most brackets the count lets through, then a string to
    # the cap; no comma between them, so json.loads stops early. Past the count, refused by it.
    "lists 32 deep, side by side": ("(b'[' * 32 + b']' * 32) * ((VALUES - 1) // 32) + b'\"' + b'a' * (ANSWER_BYTES // 2)",
                                    "is not valid JSON"),
    "lists 32 deep, side by side, to the cap": ("(b'[' * 32 + b']' * 32) * (ANSWER_BYTES // 64)", MORE),
    "a list nested 16 million deep": ("b'[' * HALF + b']' * HALF", "is JSON nested deeper than 32 levels"),
    # Valid JSON of the values Python holds at the highest cost for their bytes (about 1 GB each).
    "empty objects": ("b'[' + b'{},' * (ANSWER_BYTES // 3 - 1) + b'{}]'", MORE),
    "lists holding an empty list": ("b'[' + b'[[]],' * (ANSWER_BYTES // 5 - 1) + b'[[]]]'", MORE),
    "objects holding an empty object": ("b'[' + b'{\"a\":{}},' * (ANSWER_BYTES // 9 - 1) + b'{}]'", MORE),
    "two-letter strings": ("b'[' + b'\"ab\",' * (ANSWER_BYTES // 5 - 1) + b'\"ab\"]'", MORE),
    # As many of the costliest values as the count lets through, the rest of the cap one string:
    # read, for about 240 MB.
    "objects holding an empty object, to the count": (
        "b'[' + b'{\"a\":{}},' * (VALUES // 4 - 1) + b'\"' + b'a' * (ANSWER_BYTES - 9 * (VALUES // 4) - 2) + b'\"]'",
        "read"),
}

# One process imports the reader once (0.55 s of CPU, which each of the twelve bodies paid again when
# each had a process started for it) and forks a child for each body: the child is still a process
# of its own, whose CPU time (`process_time` starts at zero in a fork) and peak memory (measured from
# its start, as before) are its body's alone.
_SERVE = """
import json, os, resource, sys, time, traceback
import httpx
from activities.connectors.bounded_http import ANSWER_BYTES, VALUE_BYTES, NotJson, json_document
NAMES = {"ANSWER_BYTES": ANSWER_BYTES, "HALF": ANSWER_BYTES // 2, "VALUES": ANSWER_BYTES // VALUE_BYTES}
for line in sys.stdin:
    child = os.fork()
    if child:
        os.waitpid(child, 0)
        continue
    try:
        print(json.dumps({"pid": os.getpid()}), flush=True)
        body = eval(json.loads(line), dict(NAMES))
        assert len(body) <= ANSWER_BYTES
        answer = httpx.Response(200, content=body, headers={"content-type": "application/json"})
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.process_time()
        try:
            json_document(answer)
            said = "read"
        except NotJson as exc:
            said = str(exc)
        cpu = time.process_time() - started
        grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(json.dumps({"said": said, "cpu": cpu, "grew_mb": grew / 1024}), flush=True)
    except BaseException:
        print(json.dumps({"error": traceback.format_exc()}), flush=True)
    os._exit(0)
"""


class Reader:
    """The process of `_SERVE`: `read` sends it a body's expression and returns what the body's
    child said, or None if the child took more than `timeout` seconds (it is then killed)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _SERVE], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.pending = b""

    def _line(self, deadline: float) -> dict | None:
        assert self.proc.stdout is not None
        while b"\n" not in self.pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                return None
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
            assert chunk, f"the reader process ended ({self.proc.poll()})"
            self.pending += chunk
        line, _, self.pending = self.pending.partition(b"\n")
        return json.loads(line)

    def read(self, body: str, timeout: float) -> dict | None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(body).encode() + b"\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        started = self._line(deadline)
        assert started is not None, "the reader did not fork a child"
        said = self._line(deadline)
        if said is None:
            os.kill(started["pid"], signal.SIGKILL)
        return said

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def reader():
    reader = Reader()
    yield reader
    reader.close()


@pytest.mark.parametrize("name", list(BODIES))
def test_the_largest_hostile_answer_is_read_in_bounded_time_and_memory(reader, name):
    body, said = BODIES[name]
    read = reader.read(body, timeout=60)
    if read is None:
        pytest.fail(f"{name}: reading a {ANSWER_BYTES // 2**20} MB answer took more than a minute")
    assert "error" not in read, read.get("error")
    assert read["said"] == said
    # Measured at under 0.5 s and 50 MB on this machine's kind for the worst refused, 1 s and about
    # 240 MB for the one read; the margin is for a machine shared with others' work.
    assert read["cpu"] < 10, f"{name}: {read['cpu']:.1f} s of CPU"
    assert read["grew_mb"] < 600, f"{name}: {read['grew_mb']:.0f} MB more memory"
