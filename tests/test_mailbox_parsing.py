"""Reading e-mails anyone can write: malformed headers, encoded-words, huge bodies, deep nesting,
dangerous attachments and forged dates, and the suggestions the policy's phrases give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dsrflow.domain.inbound_mail import (
    HEADER_BYTES,
    HTML_PER_TEXT_CHAR,
    MAX_DEPTH,
    content_fingerprint,
    parse_message,
    received_at_for,
)
from policy.mailbox import load_mailbox_policy

RULES = load_mailbox_policy()


def parse(raw: bytes):
    return parse_message(raw, RULES.limits, RULES.refusal)


def test_malformed_headers_and_encoded_words_are_read_not_fatal():
    raw = (b"From: =?utf-8?B?w4lsb2TDqWU=?= <Elodie@Example.COM>\r\n"
           b"Subject: =?x-unknown-charset?Q?caf=E9?= =?utf-8?Q?droit_d=27acc=C3=A8s?=\r\n"
           b"Date: not a date at all\r\n"
           b"Message-ID: <<<broken\r\n"
           b"To: \"unterminated <privacy@onetagger.com>\r\n"
           b"X-Long: " + b"a" * 5000 + b"\r\n"
           b"Subject-Injection: x\r\n\r\nJe demande un droit d'acc\xe8s.\r\n")
    mail = parse(raw)
    assert mail.sender == "elodie@example.com" and mail.sender_name == "Élodée"
    assert "droit d'accès" in mail.subject and "\n" not in mail.subject
    assert mail.date is None and mail.message_id is None
    assert "acc" in mail.text  # latin-1 bytes in a part declared utf-8: replaced, not fatal
    assert RULES.suggest(mail.subject, mail.text).type == "access"


def test_no_usable_sender_is_noted():
    mail = parse(b"From: undisclosed-recipients:;\r\nSubject: hi\r\n\r\nhello\r\n")
    assert mail.sender is None and any("no usable sender" in n for n in mail.notes)


def test_html_only_mail_is_read_as_text():
    raw = (b"From: a@example.com\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
           b"<html><body><script>alert(1)</script><p>L&ouml;schen Sie <b>meine Daten</b></p></body></html>")
    mail = parse(raw)
    assert "Löschen Sie meine Daten" in mail.text and "<b>" not in mail.text
    assert RULES.suggest("", mail.text).language == "de"


def test_html_only_mail_is_read_as_text_only_as_far_as_the_text_kept_needs():
    """A 5 MB HTML-only message (within the 25 MiB a message may have) was read whole as text,
    about 0.7 s of the worker's CPU a megabyte, before its text was cut at the limit. Only the
    first HTML_PER_TEXT_CHAR times the text limit is read now, with a note."""
    budget = RULES.limits.text_chars * HTML_PER_TEXT_CHAR
    body = "<p>Please erase my data.</p>" + "<p>filler</p>" * (5_000_000 // 13) + "<p>THE END</p>"
    mail = parse(b"From: a@example.com\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + body.encode())
    assert mail.text.startswith("Please erase my data.") and "THE END" not in mail.text
    assert f"only the first {budget} characters of the HTML were read as text: read the rest in the mailbox" \
        in mail.notes
    short = parse(b"From: a@example.com\r\nContent-Type: text/html\r\n\r\n<p>Erase me.</p>")
    assert short.text.strip() == "Erase me." and short.notes == []


def test_a_huge_message_keeps_its_headers_and_a_note():
    raw = b"From: big@example.com\r\nSubject: huge\r\n\r\n" + b"x" * (RULES.limits.message_bytes + 1)
    mail = parse(raw)
    assert mail.sender == "big@example.com" and mail.subject == "huge" and mail.text == ""
    assert any("only its headers were kept" in n for n in mail.notes)


def test_poison_headers_are_read_in_bounded_time_and_never_stop_the_reader():
    """Mail anyone can send, each of which stopped the mailbox reader (attacker audit): a Subject of
    40,000 folded encoded words (legal, passed by relays; the header parser's time and memory grow
    with its square: half a megabyte took seconds and gigabytes), a Date in year 9999 at -2359
    (past the calendar in UTC), and a From of 600 nested comments (RecursionError). Each is filed,
    with what was cut or could not be read noted; the rest of the message is read."""
    # 2,000 words here (30 KB): the parser is given at most HEADER_BYTES of any header.
    folded = b"Subject: " + b"\r\n ".join([b"=?utf-8?q?a?="] * 2_000)
    mail = parse(b"From: Ada <ada@example.com>\r\n" + folded + b"\r\nDate: Fri, 31 Dec 9999 23:59:59 -2359"
                 b"\r\n\r\nPlease erase my data.")
    assert mail.sender == "ada@example.com" and mail.date is None
    assert mail.subject.startswith("aaaa") and len(mail.subject) < HEADER_BYTES // 15  # one "a" per 15 bytes kept
    assert "Please erase my data." in mail.text and any("were cut" in note for note in mail.notes)
    comments = parse(b"From: " + b"(" * 600 + b"x@example.com\r\nSubject: hi\r\n\r\nbody")
    assert comments.sender is None and comments.subject == "hi"


def test_long_text_is_cut_at_the_limit():
    raw = b"From: a@example.com\r\n\r\n" + b"word " * RULES.limits.text_chars
    mail = parse(raw)
    assert len(mail.text) == RULES.limits.text_chars and any("cut" in n for n in mail.notes)


def test_deeply_nested_multiparts_stop_at_a_depth():
    body = b"Please delete my data"
    for level in range(200):
        boundary = f"b{level}".encode()
        body = (b"Content-Type: multipart/mixed; boundary=" + boundary + b"\r\n\r\n--" + boundary + b"\r\n"
                + (body if level else b"Content-Type: text/plain\r\n\r\n" + body) + b"\r\n--" + boundary + b"--\r\n")
    mail = parse(b"From: a@example.com\r\n" + body)
    assert mail.text == "" and any(f"deeper than {MAX_DEPTH}" in n for n in mail.notes)


def _with_attachment(filename: str, content_type: str, data: bytes) -> bytes:
    import base64

    return (b"From: a@example.com\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
            b"--B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
            b"--B\r\nContent-Type: " + content_type.encode() + b"\r\nContent-Disposition: attachment; filename=\""
            + filename.encode() + b"\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.encodebytes(data) + b"--B--\r\n")


@pytest.mark.parametrize(("filename", "content_type", "why"), [
    ("invoice.pdf.exe", "application/pdf", ".exe"),
    ("letter.docm", "application/octet-stream", ".docm"),
    ("run.txt", "application/x-sh", "application/x-sh"),
    ("install.JS", "text/plain", ".js"),
])
def test_dangerous_attachments_are_refused_and_noted(filename, content_type, why):
    mail = parse(_with_attachment(filename, content_type, b"MZ\x90\x00"))
    [attachment] = mail.attachments
    assert attachment.data is None and why in attachment.refused
    assert any(filename in n for n in mail.notes) and mail.text.startswith("see attached")


def test_allowed_attachments_are_kept_within_the_size_limit():
    kept = parse(_with_attachment("id-card.pdf", "application/pdf", b"%PDF-1.7 ok"))
    assert kept.attachments[0].data == b"%PDF-1.7 ok" and kept.attachments[0].refused is None
    big = parse(_with_attachment("scan.pdf", "application/pdf", b"0" * (RULES.limits.attachment_bytes + 1)))
    assert big.attachments[0].data is None and "larger than" in big.attachments[0].refused


def test_a_forged_date_does_not_move_the_clock():
    arrived = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    tolerance = timedelta(hours=RULES.date_tolerance_hours)
    # Sent an hour before it arrived: the Date is the receipt.
    assert received_at_for(arrived - timedelta(hours=1), arrived, tolerance) == arrived - timedelta(hours=1)
    # From the future (would start the clock late) or years ago (overdue on arrival): the arrival.
    assert received_at_for(datetime(2099, 1, 1, tzinfo=UTC), arrived, tolerance) == arrived
    assert received_at_for(datetime(1999, 1, 1, tzinfo=UTC), arrived, tolerance) == arrived
    assert received_at_for(None, arrived, tolerance) == arrived
    assert parse(b"From: a@example.com\r\nDate: Mon, 2 Mar 2026 09:00:00 -0000\r\n\r\nx").date is None


def test_the_fingerprint_ignores_transport_headers_and_line_endings():
    raw = b"From: a@example.com\nSubject: s\nMessage-ID: <1@x>\n\nbody\n"
    relayed = b"Received: by mx\r\n" + raw.replace(b"\n", b"\r\n")
    assert content_fingerprint(raw) == content_fingerprint(relayed)
    assert content_fingerprint(raw) != content_fingerprint(raw.replace(b"body", b"other"))


@pytest.mark.parametrize(("text", "kind", "language"), [
    ("Verwijder mijn gegevens, alstublieft.", "erasure", "nl"),
    ("Je souhaite exercer mon droit d'accès.", "access", "fr"),
    ("Ich bitte um Auskunft über meine Daten.", "access", "de"),
    ("Please delete my data.", "erasure", "en"),
    ("I object to direct marketing.", "objection", "en"),
    ("Quel temps fait-il ?", None, None),
])
def test_suggestions_from_the_policys_phrases(text, kind, language):
    suggestion = RULES.suggest("", text)
    assert (suggestion.type, suggestion.language) == (kind, language)
