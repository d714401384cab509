"""The policy's shape, validated at load so a mistake names the file, the path and the problem."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError, field_validator

from dsrflow.deadlines import Regime

DEFAULT_POLICY = Path(__file__).with_name("connexeon.yaml")


class PolicyError(Exception):
    """The policy file is unreadable or invalid; the message names file and path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Controller(_Strict):
    name: str
    registration: str
    address: str
    privacy_email: EmailStr
    staff_email: EmailStr
    sender_email: EmailStr


class Defaults(_Strict):
    regime: Regime = Regime.gdpr
    country: str = "BE"
    timezone: str = "Europe/Brussels"

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Z]{2}", value):
            raise ValueError("must be a two-letter upper-case ISO country code")
        return value


class Verification(_Strict):
    max_attempts: int = Field(5, ge=1, le=20)
    reminder_after_days: int = Field(2, ge=1)
    expires_after_days: int = Field(7, ge=1)
    code_digits: int = Field(6, ge=6, le=10)


class Authority(_Strict):
    name: str
    address: str
    website: str
    email: EmailStr
    phone: str


class Policy(_Strict):
    controller: Controller
    defaults: Defaults = Defaults()
    verification: Verification = Verification()
    deadline_warnings_days: tuple[int, ...] = (7, 2)
    supervisory_authorities: dict[str, Authority]

    def authority_for(self, country: str) -> Authority:
        return self.supervisory_authorities.get(country) or self.supervisory_authorities[self.defaults.country]


class LoadedPolicy(BaseModel):
    """A policy with its version: the sha256 of its canonical JSON content."""

    model_config = ConfigDict(frozen=True)

    version: str
    policy: Policy
    content: dict


def _version(content: dict) -> str:
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_policy(content: dict, source: str = "<policy>") -> LoadedPolicy:
    try:
        policy = Policy.model_validate(content)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()
        )
        raise PolicyError(f"{source}: {problems}") from None
    return LoadedPolicy(version=_version(content), policy=policy, content=content)


def load_policy(path: Path | None = None) -> LoadedPolicy:
    path = path or DEFAULT_POLICY
    try:
        content = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(content, dict):
        raise PolicyError(f"{path}: expected a mapping at the top level")
    return parse_policy(content, str(path))
