"""Certificates for custom domains from an ACME CA (Let's Encrypt; pebble in tests), proven by HTTP-01.

The protocol is spoken by the certbot project's `acme` library. It is synchronous (requests), so every
exchange with the CA runs in a worker thread (`asyncio.to_thread`): the platform's event loop never waits on
the CA. The challenge answers are published through a `ChallengeResponder` the caller passes in (the edge
answers GET /.well-known/acme-challenge/<token> from an HAProxy map), so this module knows nothing of HAProxy.

Nothing here keeps state between calls: the account is its key file (created once, 0600), and each call
looks the account up with that key (RFC 8555 §7.3.1: the CA answers with the existing account).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import josepy as jose
import requests
from acme import challenges, client, crypto_util, messages
from acme import errors as acme_errors
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shipyard.edge.acme_failures import (CHALLENGE_PATH, _domain, acme_failure, authorization_failure,
                                         challenge_url, validation_failure)
from shipyard.errors import PlatformError

__all__ = ["CHALLENGE_PATH", "AcmeAccount", "AcmeClient", "ChallengeResponder", "IssuedCertificate", "acme_failure",
           "authorization_failure", "challenge_url", "validation_failure"]

LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
# Where the CA fetches the key authorization: http://<domain>/.well-known/acme-challenge/<token>, on port 80.

DEADLINE = 120.0  # seconds from the new order to the downloaded certificate
_POLL_INTERVAL = 1.0  # seconds between looks at the authorizations being validated
_NETWORK_TIMEOUT = 30  # per HTTP request to the CA
# The library retries a request refused for a stale nonce (badNonce) once; RFC 8555 §6.5 says the client should
# simply retry, and a CA may reject several in a row (pebble rejects 5 % of good nonces on purpose), so each
# request gets this many more rounds of the library's two attempts. Safe: a refused nonce means nothing was done.
_BAD_NONCE_ROUNDS = 4
_USER_AGENT = "shipyard-acme"

T = TypeVar("T")


class ChallengeResponder(Protocol):
    """Makes http://<any domain>/.well-known/acme-challenge/<token> answer `key_authorization` (200, text/plain)."""

    async def publish(self, token: str, key_authorization: str) -> None: ...

    async def withdraw(self, token: str) -> None: ...


@dataclass(frozen=True)
class IssuedCertificate:
    names: tuple[str, ...]  # as requested (normalized); every one is in the leaf's subjectAltName
    chain_pem: str  # the leaf first, then the intermediates the CA sent
    key_pem: str = field(repr=False)  # PKCS#8, unencrypted; kept out of repr so a logged result leaks no key
    not_before: dt.datetime  # UTC
    not_after: dt.datetime  # UTC

    @property
    def lifetime(self) -> dt.timedelta:
        return self.not_after - self.not_before

    @property
    def haproxy_pem(self) -> str:
        """Chain then key in one PEM: what HAProxy's `crt` (and the runtime API's `set ssl cert`) takes."""
        return self.chain_pem + self.key_pem


@dataclass(frozen=True)
class AcmeAccount:
    url: str
    created: bool  # False: the key was already registered and the CA answered with that account


