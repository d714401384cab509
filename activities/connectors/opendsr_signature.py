"""OpenDSR signatures: processors sign callbacks (and responses) over the raw body with the key of
the certificate their discovery document points at; controllers verify before parsing anything.

Signatures are RSASSA-PKCS1-v1_5 over SHA-256 (ECDSA over SHA-256 is accepted too: both are
FIPS 186-4 schemes), sent base64-encoded in `X-OpenDSR-Signature`.

We check that the signature matches the certificate the processor publishes at its configured
discovery URL; we do not validate the certificate chain. The specification asks processors for a
CA-issued certificate, the demo processor uses a self-signed one, and the trust anchor here is the
discovery URL in our own policy, fetched by us. That anchor is only as good as the channel it is
fetched over: outside development it must be https, or the system's config pins the certificate
itself (`processor_certificate_pem`), and then nothing is fetched at all.

Anyone can post a callback with a bad signature. Such a post must not make us fetch anything
each time (a reflection and load amplifier): the certificate is re-fetched after a failed
signature at most once per `refresh_interval`, and a failed fetch is not retried within it either.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import functools
import ipaddress
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from activities.connectors.bounded_http import DOCUMENT_BYTES, NotJson, bounded_client, json_object

SIGNATURE_HEADER = "X-OpenDSR-Signature"
DOMAIN_HEADER = "X-OpenDSR-Processor-Domain"

_CERTIFICATE_YEARS = 10


class ProcessorCertificateError(Exception):
    """The processor's certificate cannot be obtained: discovery or certificate fetch failed, or
    what came back is not a usable certificate."""


class InsecureTrustAnchor(ProcessorCertificateError):
    """Outside development, a plain-http discovery URL with no pinned certificate: anyone on the
    network path could substitute the certificate, so nothing it signs is believed."""


@dataclass(frozen=True)
class TrustAnchor:
    """What vouches for a processor's signatures: its discovery URL, or a certificate pinned in
    the system's config (then the URL is never fetched for certificates)."""

    discovery_url: str
    pinned_certificate: bytes | None = None


def trust_anchor(discovery_url: str, pinned_pem: str | None, environment: str) -> TrustAnchor:
    """The anchor for a system, refused (InsecureTrustAnchor) when it is plain http outside
    development. The demo processor and the tests run over http on loopback in development."""
    pinned = pinned_pem.encode("ascii") if pinned_pem else None
    if pinned is None and environment != "development" and urlsplit(discovery_url).scheme != "https":
        raise InsecureTrustAnchor(
            f"discovery URL {discovery_url} is not https and no processor_certificate_pem is pinned")
    return TrustAnchor(discovery_url, pinned)


@functools.lru_cache(maxsize=4)
def _signing_key(private_key_pem: bytes) -> Any:
    # Loading an RSA key checks it, which costs about 100 ms of CPU: once per key, not per body.
    return serialization.load_pem_private_key(private_key_pem, password=None)


def sign(body: bytes, private_key_pem: bytes) -> str:
    """The base64 signature of `body`, exactly as it goes over the wire."""
    key = _signing_key(private_key_pem)
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(body, ec.ECDSA(hashes.SHA256()))
    else:
        raise ValueError(f"unsupported signing key type {type(key).__name__}")
    return base64.b64encode(signature).decode("ascii")


def verify(body: bytes, signature_b64: str, certificate_pem: bytes) -> bool:
    """Whether `signature_b64` is a valid signature of the raw `body` by the certificate's key.

    Never raises: a malformed signature, header or certificate is simply not a valid signature.
    """
    try:
        signature = base64.b64decode("".join(signature_b64.split()), validate=True)
        public_key = x509.load_pem_x509_certificate(certificate_pem).public_key()
        if isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, body, ec.ECDSA(hashes.SHA256()))
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, binascii.Error, AttributeError):
        return False
    return True


