"""E-mails to the privacy mailbox at rest: each message's parsed record (sender, subject, headers,
text, the attachments kept) is sealed like a package (dsrflow/crypto/filecrypt.py), under the
mailbox's own key, bound to the message's id: a row copied onto another message does not open."""

from __future__ import annotations

import io
import json
from typing import Any

from dsrflow.crypto.filecrypt import EncryptedWriter, decrypt_chunks, file_key

FILE_PURPOSE = "dsrflow-mailbox"


class _Buffer(io.BytesIO):
    def close(self) -> None:  # the writer closes its sink; the sealed bytes are read after that
        pass


def seal_record(record: dict[str, Any], secret: bytes, message_id: str) -> bytes:
    out = _Buffer()
    writer = EncryptedWriter(out, file_key(secret, FILE_PURPOSE), message_id)
    writer.write(json.dumps(record, separators=(",", ":")).encode())
    writer.close()
    return out.getvalue()


def open_record(sealed: bytes, secret: bytes, message_id: str) -> dict[str, Any]:
    clear = b"".join(decrypt_chunks([sealed], file_key(secret, FILE_PURPOSE), message_id))
    record: dict[str, Any] = json.loads(clear)
    return record
