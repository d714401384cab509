"""A small IMAP4rev1 server over loopback (TLS), standing in for the controller's mail server.

It speaks the commands dsrflow's reader uses, on the wire as RFC 3501 writes them: the greeting,
CAPABILITY, LOGIN (checked), SELECT (EXISTS, UIDVALIDITY, UIDNEXT), UID SEARCH UID n:*, UID FETCH
(UID INTERNALDATE RFC822.SIZE BODY.PEEK[]<0.n>) with the message, or its first n bytes, as a literal, UID STORE +FLAGS.SILENT, IDLE with
an untagged EXISTS when mail arrives, NOOP, LOGOUT. Messages are kept as the exact bytes a test
delivers, so hostile input reaches the reader unchanged. It can stop and start again on the same
port with its mailbox kept (a server restart), and can offer IDLE or not.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import re
import shlex
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass
class StoredMail:
    uid: int
    raw: bytes
    internal_date: dt.datetime
    flags: set[str] = field(default_factory=set)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key: (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imap stand-in")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "imap-cert.pem", directory / "imap-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class ImapStandIn:
    def __init__(self, directory: Path, *, user: str, password: str, idle: bool = True) -> None:
        self.user, self.password, self.idle = user, password, idle
        self.mails: list[StoredMail] = []
        self.uidvalidity = 1
        self.commands: list[str] = []  # every command received, its verb and arguments (LOGIN's hidden)
        self.cert, key = self_signed_certificate(directory)
        self._ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._ssl.load_cert_chain(self.cert, key)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._arrived = asyncio.Event()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self._ssl)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every connection (the mailbox is kept, as a restarted server's is)."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()
        self._server = None

    def deliver(self, raw: bytes, internal_date: dt.datetime | None = None) -> int:
        uid = (self.mails[-1].uid if self.mails else 0) + 1
        self.mails.append(StoredMail(uid, raw, internal_date or dt.datetime.now(dt.UTC)))
        self._arrived.set()
        self._arrived = asyncio.Event()
        return uid

    def seen(self) -> list[int]:
        return [m.uid for m in self.mails if r"\Seen" in m.flags]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        capabilities = "IMAP4rev1 IDLE" if self.idle else "IMAP4rev1"
        try:
            writer.write(f"* OK [CAPABILITY {capabilities}] stand-in ready\r\n".encode())
            authenticated = False
            while line := await reader.readline():
                tag, _, rest = line.decode().rstrip("\r\n").partition(" ")
                verb, _, args = rest.partition(" ")
                verb = verb.upper()
                if verb == "UID":
                    sub, _, args = args.partition(" ")
                    verb = f"UID {sub.upper()}"
                self.commands.append(verb if verb == "LOGIN" else f"{verb} {args}".strip())
                if verb == "CAPABILITY":
                    writer.write(f"* CAPABILITY {capabilities}\r\n{tag} OK CAPABILITY completed\r\n".encode())
                elif verb == "LOGIN":
                    user, password = shlex.split(args)
                    authenticated = (user, password) == (self.user, self.password)
                    writer.write(f"{tag} OK LOGIN completed\r\n".encode() if authenticated
                                 else f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials\r\n".encode())
                elif verb == "LOGOUT":
                    writer.write(f"* BYE logging out\r\n{tag} OK LOGOUT completed\r\n".encode())
                    await writer.drain()
                    break
                elif verb == "NOOP":
                    writer.write(f"* {len(self.mails)} EXISTS\r\n{tag} OK NOOP completed\r\n".encode())
                elif not authenticated:
                    writer.write(f"{tag} BAD log in first\r\n".encode())
                elif verb == "SELECT":
                    next_uid = (self.mails[-1].uid if self.mails else 0) + 1
                    writer.write((f"* {len(self.mails)} EXISTS\r\n* 0 RECENT\r\n* FLAGS (\\Seen)\r\n"
                                  f"* OK [UIDVALIDITY {self.uidvalidity}] UIDs valid\r\n"
                                  f"* OK [UIDNEXT {next_uid}] next\r\n{tag} OK [READ-WRITE] SELECT completed\r\n"
                                  ).encode())
                elif verb == "UID SEARCH":
                    writer.write(f"* SEARCH {' '.join(map(str, self._search(args)))}\r\n{tag} OK SEARCH completed\r\n"
                                 .encode())
                elif verb == "UID FETCH":
                    uid = int(args.split()[0])
                    for seq, mail in enumerate(self.mails, 1):
                        if mail.uid == uid:
                            writer.write(self._fetched(seq, mail, args))
                    writer.write(f"{tag} OK FETCH completed\r\n".encode())
                elif verb == "UID STORE":
                    uid = int(args.split()[0])
                    for mail in self.mails:
                        if mail.uid == uid:
                            mail.flags.update(re.findall(r"\\\w+", args))
                    writer.write(f"{tag} OK STORE completed\r\n".encode())
                elif verb == "IDLE" and self.idle:
                    await self._idle(tag, reader, writer)
                else:
                    writer.write(f"{tag} BAD unknown command\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    @staticmethod
    def _fetched(seq: int, mail: StoredMail, args: str) -> bytes:
        """The FETCH response to `args`: RFC822.SIZE when asked, and the message, or the part of it
        a partial fetch (BODY.PEEK[]<start.count>, RFC 3501 6.4.5) asks for, as a literal."""
        date = mail.internal_date.strftime("%d-%b-%Y %H:%M:%S %z")
        partial = re.search(r"BODY\.PEEK\[\]<(\d+)\.(\d+)>", args)
        start, count = (int(partial.group(1)), int(partial.group(2))) if partial else (0, len(mail.raw))
        body, origin = mail.raw[start:start + count], f"<{start}>" if partial else ""
        size = f" RFC822.SIZE {len(mail.raw)}" if "RFC822.SIZE" in args else ""
        return (f'* {seq} FETCH (UID {mail.uid} INTERNALDATE "{date}"{size} BODY[]{origin} {{{len(body)}}}\r\n'
                .encode() + body + b")\r\n")

    def _search(self, args: str) -> list[int]:
        match = re.fullmatch(r"UID (\d+):\*", args.strip())
        assert match, f"the stand-in searches only UID n:*, got {args!r}"
        start = int(match.group(1))
        uids = [m.uid for m in self.mails]
        # RFC 3501: n:* with n above the largest UID still matches the largest.
        return [u for u in uids if u >= start] or uids[-1:]

    async def _idle(self, tag: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"+ idling\r\n")
        await writer.drain()
        done = asyncio.ensure_future(reader.readline())
        while True:
            arrived = asyncio.ensure_future(self._arrived.wait())
            await asyncio.wait({done, arrived}, return_when=asyncio.FIRST_COMPLETED)
            if done.done():
                arrived.cancel()
                writer.write(f"{tag} OK IDLE terminated\r\n".encode())
                return
            writer.write(f"* {len(self.mails)} EXISTS\r\n".encode())
            await writer.drain()
