"""Where the payload encryption keys and the hashing secret come from.

Production sets DSRFLOW_ENCRYPTION_KEYS and DSRFLOW_SECRET_KEY. The embedded stack generates each
the first time and keeps it under `$DSRFLOW_HOME` (mode 0600) so every local process, and every
later run, shares it.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from dsrflow.setting_values import decode_secret, parse_key_list
from dsrflow.settings import Settings, SettingsError


def keys_file(settings: Settings) -> Path:
    return settings.home / "keys"


def load_keyring(settings: Settings) -> list[tuple[str, bytes]]:
    """The configured keys, or the local key file, created on first use."""
    if settings.keyring:
        return settings.keyring
    path = keys_file(settings)
    if not path.exists():
        _create_secret_file(path, prefix="k1:")
    try:
        return parse_key_list(path.read_text().strip().replace("\n", ","))
    except ValueError as exc:
        raise SettingsError(f"{path}: expected {exc}") from None


def load_secret_key(settings: Settings) -> bytes:
    """The HMAC secret for verification codes, link tokens and identifier hashes."""
    if settings.secret_key:
        return settings.secret_key
    path = settings.home / "secret"
    if not path.exists():
        _create_secret_file(path, prefix="")
    try:
        return decode_secret(path.read_text().strip())
    except ValueError as exc:
        raise SettingsError(f"{path}: expected {exc}") from None


def _create_secret_file(path: Path, prefix: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = f"{prefix}{base64.b64encode(os.urandom(32)).decode()}\n"
    # Written aside, then hard-linked into place: when two processes start together exactly one
    # key wins, and nobody ever reads a half-written file.
    temp = path.with_name(f".keys.{os.getpid()}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(line)
    try:
        os.link(temp, path)
    except FileExistsError:
        pass
    finally:
        temp.unlink()
