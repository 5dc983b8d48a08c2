"""ACME (HTTP-01) end to end against a real pebble on loopback, and the pure helpers by value."""

from __future__ import annotations

import asyncio
import datetime as dt
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.verification import PolicyBuilder, Store

from shipyard.edge.acme import (
    AcmeAccount,
    AcmeClient,
    ChallengeResponder,
    IssuedCertificate,
    certificate_names,
    load_or_create_account_key,
    normalize_domains,
    renewal_at,
    renewal_due,
    validation_failure,
)
from shipyard.errors import PlatformError

from .pebble import CHALLTESTSRV, PEBBLE, ChallengeServer, Pebble, running_pebble

UTC = dt.UTC


class PublishingResponder:
    """What the edge does, on the test's challenge server: the token answers until withdrawn."""

    def __init__(self, server: ChallengeServer) -> None:
        self.server = server
        self.published: list[str] = []

    async def publish(self, token: str, key_authorization: str) -> None:
        self.server.answers[token] = key_authorization
        self.published.append(token)

    async def withdraw(self, token: str) -> None:
        del self.server.answers[token]


class SilentResponder:
    """A responder that never makes the token answer (as an edge whose port 80 nobody reaches)."""

    async def publish(self, token: str, key_authorization: str) -> None:
        pass

    async def withdraw(self, token: str) -> None:
        pass


@pytest.fixture(scope="module")
def challenges() -> Iterator[ChallengeServer]:
    with ChallengeServer().running() as server:
        yield server


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory, challenges: ChallengeServer) -> Iterator[Pebble]:
    if not PEBBLE.exists() or not CHALLTESTSRV.exists():
        pytest.skip(f"{PEBBLE} is missing: install Debian's `pebble` package (.ci/run does) to test ACME end to end")
    with running_pebble(tmp_path_factory.mktemp("pebble"), challenges.port) as server:
        yield server


def acme_client(pebble: Pebble, key_path: Path, responder: ChallengeResponder) -> AcmeClient:
    return AcmeClient(pebble.directory_url, key_path, responder, contact_email="ops@example.test",
                      ca_bundle=pebble.ca_bundle, deadline=20)