@dataclass(frozen=True)
class AcmeClient:
    """One CA (its directory URL) and one account (its key file); `issue` is safe to run concurrently."""

    directory_url: str
    account_key_path: Path
    responder: ChallengeResponder
    contact_email: str | None = None
    # A PEM file of the CAs to trust for the directory's HTTPS (e.g. pebble's); None: the usual trust store.
    ca_bundle: Path | None = None
    deadline: float = DEADLINE

    async def register(self) -> AcmeAccount:
        """Create the account key if there is none and register it (terms agreed); idempotent."""
        return (await asyncio.to_thread(self._connect)).account

    async def issue(self, domains: Sequence[str]) -> IssuedCertificate:
        """A certificate for `domains` (one key, one chain), each name proven by HTTP-01 through the responder."""
        names = normalize_domains(domains)
        deadline = time.monotonic() + self.deadline
        key = ec.generate_private_key(ec.SECP256R1())  # a new key per certificate: a renewal is a rekey too
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode()
        csr_pem = crypto_util.make_csr(key_pem.encode(), list(names))
        session = await asyncio.to_thread(self._connect)
        order = await self._ask(f"order a certificate for {', '.join(names)}", session.acme.new_order, csr_pem)
        todo = [(authz, _http01(authz)) for authz in order.authorizations if not _already_valid(authz)]
        published: list[str] = []
        try:
            for _, challenge in todo:
                token = challenge.chall.encode("token")
                await self.responder.publish(token, challenge.chall.key_authorization(session.key))
                published.append(token)
            for authz, challenge in todo:
                await self._ask(f"start the validation of {_domain(authz)}", session.acme.answer_challenge,
                                challenge, challenge.chall.response(session.key))
            await self._await_validation(session.acme, [authz for authz, _ in todo], deadline)
        except BaseException:
            # The failure above says what went wrong; a token left published is harmless (single use, random).
            with contextlib.suppress(Exception):
                await _withdraw(self.responder, published)
            raise
        await _withdraw(self.responder, published)
        remaining = dt.timedelta(seconds=max(deadline - time.monotonic(), 1.0))
        # The library's deadline is a naive local datetime (it compares with datetime.now()).
        order = await self._ask(f"finish the certificate for {', '.join(names)}", session.acme.finalize_order,
                                order, dt.datetime.now() + remaining)
        return issued_certificate(names, order.fullchain_pem, key_pem)

    def _connect(self) -> _Session:
        """The directory and the account, in a worker thread (network and file I/O)."""
        if self.ca_bundle is not None and not self.ca_bundle.is_file():
            raise PlatformError(f"The CA bundle {self.ca_bundle} for the ACME server {self.directory_url} "
                                "does not exist", hint="Give the path of a PEM file of the CA certificates to trust.")
        private_key = load_or_create_account_key(self.account_key_path)
        jwk, alg = _jwk(private_key)
        net = _Network(jwk, alg, self.ca_bundle)
        directory = self._call("read its directory", client.ClientV2.get_directory, self.directory_url, net)
        acme = client.ClientV2(directory, net)
        registration = messages.NewRegistration.from_data(email=self.contact_email, terms_of_service_agreed=True)

        def register() -> AcmeAccount:
            try:
                return AcmeAccount(acme.new_account(registration).uri, created=True)
            except acme_errors.ConflictError as existing:  # this key already has an account: its URL
                net.account = messages.RegistrationResource(body=registration, uri=existing.location)
                return AcmeAccount(existing.location, created=False)

        return _Session(acme, jwk, self._call("register the account", register))

    async def _ask(self, doing: str, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(self._call, doing, call, *args)

    def _call(self, doing: str, call: Callable[..., T], *args: Any) -> T:
        """`call(*args)`, with the library's and the network's failures told as PlatformError."""
        try:
            return call(*args)
        except (acme_errors.Error, requests.RequestException, OSError) as exc:
            raise acme_failure(exc, self.directory_url, doing) from exc

    async def _await_validation(self, acme: client.ClientV2, authzs: list[messages.AuthorizationResource],
                                deadline: float) -> None:
        """Poll until every authorization is valid; PlatformError for the first invalid one or at the deadline.

        Each look is a request in a worker thread; the waits between are the event loop's, so a cancelled
        issue stops polling at once.
        """
        pending = list(authzs)
        while pending:
            still: list[messages.AuthorizationResource] = []
            for authz in pending:
                authz, _ = await self._ask(f"check the validation of {_domain(authz)}", acme.poll, authz)
                if authz.body.status == messages.STATUS_VALID:
                    continue
                if authz.body.status not in (messages.STATUS_PENDING, messages.STATUS_PROCESSING):
                    raise authorization_failure(authz)
                still.append(authz)
            pending = still
            if not pending:
                return
            if time.monotonic() + _POLL_INTERVAL > deadline:
                names = ", ".join(_domain(authz) for authz in pending)
                raise PlatformError(f"The ACME server {self.directory_url} did not finish validating {names} "
                                    f"within {self.deadline:.0f} s",
                                    hint="The CA may be slow or down: try again later.")
            await asyncio.sleep(_POLL_INTERVAL)


@dataclass(frozen=True)
class _Session:
    acme: client.ClientV2
    key: jose.JWK
    account: AcmeAccount


class _Network(client.ClientNetwork):
    """The library's transport, verifying the CA with a given bundle and retrying badNonce more than once."""

    def __init__(self, key: jose.JWK, alg: jose.JWASignature, ca_bundle: Path | None) -> None:
        super().__init__(key=key, alg=alg, user_agent=_USER_AGENT, timeout=_NETWORK_TIMEOUT)
        if ca_bundle is not None:
            # The library hands `verify_ssl` to requests as `verify`, which takes a CA bundle's path as well as
            # True; this is how a private CA (pebble's) is trusted without ever turning verification off.
            self.verify_ssl = str(ca_bundle)  # type: ignore[assignment]

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        for _ in range(_BAD_NONCE_ROUNDS):
            try:
                return super().post(*args, **kwargs)
            except messages.Error as error:
                if error.code != "badNonce":
                    raise
        return super().post(*args, **kwargs)


async def _withdraw(responder: ChallengeResponder, tokens: list[str]) -> None:
    failures = [result for result in await asyncio.gather(*(responder.withdraw(token) for token in tokens),
                                                            return_exceptions=True)
                if isinstance(result, BaseException)]
    if failures:
        raise failures[0]


# --- the account key ---------------------------------------------------------------------------------------------

AccountKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def load_or_create_account_key(path: Path) -> AccountKey:
    """The account's private key at `path`; made there (EC P-256, mode 0600) the first time."""
    try:
        return _read_account_key(path)
    except FileNotFoundError:
        pass
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written whole to a 0600 temporary file, then linked into place: the key is never seen half written, and if
    # another process made one meanwhile, link fails and both use that one (one key, one account).
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)
    return _read_account_key(path)


