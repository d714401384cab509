"""`dsrflow letters` as the README's tour and a developer use it: the local sink's letters listed by
request and kind, and read as their reader sees them, the text decoded (a quoted-printable body,
non-ASCII words and lines longer than 76 characters whole again)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from activities.letter_message import compose_letter
from activities.letter_templates import RenderedLetter
from policy.model import load_policy

REPO = Path(__file__).resolve().parents[1]
LONG = ("Nous avons effacé vos données personnelles de nos systèmes et de ceux de nos sous-traitants, "
        "comme le prévoit l'article 17 du RGPD.")


def _keep(home: Path, request_id: str, purpose: str, text: str, n: int) -> Path:
    """A letter composed as the worker composes it, kept as the sink keeps it."""
    message = compose_letter(load_policy().policy, RenderedLetter(subject=f"Votre demande ({purpose})", text=text,
                                                                  html=f"<p>{text}</p>"),
                             recipient="ada@example.com", message_id=f"<{uuid.uuid4()}@test>",
                             request_id=request_id, purpose=purpose, language="fr")
    path = home / "mail" / f"{n:020d}-{n:08x}.eml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(message.as_bytes(policy=message.policy.clone(linesep="\r\n")))  # as SMTP carried it
    return path


def _letters(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli.main", "letters", *args], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "DSRFLOW_HOME": str(home), "COLUMNS": "300"}, timeout=60)


def test_letters_are_listed_by_request_and_kind_and_read_as_text(tmp_path):
    ada, grace = str(uuid.uuid4()), str(uuid.uuid4())
    ack = _keep(tmp_path, ada, "acknowledgement", "Nous avons bien reçu votre demande.", 1)
    response = _keep(tmp_path, ada, "response", LONG + "\n", 2)  # a rendered letter ends its last line
    _keep(tmp_path, grace, "response", "Grace's answer.", 3)

    listed = _letters(tmp_path, "list", "--request", ada)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split("  ")[0] for line in lines] == [str(ack), str(response)]  # oldest first, Grace's left out
    assert "response" in lines[1] and "Votre demande (response)" in lines[1]
    assert _letters(tmp_path, "list", "--request", ada, "--purpose", "verification").stdout == ""

    read = _letters(tmp_path, "read", "--request", ada, "--purpose", "response")
    assert read.returncode == 0, read.stderr
    assert LONG in read.stdout  # decoded and whole, where the raw body is wrapped and escaped
    assert LONG not in response.read_text()
    assert "Subject: Votre demande (response)" in read.stdout and "To: ada@example.com" in read.stdout
    assert "<p>" not in read.stdout and "=C3" not in read.stdout and "--===" not in read.stdout
    # Its last line as written: the CR of the CRLF that ends it was shown as a stray "\ufffd".
    assert read.stdout.endswith(LONG + "\n") and "\ufffd" not in read.stdout

    by_file = _letters(tmp_path, "read", str(ack))
    assert by_file.returncode == 0 and "Nous avons bien reçu votre demande." in by_file.stdout


def test_nothing_to_read_is_said_with_what_was_asked_for(tmp_path):
    rid = str(uuid.uuid4())
    _keep(tmp_path, rid, "acknowledgement", "Reçu.", 1)
    none = _letters(tmp_path, "read", "--request", rid, "--purpose", "response")
    assert none.returncode == 1
    assert f"no letter of kind response for request {rid} in {tmp_path / 'mail'}" in none.stderr
    missing = _letters(tmp_path, "read", str(tmp_path / "nowhere.eml"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr and "nowhere.eml" in missing.stderr
    assert "Traceback" not in none.stderr + missing.stderr
    # Any bytes parse as a message: a file that is not a letter was printed with blank headers, exit 0.
    (tmp_path / "ids.txt").write_text(f"{rid}\n")
    not_a_letter = _letters(tmp_path, "read", str(tmp_path / "ids.txt"))
    assert not_a_letter.returncode == 1 and "ids.txt is not a letter" in not_a_letter.stderr
    assert "From: -" not in not_a_letter.stdout


def test_what_a_letter_holds_is_shown_not_obeyed_by_the_terminal(tmp_path):
    """The sink keeps any mail sent to it on loopback: an escape sequence in a subject line or a
    body (clear the screen, set the window's title) is printed as a mark, not sent to the terminal."""
    rid = str(uuid.uuid4())
    _keep(tmp_path, rid, "acknowledgement", "Before\x1b[2J\x1b]0;owned\x07after.", 1)
    for shown in (_letters(tmp_path, "read", "--request", rid).stdout, _letters(tmp_path, "list").stdout):
        assert "\x1b" not in shown and "\x07" not in shown
    read = _letters(tmp_path, "read", "--request", rid).stdout
    assert "Before\ufffd[2J\ufffd]0;owned\ufffdafter." in read