def test_issues_a_certificate_for_two_names(tmp_path: Path, pebble: Pebble, challenges: ChallengeServer) -> None:
    responder = PublishingResponder(challenges)
    cert = asyncio.run(acme_client(pebble, tmp_path / "acme" / "account.pem", responder)
                       .issue(["Shop.Example.Test.", "www.shop.example.test"]))

    assert cert.names == ("shop.example.test", "www.shop.example.test")
    chain = x509.load_pem_x509_certificates(cert.chain_pem.encode())
    leaf = chain[0]
    assert set(certificate_names(leaf)) == {"shop.example.test", "www.shop.example.test"}
    # The chain leads to the root pebble issues under, for both names.
    store = Store([pebble.issuing_root()])
    for name in cert.names:
        verifier = PolicyBuilder().store(store).build_server_verifier(x509.DNSName(name))
        verifier.verify(leaf, chain[1:])
    # The key is the certificate's, new (EC P-256), and not the account's.
    key = serialization.load_pem_private_key(cert.key_pem.encode(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert key.public_key().public_numbers() == leaf.public_key().public_numbers()  # type: ignore[union-attr]
    account_key = load_or_create_account_key(tmp_path / "acme" / "account.pem")
    assert account_key.public_key().public_numbers() != leaf.public_key().public_numbers()  # type: ignore[union-attr]
    assert cert.not_after == leaf.not_valid_after_utc and cert.not_after.tzinfo == UTC
    assert cert.not_after > dt.datetime.now(UTC) + dt.timedelta(days=1)
    assert "PRIVATE KEY" not in repr(cert) and cert.haproxy_pem.endswith(cert.key_pem)
    # Both tokens were answered (unless pebble reused an authorization), and none is left published.
    assert len(responder.published) <= 2 and challenges.answers == {}
    assert stat.S_IMODE((tmp_path / "acme" / "account.pem").stat().st_mode) == 0o600


def test_a_token_nobody_serves_fails_naming_the_domain_and_the_reason(tmp_path: Path, pebble: Pebble) -> None:
    with pytest.raises(PlatformError) as failure:
        asyncio.run(acme_client(pebble, tmp_path / "account.pem", SilentResponder()).issue(["nowhere.example.test"]))

    message = failure.value.message
    assert "nowhere.example.test" in message
    assert "http://nowhere.example.test/.well-known/acme-challenge/" in message
    assert "404" in message  # pebble's own detail: what its validation got back
    assert "port 80" in (failure.value.hint or "")


def test_the_account_key_is_made_once_and_reused(tmp_path: Path, pebble: Pebble, challenges: ChallengeServer) -> None:
    key_path = tmp_path / "account.pem"
    acme = acme_client(pebble, key_path, PublishingResponder(challenges))

    async def scenario() -> tuple[AcmeAccount, AcmeAccount, list[IssuedCertificate]]:
        first = await acme.register()
        key = key_path.read_bytes()
        certs = [await acme.issue(["shop.example.test"]) for _ in range(2)]
        assert key_path.read_bytes() == key
        return first, await acme.register(), certs

    first, again, (one, two) = asyncio.run(scenario())
    assert first.created and not again.created  # one registration: the key's account, found again
    assert again.url == first.url
    assert one.key_pem != two.key_pem  # a new certificate key every time
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert sorted(path.name for path in tmp_path.iterdir()) == ["account.pem"]  # no temporary file left


def test_an_unreadable_account_key_is_reported(tmp_path: Path) -> None:
    (tmp_path / "account.pem").write_text("not a key")
    with pytest.raises(PlatformError, match="could not be read"):
        load_or_create_account_key(tmp_path / "account.pem")


def test_an_untrusted_ca_is_refused(tmp_path: Path, pebble: Pebble) -> None:
    acme = AcmeClient(pebble.directory_url, tmp_path / "account.pem", SilentResponder())  # the system's CAs only
    with pytest.raises(PlatformError, match="is not trusted"):
        asyncio.run(acme.register())


def test_domains_are_normalized_and_checked() -> None:
    assert normalize_domains(["Shop.Example.com.", "shop.example.com", " www.example.com"]) == (
        "shop.example.com", "www.example.com")
    for bad in ["*.example.com", "localhost", "-a.example.com", "a_b.example.com", "bücher.example", ""]:
        with pytest.raises(PlatformError):
            normalize_domains([bad])
    with pytest.raises(PlatformError, match="without a domain"):
        normalize_domains([])


@pytest.mark.parametrize(("lifetime_days", "left_days", "due"), [
    (90, 31, False), (90, 30, True),  # Let's Encrypt: a third and 30 days agree
    (6, 2.1, False), (6, 2, True),  # short-lived: a third of the lifetime
    (365, 31, False), (365, 30, True),  # long-lived: 30 days
    (90, -1, True),  # expired
])
def test_renewal_is_due_with_a_third_or_30_days_left(lifetime_days: float, left_days: float, due: bool) -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=UTC)
    not_after = now + dt.timedelta(days=left_days)
    assert renewal_due(not_after, now, dt.timedelta(days=lifetime_days)) is due


def test_renewal_at() -> None:
    not_after = dt.datetime(2030, 4, 1, tzinfo=UTC)
    assert renewal_at(not_after, dt.timedelta(days=90)) == dt.datetime(2030, 3, 2, tzinfo=UTC)


def test_validation_failure_says_what_to_check() -> None:
    url = "http://shop.example.com/.well-known/acme-challenge/abc"
    dns = validation_failure("shop.example.com", url, "dns", "NXDOMAIN looking up A for shop.example.com")
    assert dns.message == f"The ACME server could not verify shop.example.com by fetching {url}: " \
                          "NXDOMAIN looking up A for shop.example.com"
    assert "A/AAAA record" in (dns.hint or "")
    assert "old host or a CDN" in (validation_failure("shop.example.com", url, "unauthorized", "404").hint or "")
    assert "port 80 open" in (validation_failure("shop.example.com", url, "connection", "refused").hint or "")