def _read_account_key(path: Path) -> AccountKey:
    data = path.read_bytes()  # FileNotFoundError passes through: the caller makes the key
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise PlatformError(f"The ACME account key {path} could not be read: {exc}",
                            hint="Restore it from a backup, or move it away so that a new account is registered "
                                 "(certificates already issued keep working).") from None
    if not isinstance(key, AccountKey) or (isinstance(key, ec.EllipticCurvePrivateKey)
                                           and key.curve.name not in _EC_ALGS):
        raise PlatformError(f"The ACME account key {path} is of a kind ACME servers do not take",
                            hint="Use an EC P-256 or RSA key, or move the file away so that a new one is made.")
    return key


_EC_ALGS = {"secp256r1": jose.ES256, "secp384r1": jose.ES384}


def _jwk(key: AccountKey) -> tuple[jose.JWK, jose.JWASignature]:
    """The key as a JWK and the JWS algorithm that signs with it (RFC 7518: ES256 goes with P-256)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return jose.JWKEC(key=key), _EC_ALGS[key.curve.name]
    return jose.JWKRSA(key=key), jose.RS256


# --- pure helpers ------------------------------------------------------------------------------------------------

def normalize_domains(domains: Iterable[str]) -> tuple[str, ...]:
    """Lower case, no trailing dot, each once, in the given order; PlatformError for a name HTTP-01 can't prove."""
    names: list[str] = []
    for raw in domains:
        name = raw.strip().lower().removesuffix(".")
        problem = _domain_problem(name)
        if problem:
            raise PlatformError(f"Cannot get a certificate for {raw!r}: {problem}",
                                hint="Give the domain's DNS name, e.g. shop.example.com.")
        if name not in names:
            names.append(name)
    if not names:
        raise PlatformError("Cannot get a certificate without a domain name",
                            hint="Give at least one DNS name, e.g. shop.example.com.")
    return tuple(names)


def _domain_problem(name: str) -> str | None:
    if name.startswith("*."):
        return "a wildcard can only be proven over DNS (DNS-01), and the edge proves names over HTTP (HTTP-01)"
    if not name.isascii():
        return "write an internationalized name in its ASCII form (xn--…)"
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2:
        return "not a fully qualified DNS name"
    for label in labels:
        if not (0 < len(label) <= 63 and label.replace("-", "").isalnum()) or label[0] == "-" or label[-1] == "-":
            return f"{label!r} is not a valid DNS label (letters, digits and inner hyphens, at most 63)"
    return None


# Renew once less than a third of the lifetime or 30 days remains, whichever is less. For Let's Encrypt's 90-day
# certificates both are 30 days (certbot's default): 30 days to retry through a CA outage or a broken DNS. For
# short-lived ones (6 days) only the third works (30 days would always be due); for year-long ones from other CAs
# 30 days is retry time enough without replacing them after eight months.
RENEW_BEFORE = dt.timedelta(days=30)


def renewal_at(not_after: dt.datetime, lifetime: dt.timedelta) -> dt.datetime:
    """When the certificate is due for renewal."""
    return not_after - min(lifetime / 3, RENEW_BEFORE)


def renewal_due(not_after: dt.datetime, now: dt.datetime, lifetime: dt.timedelta) -> bool:
    return now >= renewal_at(not_after, lifetime)


def issued_certificate(names: tuple[str, ...], fullchain_pem: str, key_pem: str) -> IssuedCertificate:
    """The CA's chain checked against what was asked: the leaf names every domain and holds our key."""
    try:
        chain = x509.load_pem_x509_certificates(fullchain_pem.encode())
    except ValueError as exc:
        raise PlatformError(f"The ACME server sent a certificate for {', '.join(names)} that could not be read: "
                            f"{exc}", hint="Try again; if it persists, the CA is at fault.") from None
    leaf = chain[0]
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    missing = [name for name in names if name not in certificate_names(leaf)]
    if missing or _spki(leaf.public_key()) != _spki(key.public_key()):
        what = f"without {', '.join(missing)}" if missing else "for another key"
        raise PlatformError(f"The ACME server issued a certificate {what} (asked: {', '.join(names)})",
                            hint="Try again; if it persists, the CA is at fault.")
    return IssuedCertificate(
        names=names,
        chain_pem="".join(cert.public_bytes(serialization.Encoding.PEM).decode() for cert in chain),
        key_pem=key_pem,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
    )


def certificate_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(san.get_values_for_type(x509.DNSName))


def _spki(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _already_valid(authz: messages.AuthorizationResource) -> bool:
    # A CA may reuse an authorization this account proved recently (pebble does half the time): nothing to answer.
    return authz.body.status == messages.STATUS_VALID


def _http01(authz: messages.AuthorizationResource) -> messages.ChallengeBody:
    for challenge in authz.body.challenges:
        if isinstance(challenge.chall, challenges.HTTP01):
            return challenge
    raise PlatformError(f"The ACME server offers no HTTP-01 challenge for {_domain(authz)}",
                        hint="Use a CA that validates over HTTP (Let's Encrypt does), or a name it can validate so.")
