"""Who the controller is, and what a request gets when it does not say: the regime, the country
and the timezone its deadline days are counted in (`Policy.controller`, `Policy.defaults`)."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import EmailStr, field_validator

from policy.strict import StrictModel
from schemas.countries import country_code
from schemas.vocabulary import Regime


class Controller(StrictModel):
    name: str
    registration: str
    address: str
    privacy_email: EmailStr
    staff_email: EmailStr
    sender_email: EmailStr


class Defaults(StrictModel):
    regime: Regime = Regime.gdpr
    country: str = "BE"
    timezone: str = "Europe/Brussels"

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        return country_code(value)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        """An IANA zone, known when the policy loads: a misspelt one ("Europe/Amsterdm") loaded,
        and every deadline, letter and portal page of the requests under it then failed. Not
        `localtime`, the machine's own, which would move with whatever server runs it."""
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r}: an IANA name such as Europe/Brussels") from None
        if value == "localtime":
            raise ValueError("'localtime' is the machine's zone: name the controller's, such as Europe/Brussels")
        return value
