"""The shape of an `http` system's configuration: a declarative description of a SaaS API.

A configuration lives in its own YAML file (policy/http/*.yaml) that the policy names with
`config: {file: http/stripe.yaml, vars: {...}}`, or inline under `config`. `load_policy` inlines
the file, so the policy's version hash covers what the connector does. Unknown fields are errors
naming their path; every template is compiled here, so a typo in one fails at load, not mid-request.

Secrets never appear here: auth names the environment variables that hold them (`*_env`); the
connector reads them when it starts and names any that is missing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import ConfigDict, Field, field_validator, model_validator

from policy.disclosure import Origin
from policy.files import named_file
from policy.strict import IDENT, StrictModel

_ENV_NAME = r"^[A-Z][A-Z0-9_]*$"
_syntax = ImmutableSandboxedEnvironment(undefined=StrictUndefined)


def _compiles(value: Any) -> Any:
    """Every string inside `value` must be a valid Jinja2 template."""
    if isinstance(value, str):
        try:
            _syntax.parse(value)
        except TemplateSyntaxError as exc:
            raise ValueError(f"template {value!r}: {exc.message}") from None
    elif isinstance(value, dict):
        for item in value.values():
            _compiles(item)
    elif isinstance(value, list):
        for item in value:
            _compiles(item)
    return value


class BearerAuth(StrictModel):
    type: Literal["bearer"]
    token_env: str = Field(pattern=_ENV_NAME)


class ApiKeyAuth(StrictModel):
    type: Literal["api_key"]
    header: str = "X-API-Key"
    key_env: str = Field(pattern=_ENV_NAME)
    prefix: str = ""  # e.g. "apikey " for services that want a scheme word before the key


class BasicAuth(StrictModel):
    type: Literal["basic"]
    username: str | None = None  # a literal user name (Mailchimp accepts any), or
    username_env: str | None = Field(None, pattern=_ENV_NAME)
    password_env: str = Field(pattern=_ENV_NAME)

    @model_validator(mode="after")
    def _one_user(self) -> Self:
        if (self.username is None) == (self.username_env is None):
            raise ValueError("needs exactly one of username or username_env")
        return self


class OAuth2Auth(StrictModel):
    """OAuth 2.0 access tokens, fetched and refreshed before expiry or after a 401.

    grant client_credentials: client_id_env + client_secret_env;
    grant refresh_token: client_id_env + client_secret_env + refresh_token_env (HubSpot apps);
    grant jwt_bearer: service_account_env, a Google service-account key (JSON, or a path to it).
    """

    type: Literal["oauth2"]
    grant: Literal["client_credentials", "refresh_token", "jwt_bearer"]
    token_url: str
    scope: str | None = None
    client_id_env: str | None = Field(None, pattern=_ENV_NAME)
    client_secret_env: str | None = Field(None, pattern=_ENV_NAME)
    refresh_token_env: str | None = Field(None, pattern=_ENV_NAME)
    service_account_env: str | None = Field(None, pattern=_ENV_NAME)
    # Send client credentials as HTTP basic auth instead of form fields.
    client_auth: Literal["form", "basic"] = "form"

    @model_validator(mode="after")
    def _grant_needs(self) -> Self:
        needed = {
            "client_credentials": ["client_id_env", "client_secret_env"],
            "refresh_token": ["client_id_env", "client_secret_env", "refresh_token_env"],
            "jwt_bearer": ["service_account_env"],
        }[self.grant]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"grant {self.grant} needs {', '.join(missing)}")
        return self


Auth = BearerAuth | ApiKeyAuth | BasicAuth | OAuth2Auth


class Pagination(StrictModel):
    """How to get the next page.

    cursor: the next cursor comes from `cursor_path` in the body (HubSpot `paging.next.after`) or
            from the last record's `cursor_field` (Stripe `id`); it is sent as `param`, in the
            query or (POST searches) in the body; `more_path` (Stripe `has_more`) must be true.
    offset: `param` (offset) advances by the page's size until `total_path` (Mailchimp
            `total_items`) is reached or a page comes back empty.
    link:   the next page's URL is at `next_path` in the body (HubSpot `paging.next.link`) or,
            without it, in the `Link: <...>; rel="next"` header.
    """

    style: Literal["cursor", "offset", "link"]
    param: str | None = None
    location: Literal["query", "body"] = "query"
    cursor_path: str | None = None
    cursor_field: str | None = None
    more_path: str | None = None
    total_path: str | None = None
    next_path: str | None = None
    max_pages: int = Field(1000, ge=1)

    @model_validator(mode="after")
    def _style_needs(self) -> Self:
        if self.style == "cursor" and (not self.param or (self.cursor_path is None) == (self.cursor_field is None)):
            raise ValueError("cursor pagination needs param and exactly one of cursor_path or cursor_field")
        if self.style == "offset" and not self.param:
            raise ValueError("offset pagination needs param")
        return self


class RequestSpec(StrictModel):
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str  # relative to base_url; {{ }} values are URL-escaped
    query: dict[str, Any] = Field(default_factory=dict)
    body: dict[str, Any] | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    _templates = field_validator("path", "query", "body", "headers")(_compiles)


class Step(StrictModel):
    """One request (or one per item of `for_each`).

    A read step has `records` (where the records are in the response: a dotted path, "" for the
    whole body; a list gives many, an object one) and, unless it only finds what later steps
    read, `dataset` (what they are: they go in the access package and the counts). An action step
    has `effect`, counted per item (or, without `for_each`, per record of `dataset` found).
    `if` is a template: the step (or item) is skipped when it renders empty or false.
    """

    name: str = Field(pattern=IDENT)
    request: RequestSpec
    for_each: str | None = None  # an earlier step's name, or `identifiers`
    if_: str | None = Field(None, alias="if")
    dataset: str | None = None
    records: str | None = None
    paginate: Pagination | None = None
    effect: Literal["deleted", "minimised", "changed", "submitted"] | None = None
    # Statuses meaning "no such record" (404): no records, or for an action, already done.
    missing: list[int] = Field(default_factory=list)
    # Response fields worth keeping, by name: e.g. {deletion_time: deletionRequestTime}.
    collect: dict[str, str] = Field(default_factory=dict)
    # An action step's proof that the service did it: a template over `answer` (the answer's
    # document, none when empty), `status` and the step's own context, which must render true.
    # A 2xx alone is no proof: Stripe answers a deletion it did not make with `deleted: false`.
    # Not checked for a `missing` status (already done).
    confirm: str | None = None
    # A read step's records are kept only where this template, over `record` and the step's
    # context, renders true: a search that matches more loosely than the subject (HubSpot's
    # CONTAINS_TOKEN over a contact's secondary addresses) hands no other person's record to the
    # access package or the erasure.
    where: str | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    _templates = field_validator("if_", "confirm", "where")(_compiles)

    @model_validator(mode="after")
    def _role(self) -> Self:
        if self.records is not None and self.effect is not None:
            raise ValueError("a step either reads (records) or acts (effect), not both")
        if self.records is None and self.effect is None:
            raise ValueError("a step needs records (it reads) or effect (it acts)")
        if self.paginate and self.records is None:
            raise ValueError("only a step with records can paginate")
        if self.confirm is not None and self.effect is None:
            raise ValueError("only a step with an effect confirms it")
        if self.where is not None and self.records is None:
            raise ValueError("only a step with records keeps them where a template holds")
        return self


class Action(StrictModel):
    """The requests of one action. `find`: run another action's steps first (erase usually
    finds the records the way access does). `note`: a sentence for the subject's response
    letter, rendered with `collected` (the steps' collected values) and `accepted_at`."""

    find: Literal["access"] | None = None
    steps: list[Step] = Field(min_length=1)
    note: str | None = None
    _templates = field_validator("note")(_compiles)



class Actions(StrictModel):
    access: Action | None = None
    erase: Action | None = None
    rectify: Action | None = None
    restrict: Action | None = None
    lift_restriction: Action | None = None
    object: dict[Literal["direct_marketing", "profiling", "legitimate_interest"], Action] = Field(
        default_factory=dict)


class DatasetHold(StrictModel):
    """A statutory hold on a dataset's records: by each record's date (`date_field`, epoch
    seconds or ISO 8601), or for as long as records of `through` datasets that point at it are."""

    statute: str
    date_field: str | None = None
    through: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one(self) -> Self:
        if (self.date_field is None) == (not self.through):
            raise ValueError("needs exactly one of date_field or through")
        return self


class HttpDataset(StrictModel):
    # What subjects read for it (letters, the package's summary), as for a sql system's dataset
    # (policy/systems.py `Dataset.label`), translated like it; without one, its name in words.
    label: str | None = None
    category: str
    origin: Origin  # where the records come from (policy/disclosure.py)
    key: str = "id"
    parent_field: str | None = None  # the field holding the key of the record it belongs to
    fields: list[str] | None = None  # the fields the access package shows; default all
    hold: DatasetHold | None = None


class Identifier(StrictModel):
    """An identifier the service knows the subject by, read from another system's access
    records when the request is planned (before any system erases it)."""

    type: str  # e.g. CLIENT_ID, USER_ID, APP_INSTANCE_ID
    system: str
    dataset: str
    field: str
    # Where the source keeps a longer form than the service knows: a regular expression that a
    # stored value matches whole, whose first group is what is sent. GA4's client id is kept by
    # many sites as the _ga cookie ("GA1.1.1197596843.1673515099"): Google accepts a deletion
    # request naming that and deletes nothing, as it knows the browser by "1197596843.1673515099".
    # A value the expression does not match is sent as stored.
    pattern: str | None = None

    @field_validator("pattern")
    @classmethod
    def _one_group(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                groups = re.compile(value).groups
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
            if groups < 1:
                raise ValueError("needs a group: the part of the stored value that is sent")
        return value

    def value_of(self, stored: str) -> str:
        """What the service knows the subject by, from the value the source system keeps."""
        found = re.fullmatch(self.pattern, stored) if self.pattern else None
        return found.group(1) if found else stored


class Limits(StrictModel):
    """Shared by every worker through the quota ledger in Postgres. `key` groups systems that
    share a quota (GA4: per property); `timezone` is where the service's quota day starts."""

    per_second: float | None = Field(None, gt=0)
    per_day: int | None = Field(None, ge=1)
    key: str | None = None
    timezone: str = "UTC"


class Retry(StrictModel):
    attempts: int = Field(4, ge=1, le=20)  # per request, inside one activity attempt
    backoff_seconds: float = Field(1.0, ge=0)
    # A longer Retry-After ends the activity attempt; Temporal retries it after that delay.
    max_inline_wait_seconds: float = Field(30, ge=0)
    # Other statuses the service documents as worth trying again, retried as a 5xx is: Stripe's
    # 409, a request whose Idempotency-Key another request still being carried out holds.
    statuses: list[Annotated[int, Field(ge=400, le=499)]] = Field(default_factory=list)


class HttpConfig(StrictModel):
    service: str
    base_url: str
    auth: Auth = Field(discriminator="type")
    headers: dict[str, str] = Field(default_factory=dict)
    body_format: Literal["json", "form"] = "json"
    # Each wait for the service (to connect, for the next bytes); an answer must arrive whole
    # within four times this (a service trickling its answer byte by byte is cut off there).
    timeout_seconds: float = Field(30, gt=0)
    # What one action (its steps, with `find`'s) may read from the service: answers' bytes in all
    # and records kept. Far above any subject's records; past them the action stops with an error
    # naming the system, where a service answering pages without end held the worker's memory.
    max_read_mib: int = Field(32, ge=1, le=1024)
    max_records: int = Field(10_000, ge=1)
    # Where a short error code sits in an error body (e.g. error.code), or several such paths,
    # comma-separated; each code found is shown in messages.
    error_code_path: str | None = None
    vars: dict[str, Any] = Field(default_factory=dict)
    limits: Limits = Limits()
    retry: Retry = Retry()
    datasets: dict[str, HttpDataset] = Field(default_factory=dict)
    identifiers: list[Identifier] = Field(default_factory=list)
    actions: Actions

    @model_validator(mode="after")
    def _references(self) -> Self:
        for name, dataset in self.datasets.items():
            if not re.fullmatch(IDENT, name):
                raise ValueError(f"datasets: {name!r} must be lower-case letters, digits and _")
            for child in dataset.hold.through if dataset.hold else []:
                if child not in self.datasets or self.datasets[child].parent_field is None:
                    raise ValueError(f"datasets.{name}.hold.through: {child!r} is not a dataset with a parent_field")
        for action_name, action in self._all_actions():
            for step in action.steps:
                if step.dataset is not None and step.dataset not in self.datasets:
                    raise ValueError(f"actions.{action_name}.{step.name}.dataset: unknown dataset {step.dataset!r}")
                if step.for_each == "identifiers" and not self.identifiers:
                    raise ValueError(f"actions.{action_name}.{step.name}: for_each identifiers needs `identifiers`")
        for action_name, action in self._all_actions():
            found = getattr(self.actions, action.find) if action.find else None
            if action.find and found is None:
                raise ValueError(f"actions.{action_name}.find: there is no {action.find} action")
            seen = {"identifiers", *(s.name for s in (found.steps if found else []))}
            for step in action.steps:
                if step.name in seen:
                    raise ValueError(f"actions.{action_name}.{step.name}: the step name is used twice (or is reserved)")
                if step.for_each is not None and step.for_each not in seen:
                    raise ValueError(f"actions.{action_name}.{step.name}.for_each: {step.for_each!r} is not an earlier step")
                seen.add(step.name)
        return self

    def _all_actions(self) -> list[tuple[str, Action]]:
        found = [(name, getattr(self.actions, name)) for name in
                 ("access", "erase", "rectify", "restrict", "lift_restriction")]
        found += [(f"object.{scope}", action) for scope, action in self.actions.object.items()]
        return [(name, action) for name, action in found if action is not None]

    def statutes(self) -> set[str]:
        return {d.hold.statute for d in self.datasets.values() if d.hold}

    def env_names(self) -> dict[str, str]:
        """Every environment variable the configuration reads: name -> the field naming it."""
        auth = self.auth.model_dump()
        return {value: f"auth.{field}" for field, value in auth.items() if field.endswith("_env") and value}


def inline_http_files(content: dict[str, Any], path: Path, shipped: Path) -> None:
    """Replace each http system's `config: {file: ..., vars: {...}}` by the file's content, its
    `vars` overlaid by the policy's: the stored policy (and so its version) then holds all of it.
    A file is looked for next to the policy, then among the shipped ones (`shipped`/http/).
    Problems raise ValueError naming the file and the path."""
    systems = content.get("systems")
    for name, system in (systems.items() if isinstance(systems, dict) else ()):
        if not isinstance(system, dict) or system.get("connector") != "http":
            continue
        config = system.get("config")
        if not isinstance(config, dict) or "file" not in config:
            continue
        extra = sorted(set(config) - {"file", "vars"})
        if extra:
            raise ValueError(f"{path}: systems.{name}.config: with `file`, only `vars` may be given, not {extra}")
        loaded = named_file(path, Path(str(config["file"])), f"systems.{name}.config.file", shipped)
        overrides = config.get("vars") or {}
        if not isinstance(overrides, dict):
            raise ValueError(f"{path}: systems.{name}.config.vars: expected a mapping")
        loaded["vars"] = {**(loaded.get("vars") or {}), **overrides}
        system["config"] = loaded
