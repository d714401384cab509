"""Country codes: the one check of every country we are told (a subject's on the forms and the API,
the policy's default and its supervisory authorities' countries).

Only codes ISO 3166-1 assigns are countries (pycountry keeps the list): a code of the right shape
that names no country (ZZ, XX, AA, QM) would be stored as a fact about the subject, and the
remedies a refusal names follow from it. Two exceptions are deliberate:

- `UK` and `EL` are the European Union's own abbreviations for the United Kingdom and Greece
  (ISO 3166-1 reserves them exceptionally, for that use): people type them meaning GB and GR, and
  a portal subject is only shown a generic "enter your country's code", so refusing them would
  leave them guessing. They are taken as GB and GR, which is what is stored.
- `XK`, Kosovo: a user-assigned code, not an ISO one, but the one the European Commission and
  most registries use for Kosovo, which has no ISO code. A subject there must be able to say
  where they live, so it is accepted as it is.
"""

from __future__ import annotations

import re
from functools import cache

import pycountry

__all__ = ["country_code", "country_codes"]

_SHAPE = re.compile(r"[A-Za-z]{2}")  # ASCII only: "ß".upper() is "SS", South Sudan's code
_EU_ABBREVIATIONS = {"UK": "GB", "EL": "GR"}
_USER_ASSIGNED_IN_USE = frozenset({"XK"})


@cache
def _assigned() -> frozenset[str]:
    # Loaded on first use: pycountry reads its data file then, not when `schemas` is imported.
    return frozenset(country.alpha_2 for country in pycountry.countries) | _USER_ASSIGNED_IN_USE


def country_code(value: str) -> str:
    """The country `value` names, as its upper-case ISO 3166-1 alpha-2 code; ValueError saying
    what is wrong (the caller's error names the field)."""
    typed = value.strip()
    if not _SHAPE.fullmatch(typed):
        raise ValueError("must be a two-letter ISO 3166-1 country code such as BE")
    code = _EU_ABBREVIATIONS.get(typed.upper(), typed.upper())
    if code not in _assigned():
        raise ValueError(f"{code} is not an ISO 3166-1 country code; use a code such as BE")
    return code


def country_codes() -> list[str]:
    """Every code `country_code` takes as it is (the EU's abbreviations aside), sorted: the
    portal's list of countries."""
    return sorted(_assigned())
