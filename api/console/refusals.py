"""A refusal the console's plain forms carry back to their page in its address (the team's forms,
saved views, deferred erasures): signed, so that a link from anyone else cannot put words of its
own in the console's alert box ("Session expired: re-enter your token at ..."), a phishing aid
inside a page staff trust (attacker audit). The page shows a refusal only with its signature."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from dsrflow.crypto.hashing import keyed_hash
from dsrflow.crypto.keys import load_secret_key
from dsrflow.settings import Settings

SHOWN = 300  # characters: a refusal is one sentence


def _signature(settings: Settings, name: str, text: str) -> str:
    return keyed_hash(load_secret_key(settings), "console-refusal", name, text)[:32]


def refusal_params(settings: Settings, name: str, text: str) -> dict[str, str]:
    """The query parameters that carry refusal `text` as `name`, and its signature."""
    text = text[:SHOWN]
    return {name: text, f"{name}_sig": _signature(settings, name, text)}


def shown_refusal(settings: Settings, name: str, params: Mapping[str, str]) -> str | None:
    """The refusal `name` in the page's query `params`, if we signed it; else nothing."""
    text, signature = params.get(name) or "", params.get(f"{name}_sig") or ""
    if not text or not hmac.compare_digest(signature, _signature(settings, name, text[:SHOWN])):
        return None
    return text[:SHOWN]
