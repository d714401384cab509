"""OpenDSR v2, controller side: hand access and erasure to a processor that speaks the protocol.

System config (strings go through `expand_env`):
    base_url            the processor's OpenDSR root, e.g. ${EMAIL_MARKETING_URL:-http://127.0.0.1:8020/opendsr}
    discovery_path      default /discovery (relative to base_url, or an absolute URL)
    headers             extra request headers, e.g. authorization (the protocol leaves auth to the processor)
    regulation          default gdpr
    category            category of the records access returns, default marketing;
    categories          or per dataset: {dataset: category}
    origin              origin of the records access returns (policy/disclosure.py), default
                        observed: an unmarked dataset stays in portability packages;
    origins             or per dataset: {dataset: origin}
    labels              the words subjects read for each dataset the processor reports, {dataset:
                        words}, translated with the policy's other texts (else the processor's name)
    access_timeout_seconds (60), poll_interval_seconds (1), timeout_seconds (30)
    verify_signatures   default true: status responses must carry a valid X-OpenDSR-Signature
    processor_certificate_pem  the processor's certificate, pinned: signatures are checked against
                        it and it is never fetched (needed outside development when discovery is
                        not https)
    callback_max_age_seconds (3600)  a callback whose signed status_changed_time is older is refused

Every URL a processor hands us (results_url, extension URLs) is followed only on the configured
host (the base URL's or the discovery URL's scheme, host and port): the credentials in `headers`
never go anywhere else, and a compromised processor cannot point us at an internal address.

Erasure is asynchronous: `erase` submits and returns `pending` with the subject_request_id as
external_id; completion arrives as a signed callback at `env.callback_url`, or through `status`.
Access is synchronous from the caller's side: it submits, polls for a bounded time, and reads
the results. Request ids are derived from (request, system, action), so a retried activity
re-submits the same id and the processor answers with the job it already has.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from activities.connectors import expand_env
from activities.connectors.base import (
    AccessRecord,
    ActionHook,
    ActionOutcome,
    ClosedMeanwhile,
    Connector,
    ConnectorEnv,
    ErasureContext,
    PermanentConnectorError,
    Subject,
)
from activities.connectors.bounded_http import bounded_client, what_failed
from activities.connectors.opendsr_answers import (
    OpenDsrUnavailable,
    job_answer,
    json_answer,
    object_answer,
    results_answer,
)
from activities.connectors.opendsr_calloff import call_off, call_off_access, closed_meanwhile, completed_stands
from activities.connectors.opendsr_documents import (
    completion_time,
    datasets_of,
    outcome_from_status,
    seconds_until,
    shown_path,
    subject_request_id,
    unsubscribed_counts,
)
from activities.connectors.opendsr_signature import (
    SIGNATURE_HEADER,
    InsecureTrustAnchor,
    ProcessorCertificateError,
    ProcessorCertificates,
    TrustAnchor,
    trust_anchor,
)
from policy.disclosure import Origin
from policy.model import Policy
from policy.systems import System

API_VERSION = "2.0"
def discovery_url_for(system: System) -> str:
    """Where a system's discovery document is: unless a certificate is pinned, signatures are
    verified with the certificate it names (`trust_anchor_for`)."""
    config = expand_env(system.config)
    return _join(str(config["base_url"]), str(config.get("discovery_path", "/discovery")))


def trust_anchor_for(system: System, environment: str) -> TrustAnchor:
    """What vouches for a system's signatures (raises InsecureTrustAnchor for plain http outside
    development, unless the certificate is pinned)."""
    pinned = expand_env(system.config).get("processor_certificate_pem")
    return trust_anchor(discovery_url_for(system), str(pinned) if pinned else None, environment)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def systems_for_processor_domain(policy: Policy, domain: str) -> list[tuple[str, System]]:
    """The opendsr systems whose configured host is `domain` (a callback's
    X-OpenDSR-Processor-Domain header): only their discovery URLs may vouch for the callback.
    The header picks among our own configuration; it never supplies a URL."""
    found = []
    for name, system in policy.systems.items():
        if system.connector == "opendsr" and urlsplit(discovery_url_for(system)).hostname == domain.strip().lower():
            found.append((name, system))
    return found


def _join(base_url: str, path: str) -> str:
    if urlsplit(path).scheme:
        return path
    return base_url.rstrip("/") + "/" + path.lstrip("/")


class OpenDsrConnector(Connector):
    answers_later = True

    def __init__(self, env: ConnectorEnv) -> None:
        self.env = env
        self.name = env.system_name
        config = expand_env(env.system.config)
        if not config.get("base_url"):
            raise PermanentConnectorError(f"system {self.name}: the opendsr connector needs config.base_url")
        self.base_url = str(config["base_url"]).rstrip("/")
        self.discovery_url = _join(self.base_url, str(config.get("discovery_path", "/discovery")))
        self.regulation = str(config.get("regulation", "gdpr"))
        self.category = str(config.get("category", "marketing"))
        self.categories: dict[str, str] = dict(config.get("categories") or {})
        self.origin: Origin = config.get("origin", "observed")
        self.origins: dict[str, Origin] = dict(config.get("origins") or {})
        self.access_timeout = float(config.get("access_timeout_seconds", 60))
        self.poll_interval = float(config.get("poll_interval_seconds", 1.0))
        self.verify_signatures = bool(config.get("verify_signatures", True))
        self._auth_headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
        timeout = float(config.get("timeout_seconds", 30))

        def client() -> httpx.AsyncClient:
            return bounded_client(timeout=timeout, headers={"Accept": "application/json"})

        # In a worker, one client per timeout for every task: its connections to the processors
        # stay open between them. And one set of certificates: a status poll checks its
        # signature without fetching the discovery document and the certificate again each time.
        shared = env.connections
        self._http = shared.kept(f"opendsr-http {timeout}", client) if shared is not None else client()
        self._owns_http = shared is None
        self._certificates = (shared.kept("opendsr-certificates", ProcessorCertificates) if shared is not None
                              else ProcessorCertificates(self._http))
        self._origins = {_origin(self.base_url), _origin(self.discovery_url)}
        self._discovery: dict[str, Any] | None = None

    # -- the Connector interface -----------------------------------------------------------

    async def erase(self, subject: Subject, context: ErasureContext | None = None) -> ActionOutcome:
        return await self._submit(subject, "erasure", callbacks=True)

    async def status(self, subject: Subject, external_id: str) -> ActionOutcome:
        if subject.closed:  # its request closed unanswered: the job is called off (§ 9), not followed
            return await call_off(self, subject, external_id)
        # A `completed` on record stands (completed_stands): the job was carried out.
        return outcome_from_status(await completed_stands(self, subject, external_id,
                                                          await self._request_status(external_id)))

    def job_id(self, subject: Subject, action: str) -> str | None:
        """The id a job will carry, known before it is submitted: the fan-out records it first so
        a callback that beats the activity's own report still finds its task."""
        kind = {"erase": "erasure"}.get(action)
        return subject_request_id(subject.request_id, self.name, kind, subject.attempt) if kind else None

    async def access(self, subject: Subject) -> AsyncIterator[AccessRecord]:
        # Access waits for the export here, polling: a callback would find no task to wake.
        if subject.closed:
            raise ClosedMeanwhile(subject.request_id)  # nothing new is asked on a closed request
        outcome = await self._submit(subject, "access", callbacks=False)
        if outcome.status != "pending" or outcome.external_id is None:
            raise PermanentConnectorError(f"system {self.name}: {outcome.message}")
        document = await self._wait_until_completed(outcome.external_id, subject.request_id)
        results_url = document.get("results_url")
        if not results_url:
            return  # completed without results: the processor holds nothing about the subject
        response = await self._call("GET", str(results_url), signed="if_present")
        for dataset, records in datasets_of(results_answer(self.name, response)):
            for record in records:
                yield AccessRecord(
                    dataset=dataset,
                    category=self.categories.get(dataset, self.category),
                    fields=record,
                    origin_of=dict.fromkeys(record, self.origins.get(dataset, self.origin)),
                )

    async def call_off_access(self, subject: Subject, action: str = "access") -> ActionOutcome | None:
        # A portability job is OpenDSR's access too (its id says so), but its task is "portability".
        job = subject_request_id(subject.request_id, self.name, "access", subject.attempt)
        return await call_off_access(self, subject, job, action)

    async def object(self, subject: Subject, scope: str, *,
                     before_commit: ActionHook | None = None) -> ActionOutcome:
        if scope != "direct_marketing":
            return ActionOutcome(
                status="not_found",
                message=f"{self.env.system.label} is only used for direct marketing: "
                f"an objection to {scope} has nothing to act on here",
            )
        # OpenDSR v2 has no objection type; the demo processor advertises an `unsubscribe`
        # extension in its discovery document. Only ever sent to the processor's own host.
        extension = ((await self._discover()).get("extensions") or {}).get("unsubscribe")
        unsubscribe_url = extension.get("url") if isinstance(extension, dict) else None
        if not isinstance(unsubscribe_url, str) or urlsplit(unsubscribe_url).netloc != urlsplit(self.base_url).netloc:
            return self._manual(
                "objection", "ask the processor to stop direct marketing to the subject and suppress the address"
            )
        email_hash = hashlib.sha256(subject.email.strip().lower().encode("utf-8")).hexdigest()
        response = await self._call("POST", unsubscribe_url, json={"email_hash": email_hash})
        try:
            matched, unsubscribed = unsubscribed_counts(json_answer(self.name, response, "unsubscribe"))
        except ValueError as exc:
            raise PermanentConnectorError(f"system {self.name}: the processor's answer to unsubscribe: {exc}") from None
        return ActionOutcome(
            status="done" if matched else "not_found",
            found=matched,
            changed=unsubscribed,
            datasets={"subscribers": {"found": matched, "changed": unsubscribed}},
            message=None if matched else "not a subscriber; the address is suppressed against future marketing",
        )

    async def rectify(self, subject: Subject, corrections: dict[str, str], *,
                      before_commit: ActionHook | None = None) -> ActionOutcome:
        return self._manual("rectification", "send the processor the correction (Art. 16 and 19)")

    async def restrict(self, subject: Subject, *, before_commit: ActionHook | None = None) -> ActionOutcome:
        return self._manual("restriction", "ask the processor to restrict processing (Art. 18 and 19)")

    async def lift_restriction(self, subject: Subject, *,
                               before_commit: ActionHook | None = None) -> ActionOutcome:
        return self._manual("lifting a restriction", "tell the processor the restriction has ended (Art. 18(3))")

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    # -- protocol --------------------------------------------------------------------------

    def _manual(self, what: str, todo: str) -> ActionOutcome:
        return ActionOutcome(
            status="needs_attention",
            message=f"OpenDSR v2 has no request type for {what}, so nothing was sent to "
            f"{self.env.system.label}: the processor must be told manually — {todo}",
        )

    def _not_sent(self, why: str) -> ActionOutcome:
        return ActionOutcome(
            status="needs_attention",
            message=f"nothing was sent to {self.env.system.label} over OpenDSR because {why}: "
            "the processor must be told manually",
        )

    async def _discover(self) -> dict[str, Any]:
        if self._discovery is None:
            shared = self.env.connections  # a worker reads it again only every few minutes
            self._discovery = (await shared.recent(f"opendsr-discovery {self.discovery_url}", self._fetch_discovery)
                               if shared is not None else await self._fetch_discovery())
        return self._discovery

    async def _fetch_discovery(self) -> dict[str, Any]:
        return object_answer(self.name, await self._call("GET", self.discovery_url), "discovery")

    def _identities(self, subject: Subject, discovery: dict[str, Any]) -> list[dict[str, str]]:
        supported = {
            (i.get("identity_type"), i.get("identity_format"))
            for i in discovery.get("supported_identities") or [] if isinstance(i, dict)
        }
        email = subject.email.strip()
        if ("email", "raw") in supported:
            return [{"identity_type": "email", "identity_value": email, "identity_format": "raw"}]
        if ("email", "sha256") in supported:
            digest = hashlib.sha256(email.lower().encode("utf-8")).hexdigest()
            return [{"identity_type": "email", "identity_value": digest, "identity_format": "sha256"}]
        return []

    async def _submit(self, subject: Subject, kind: str, *, callbacks: bool) -> ActionOutcome:
        discovery = await self._discover()
        offered = discovery.get("supported_subject_request_types") or []
        # A list, by the specification: a string "erasure_disabled" must not offer erasure by substring.
        if not isinstance(offered, list) or kind not in offered:
            return self._not_sent(f"its discovery document does not offer {kind} requests")
        identities = self._identities(subject, discovery)
        if not identities:
            return self._not_sent("it accepts no e-mail identity (raw or sha256)")
        request_id = subject_request_id(subject.request_id, self.name, kind, subject.attempt)
        body = {
            "subject_request_id": request_id,
            "subject_request_type": kind,
            "subject_identities": identities,
            "submitted_time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "regulation": self.regulation,
            "status_callback_urls": [self.env.callback_url] if callbacks and self.env.callback_url else [],
            "api_version": API_VERSION,
        }
        response = await self._call("POST", f"{self.base_url}/requests", json=body, accept=(409,))
        # Some processors answer a re-submitted id with 409: the job exists, so follow it.
        answer = ({"subject_request_id": request_id} if response.status_code == 409
                  else job_answer(self.name, response, "a new request", request_id))
        expected = completion_time(answer.get("expected_completion_time"))
        return ActionOutcome(
            status="pending",
            external_id=request_id,
            poll_after_seconds=seconds_until(expected),
            message=f"processor expects completion by {expected:%Y-%m-%d %H:%M} UTC" if expected else None,
        )

    async def _request_status(self, external_id: str) -> dict[str, Any]:
        response = await self._call("GET", f"{self.base_url}/requests/{external_id}", signed=True)
        return job_answer(self.name, response, "a status request", external_id)

    async def _wait_until_completed(self, external_id: str, request_id: str) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.access_timeout
        while True:
            if await closed_meanwhile(self.env, request_id):  # withdrawn meanwhile: the job is called off
                raise ClosedMeanwhile(request_id)
            document = await self._request_status(external_id)
            state = document.get("request_status")
            if state == "completed":
                return document
            if state not in ("pending", "in_progress"):
                # Named only when it is one of OpenDSR's: the processor chooses this text, and
                # it went on to the request's page, the staff alert and the audit trail.
                said = state if state == "cancelled" else "in a status OpenDSR does not have"
                raise PermanentConnectorError(f"system {self.name}: access request {external_id} is {said}")
            if loop.time() + self.poll_interval > deadline:
                # Retryable: the retry re-submits the same id and keeps waiting for the same job.
                raise OpenDsrUnavailable(
                    f"system {self.name}: access request {external_id} not completed within "
                    f"{self.access_timeout:.0f}s"
                )
            await asyncio.sleep(self.poll_interval)

    async def _call(
        self,
        method: str,
        url: str,
        *,
        json: dict[str, Any] | None = None,
        signed: bool | str = False,
        accept: tuple[int, ...] = (),
    ) -> httpx.Response:
        """One HTTP exchange. Errors name the system, method, path and status, never the subject.

        `signed`: True when the response must carry a valid signature (status responses),
        "if_present" when one is checked only if sent (results: their transport is not specified).
        """
        path = shown_path(url)
        if _origin(url) not in self._origins:
            # A URL from the processor's own answers (results_url): never sent anywhere but the
            # configured host, with or without credentials.
            raise PermanentConnectorError(
                f"system {self.name}: the processor pointed {method} {path} at another host than the "
                "configured one; not followed")
        try:
            response = await self._http.request(method, url, json=json, headers=self._auth_headers)
        except httpx.TransportError as exc:
            # The caps by what they are ("longer than the connector reads"), the rest by name.
            raise OpenDsrUnavailable(f"system {self.name}: {method} {path} failed: {what_failed(exc)}") from exc
        code = response.status_code
        if code == 429 or code >= 500:
            raise OpenDsrUnavailable(f"system {self.name}: processor answered HTTP {code} to {method} {path}")
        if code in accept:
            return response
        if not response.is_success:
            raise PermanentConnectorError(f"system {self.name}: processor answered HTTP {code} to {method} {path}")
        if signed == "if_present" and SIGNATURE_HEADER not in response.headers:
            return response
        if signed and self.verify_signatures:
            await self._check_signature(response, f"{method} {path}")
        return response

    async def _check_signature(self, response: httpx.Response, what: str) -> None:
        try:
            anchor = trust_anchor_for(self.env.system, self.env.settings.environment)
            valid = await self._certificates.verify(anchor, response.content, response.headers.get(SIGNATURE_HEADER))
        except InsecureTrustAnchor as exc:
            raise PermanentConnectorError(f"system {self.name}: {exc}") from None
        except ProcessorCertificateError as exc:
            raise OpenDsrUnavailable(f"system {self.name}: cannot get the processor certificate: {exc}") from None
        if not valid:
            raise PermanentConnectorError(
                f"system {self.name}: the response to {what} is not signed by the processor certificate"
            )
