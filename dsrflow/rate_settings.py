"""The public rate limits' settings (docs/rate-limits.md), a part of `dsrflow.settings.Settings`.

Each limit is "N/period" (period: second, minute, hour, day, or a count of them such as 10m),
read from its `DSRFLOW_RATE_*` variable; api/ratelimit.py counts the hits against them.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings

from dsrflow.setting_values import parse_rate


class RateLimitSettings(BaseSettings):
    """The limits on what anyone may call without signing in; `Settings` inherits them."""

    # Per client (an IPv4 address, an IPv6 /64) unless the name says otherwise.
    rate_submit_per_ip: str = Field("20/hour", validation_alias=AliasChoices("DSRFLOW_RATE_SUBMIT_PER_IP"))
    # Verified requests per e-mail address: an unverified submission never spends it, so nobody
    # can use up someone else's allowance by asking in their name.
    rate_submit_per_email: str = Field("5/hour", validation_alias=AliasChoices("DSRFLOW_RATE_SUBMIT_PER_EMAIL"))
    rate_verify_per_ip: str = Field("30/hour", validation_alias=AliasChoices("DSRFLOW_RATE_VERIFY_PER_IP"))
    # Attempts on one request from one client: below the policy's verification.max_attempts, so
    # that one client cannot use up the code's attempts and lock the subject out.
    rate_verify_per_request: str = Field("3/hour", validation_alias=AliasChoices("DSRFLOW_RATE_VERIFY_PER_REQUEST"))
    # Wrong codes for one address over all its requests, from any client: each request's codes
    # are capped (policy verification.max_codes), but anyone may open more requests in someone's
    # name. Past it, codes for that address are refused; the e-mail's link still confirms.
    rate_guess_per_email: str = Field("25/7d", validation_alias=AliasChoices("DSRFLOW_RATE_GUESS_PER_EMAIL"))
    # Verification e-mails one address can be sent at anyone's asking, from any client: a public
    # submission (the code's e-mail; its request's reminder and notices follow) and the portal's
    # "Send me a new code". Past it a submission is refused (429) and nothing more is mailed; a
    # verified request gives its e-mail back. A subject asking for a few things, with a new code
    # or two, stays well within it.
    rate_mail_per_email: str = Field("10/day", validation_alias=AliasChoices("DSRFLOW_RATE_MAIL_PER_EMAIL"))
    # A subject asking the portal for a new code: each one is an e-mail to the subject's address,
    # so few per request from one client, and few per client over every request.
    rate_resend_per_ip: str = Field("10/hour", validation_alias=AliasChoices("DSRFLOW_RATE_RESEND_PER_IP"))
    rate_resend_per_request: str = Field("3/hour", validation_alias=AliasChoices("DSRFLOW_RATE_RESEND_PER_REQUEST"))
    # Tokens are too long to guess; this keeps a guessing loop from costing a lookup per try.
    rate_signin_per_ip: str = Field("20/10m", validation_alias=AliasChoices("DSRFLOW_RATE_SIGNIN_PER_IP"))
    # Bearer tokens that name no staff member, on any staff route: the same guessing as a sign-in,
    # by a script. Right tokens are not counted.
    rate_badtoken_per_ip: str = Field("20/10m", validation_alias=AliasChoices("DSRFLOW_RATE_BADTOKEN_PER_IP"))
    # Requests one staff token may open (REST `POST /v1/requests`, the console's "New request"),
    # each of which mails an acknowledgement, and a code unless attested, to the address it names:
    # a stolen token would mail anyone from the controller's address as fast as requests open. A
    # busy agent opens a few dozen a day; past it the token is refused (429) and an admin alerted.
    rate_staff_opens_per_token: str = Field("200/hour", validation_alias=AliasChoices(
        "DSRFLOW_RATE_STAFF_OPENS_PER_TOKEN"))
    rate_callback_per_ip: str = Field("600/minute", validation_alias=AliasChoices("DSRFLOW_RATE_CALLBACK_PER_IP"))
    # Generous for monitors polling every second or two; each call probes every component.
    rate_health_per_ip: str = Field("300/minute", validation_alias=AliasChoices("DSRFLOW_RATE_HEALTH_PER_IP"))
    # A request's status asked for by a stranger: the portal's lookup by reference, its status and
    # verification pages (each a Temporal query). A subject looks a few times; a loop does not.
    rate_lookup_per_ip: str = Field("120/hour", validation_alias=AliasChoices("DSRFLOW_RATE_LOOKUP_PER_IP"))
    # Links with a token: processors' confirmation and upload links (GET and POST) and package
    # downloads (the portal's page and the file). A processor answering many tasks from one office
    # opens two a task.
    rate_link_per_ip: str = Field("300/hour", validation_alias=AliasChoices("DSRFLOW_RATE_LINK_PER_IP"))
    # Unverified requests one network (an IPv4 /24, an IPv6 /48) may have opened through public
    # intake within the verification window: its share of DSRFLOW_MAX_UNVERIFIED_OPEN, so that one
    # network rotating its addresses cannot fill the whole ceiling. A request confirmed from the
    # network that opened it gives its share back.
    max_unverified_per_network: int = Field(100, ge=1, validation_alias=AliasChoices("DSRFLOW_MAX_UNVERIFIED_PER_NETWORK"))
    # An IPv6 client's /48 may make this many times each per-client limit (api/ratelimit.py).
    rate_ipv6_48_multiple: int = Field(16, ge=1, le=65536, validation_alias=AliasChoices("DSRFLOW_RATE_IPV6_48_MULTIPLE"))

    # Every "N/period" field is checked when the settings are read, not at its first use: a list
    # of names here once left DSRFLOW_RATE_GUESS_PER_EMAIL out, and a bad value of it failed the
    # first wrong code typed instead of the start.
    @field_validator("*")
    @classmethod
    def _check_rate(cls, value: object, info: ValidationInfo) -> object:
        if info.field_name in RATES:
            parse_rate(str(value))
        return value

    def rate(self, action: str, per: str) -> tuple[int, int]:
        """(allowed hits, window in seconds) for `action` (submit, verify, guess, mail, resend, signin,
        badtoken, callback, health, lookup, link, staff_opens) per `ip`, `email`, `request` or `token`."""
        return parse_rate(getattr(self, f"rate_{action}_per_{per}"))


# The "N/period" fields, each read by `rate` as rate_<action>_per_<ip|email|request|token>.
RATES = frozenset(name for name, field in RateLimitSettings.model_fields.items() if field.annotation is str)
