"""A rendered letter as the e-mail that carries it: plain text and HTML alternatives, the headers
that name its request and purpose, and its language. The classic email API where the recipient's
address is ASCII (a third of the modern API's CPU per letter, BENCHMARKS.md), the modern one
where SMTPUTF8 is needed."""

from __future__ import annotations

import binascii
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.utils import formataddr, formatdate

from activities.letter_templates import RenderedLetter
from policy.model import Policy


def compose_letter(policy: Policy, rendered: RenderedLetter, *, recipient: str, message_id: str, request_id: str,
                   purpose: str, language: str) -> Message:
    """The e-mail of a rendered letter: plain text and HTML alternatives (UTF-8), the dsrflow
    headers that name its request and purpose, and the language it is written in."""
    headers = {
        "From": formataddr((policy.controller.name, policy.controller.sender_email), charset="utf-8"),
        "To": recipient, "Subject": rendered.subject, "Date": formatdate(localtime=False),
        "Message-ID": message_id, "X-DSR-Request-Id": request_id, "X-DSR-Purpose": purpose,
        "Content-Language": language,
    }
    if not recipient.isascii():
        # An internationalised address goes out over SMTPUTF8, which only the modern email API writes.
        message = EmailMessage()
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        for name, value in headers.items():
            message[name] = value
        return message
    # The classic email API: a third of the modern one's CPU per letter (BENCHMARKS.md, 9).
    classic = MIMEMultipart("alternative", _subparts=[_text_part(rendered.text, "plain"),
                                                      _text_part(rendered.html, "html")])
    for name, value in headers.items():
        if value.isascii():
            classic[name] = value
        else:  # RFC 2047, folded to fit after the header's name
            classic[name] = Header(value, "utf-8", header_name=name).encode()
    return classic


def set_subject(message: EmailMessage, subject: str) -> None:
    """The Subject of a message the modern email API writes. Non-ASCII, it is stored as RFC 2047
    encoded words folded between them, as `compose_letter` writes it: left to the policy that sends
    it (aiosmtplib's `email.policy.SMTP`), a fold before an encoded word left two spaces where the
    text had one ("(export)  — please send your export")."""
    if subject.isascii():
        message["Subject"] = subject
    else:  # kept as written: a header stored raw is folded again only past the line limit
        message.set_raw("Subject", Header(subject, "utf-8", header_name="Subject").encode())


def _text_part(body: str, subtype: str) -> MIMENonMultipart:
    """Quoted-printable UTF-8: readable in the raw message, as the letters are mostly ASCII.
    Encoded by binascii (C) rather than the email package's encoder, a Python loop per character:
    a letter's two parts in 0.25 ms instead of 0.55 (BENCHMARKS.md, B1)."""
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(binascii.b2a_qp(body.encode(), istext=True).decode("ascii"))
    return part
