"""The `dsrflow` commands as a new user meets them: a letter read as the sink really keeps it, a
command run outside the checkout or with a typo, a database `dsrflow migrate` never reached, a
draft written where it cannot be."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg

from activities.letter_message import compose_letter
from activities.letter_templates import RenderedLetter
from devstack.processes import free_port
from devstack.smtp_sink import MailSink
from dsrflow.settings import Settings
from policy.model import load_policy
from tests.conftest import database_pool
from tests.support import stored_request

REPO = Path(__file__).resolve().parents[1]


def _dsrflow(*args: str, cwd: Path = REPO, **env: str) -> subprocess.CompletedProcess[str]:
    """A command as typed in a terminal whose environment names no DSRFLOW_ variable but `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DSRFLOW_", "SMTP_", "TEMPORAL_"))}
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=cwd, capture_output=True, text=True,
                          env={**clean, "COLUMNS": "300", **env}, timeout=60)


def test_a_letter_the_sink_received_reads_without_marks_at_its_line_ends(tmp_path):
    """SMTP carries lines ending in CRLF and the sink keeps them so: `letters read` printed each
    carriage return as a replacement mark, at the end of every line of every real letter."""
    rid = str(uuid.uuid4())
    text = "Hello,\n\nRequest reference: QDG548NWTP\nWe have now completed your request."
    message = compose_letter(load_policy().policy, RenderedLetter(subject="Our response", text=text, html="<p>x</p>"),
                             recipient="ada@example.com", message_id=f"<{rid}@test>", request_id=rid,
                             purpose="response", language="en")
    sink = MailSink(tmp_path / "mail", free_port())
    sink.start()
    try:
        with smtplib.SMTP("127.0.0.1", sink.port) as smtp:
            smtp.send_message(message)
    finally:
        sink.stop()
    assert b"\r\n" in next((tmp_path / "mail").glob("*.eml")).read_bytes()

    read = _dsrflow("letters", "read", "--request", rid, DSRFLOW_HOME=str(tmp_path))
    assert read.returncode == 0, read.stderr
    assert "\ufffd" not in read.stdout and "\r" not in read.stdout
    assert "\nRequest reference: QDG548NWTP\nWe have now completed your request.\n" in read.stdout + "\n"


def test_a_home_without_mail_and_a_typo_are_named_not_answered_with_nothing(tmp_path):
    """`letters list` printing nothing is what the README's tour waits on: from another directory
    (DSRFLOW_HOME is ./.dsrflow), or with a kind misspelt, it waited for ever."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    outside = _dsrflow("letters", "list", "--purpose", "verification", cwd=elsewhere)
    assert outside.returncode == 2
    assert outside.stderr.startswith(f"error: {elsewhere / '.dsrflow' / 'mail'} does not exist")
    assert "export the DSRFLOW_HOME it was started with" in outside.stderr

    (tmp_path / "mail").mkdir()
    home = {"DSRFLOW_HOME": str(tmp_path)}
    kind = _dsrflow("letters", "list", "--purpose", "processor-request", **home)
    assert kind.returncode == 2 and "--purpose: no letter kind 'processor-request'" in kind.stderr
    assert "processor_request" in kind.stderr
    request = _dsrflow("letters", "read", "--request", "QDG548NWTP", **home)  # a reference, not the id
    assert request.returncode == 2 and "--request: expected a request's id (a UUID), got 'QDG548NWTP'" in request.stderr
    assert _dsrflow("letters", "list", "--request", str(uuid.uuid4()), "--purpose", "processor_reminder",
                    **home).returncode == 0
    assert "Traceback" not in outside.stderr + kind.stderr + request.stderr


async def test_a_database_never_migrated_is_named_in_one_line(postgres, tmp_path):
    name = f"bare_{uuid.uuid4().hex[:10]}"
    await postgres.ensure_database(name)
    for command in (("token", "list"), ("requests", "stopped"), ("audit", "verify")):
        done = _dsrflow(*command, DSRFLOW_DATABASE_URL=postgres.url(name), DSRFLOW_HOME=str(tmp_path))
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert "does not exist): if DSRFLOW_DATABASE_URL names dsrflow's database, run `dsrflow migrate` first" \
            in done.stderr


async def test_migrate_outside_the_checkout_keeps_the_stacks_secret(postgres, tmp_path):
    """Run where `make run` was not, `dsrflow migrate` made a new secret in ./.dsrflow and hashed
    every request's identities with it: staff no longer found a subject's requests by address."""
    async with database_pool(postgres, "newuser") as (url, pool):
        stack = Settings(DSRFLOW_HOME=tmp_path / "checkout" / ".dsrflow", DSRFLOW_DATABASE_URL=url)
        rid = await stored_request(pool, stack, "newuser")
        hashed = await pool.fetchval("SELECT subject_email_key FROM dsr_requests WHERE id = $1", uuid.UUID(rid))
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()

        done = _dsrflow("migrate", cwd=elsewhere, DSRFLOW_DATABASE_URL=url)
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.startswith(f"error: {elsewhere / '.dsrflow' / 'secret'} does not exist, yet the "
                                      f"database holds requests")
        assert "nothing was changed" in done.stderr
        assert not (elsewhere / ".dsrflow" / "secret").exists()
        assert await pool.fetchval("SELECT subject_email_key FROM dsr_requests WHERE id = $1", uuid.UUID(rid)) == hashed

        in_checkout = _dsrflow("migrate", cwd=tmp_path / "checkout", DSRFLOW_DATABASE_URL=url)
        assert in_checkout.returncode == 0, in_checkout.stderr


async def test_a_draft_written_where_it_cannot_be_or_misnamed_is_refused(postgres, tmp_path):
    """`policy draft -o` into a directory that does not exist printed Python's traceback; a
    --system the policy would refuse as a name was drafted all the same."""
    name = f"people_{uuid.uuid4().hex[:10]}"
    await postgres.ensure_database(name)
    conn = await asyncpg.connect(postgres.url(name))
    try:
        await conn.execute("CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL)")
    finally:
        await conn.close()
    named = _dsrflow("policy", "draft", "--database-url", postgres.url(name), "--system", "People DB",
                     DSRFLOW_HOME=str(tmp_path))  # drafted, it did not load once pasted into the policy
    assert named.returncode == 2 and named.stdout == ""
    assert named.stderr == ("error: --system: a system's name in the policy is lower-case letters, digits and _ "
                            "(got 'People DB')\n")
    target = tmp_path / "drafts" / "people.yaml"
    done = _dsrflow("policy", "draft", "--database-url", postgres.url(name), "--system", "people", "-o", str(target),
                    DSRFLOW_HOME=str(tmp_path))
    assert done.returncode == 2, done.stderr
    assert done.stderr == f"error: --output: cannot write {target}: No such file or directory\n"
    (tmp_path / "drafts").mkdir()
    written = _dsrflow("policy", "draft", "--database-url", postgres.url(name), "--system", "people", "-o", str(target),
                       DSRFLOW_HOME=str(tmp_path))
    assert written.returncode == 0 and "people:" in target.read_text()


def test_the_version_is_asked_as_anywhere_else():
    from importlib.metadata import version

    done = _dsrflow("--version")
    assert done.returncode == 0 and done.stdout == f"dsrflow {version('dsrflow')}\n", done.stderr