def generate_processor_identity(common_name: str) -> tuple[bytes, bytes]:
    """A new RSA 2048 key and a self-signed certificate for it, valid for ten years.

    Returns (private key PEM, certificate PEM). `common_name` is the processor's domain; it also
    goes in the subject alternative name, as an IP address when it is one.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dsrflow demo processor"),
    ])
    try:
        alt_name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(common_name))
    except ValueError:
        alt_name = x509.DNSName(common_name)
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365 * _CERTIFICATE_YEARS + 2))
        .add_extension(x509.SubjectAlternativeName([alt_name]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, certificate.public_bytes(serialization.Encoding.PEM)


class ProcessorCertificates:
    """Processor certificates by discovery URL, fetched once and kept until invalidated.

    `get` reads the discovery document, follows its `processor_certificate` URL (which must be on
    the discovery document's host, as the specification requires) and caches the PEM. A callback
    whose signature fails against a cached certificate may come after a key rotation: `verify`
    retries with a freshly fetched certificate, unless one was fetched (or failed to be) within
    the last `refresh_interval` seconds.
    """

    def __init__(self, client: httpx.AsyncClient | None = None, *, timeout: float = 10.0,
                 refresh_interval: float = 60.0) -> None:
        self._client = client or bounded_client(limit=DOCUMENT_BYTES, timeout=timeout)
        self._owns_client = client is None
        self.refresh_interval = refresh_interval
        self._cache: dict[str, bytes] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._fetched_at: dict[str, float] = {}  # last fetch attempt, whatever its outcome
        self._failure: dict[str, ProcessorCertificateError] = {}

    async def get(self, discovery_url: str) -> bytes:
        cached = self._cache.get(discovery_url)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(discovery_url, asyncio.Lock())
        async with lock:
            cached = self._cache.get(discovery_url)
            if cached is None:
                failure = self._failure.get(discovery_url)
                if failure is not None and not self._may_fetch(discovery_url):
                    raise failure
                self._fetched_at[discovery_url] = time.monotonic()
                try:
                    cached = await self._fetch(discovery_url)
                except ProcessorCertificateError as exc:
                    self._failure[discovery_url] = exc
                    raise
                self._failure.pop(discovery_url, None)
                self._cache[discovery_url] = cached
            return cached

    def _may_fetch(self, discovery_url: str) -> bool:
        last = self._fetched_at.get(discovery_url)
        return last is None or time.monotonic() - last >= self.refresh_interval

    def invalidate(self, discovery_url: str) -> None:
        self._cache.pop(discovery_url, None)

    async def verify(self, anchor: TrustAnchor | str, body: bytes, signature_b64: str | None) -> bool:
        """Verify a raw body against the processor's certificate, refreshing it on failure at most
        once per `refresh_interval`.

        Raises ProcessorCertificateError only when no certificate can be obtained at all.
        """
        if isinstance(anchor, str):
            anchor = TrustAnchor(anchor)
        if not signature_b64:
            return False
        if anchor.pinned_certificate is not None:
            return verify(body, signature_b64, anchor.pinned_certificate)
        url = anchor.discovery_url
        if verify(body, signature_b64, await self.get(url)):
            return True
        if not self._may_fetch(url):
            return False
        self.invalidate(url)
        return verify(body, signature_b64, await self.get(url))

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def _fetch(self, discovery_url: str) -> bytes:
        try:
            response = await self._client.get(discovery_url, headers={"Accept": "application/json"})
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ProcessorCertificateError(f"discovery document {discovery_url}: {exc}") from None
        try:
            # Any media type, as the connector reads it (activities/connectors/opendsr_answers.py).
            location = json_object(response, labelled=False).get("processor_certificate")
        except NotJson as exc:
            raise ProcessorCertificateError(f"discovery document {discovery_url} {exc}") from None
        if not isinstance(location, str) or not location:
            raise ProcessorCertificateError(f"discovery document {discovery_url} names no processor_certificate")
        certificate_url = urljoin(discovery_url, location)
        # Same origin as the discovery document (scheme, host and port): an https document naming
        # an http certificate let anyone on the path serve their own key, which then verified the
        # callbacks and status answers that mark erasures done (attacker audit).
        cert, discovery = urlsplit(certificate_url), urlsplit(discovery_url)
        if (cert.scheme, cert.hostname, cert.port) != (discovery.scheme, discovery.hostname, discovery.port):
            raise ProcessorCertificateError(
                f"discovery document {discovery_url}: processor_certificate is not on the document's own "
                "origin (scheme, host and port)"
            )
        try:
            response = await self._client.get(certificate_url)
            response.raise_for_status()
            pem = response.content
            x509.load_pem_x509_certificate(pem)
        except httpx.HTTPError as exc:
            raise ProcessorCertificateError(f"processor certificate {certificate_url}: {exc}") from None
        except ValueError:
            raise ProcessorCertificateError(f"processor certificate {certificate_url} is not a PEM certificate") from None
        return pem
