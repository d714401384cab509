"""A refusal the console's plain forms carry back to their page in its address (the team's forms,
saved views, deferred erasures): signed, so that a link from anyone else cannot put words of its
own in the console's alert box ("Session expired: re-enter your token at ..."), a phishing aid
inside a page staff trust (attacker audit). The page shows a refusal only with its signature.

So is an outcome (`done=deny`: "Request denied; the letter with the reasons and remedies is sent."),
signed for its request: words of our own, but a link anyone could make showed them on any request
nobody had acted on, and a colleague following it took the request for answered."""

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
    text = (params.get(name) or "")[:SHOWN]
    return text if _signed(settings, name, text, params.get(f"{name}_sig") or "") else None


def outcome_params(settings: Settings, request_id: str, name: str, value: str) -> dict[str, str]:
    """The query parameters that carry outcome `value` as `name` back to request `request_id`'s
    page, and its signature (for that request only)."""
    return {name: value, f"{name}_sig": _signature(settings, name, f"{request_id}\n{value}")}


def shown_outcome(settings: Settings, request_id: str, name: str, params: Mapping[str, str]) -> str | None:
    """The outcome `name` in request `request_id`'s page's query `params`, if we signed it for
    that request; else nothing."""
    value = (params.get(name) or "")[:SHOWN]
    signed = _signed(settings, name, f"{request_id}\n{value}", params.get(f"{name}_sig") or "")
    return value if value and signed else None


def _signed(settings: Settings, name: str, text: str, signature: str) -> bool:
    # As bytes: a signature of the address may hold any character, which compare_digest refuses in a str.
    return bool(text) and hmac.compare_digest(signature.encode(), _signature(settings, name, text).encode())
