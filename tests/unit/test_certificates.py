"""The certificate reconciler: which hostnames get a certificate from whom, and what a failure records."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from cryptography.fernet import Fernet

from shipyard.addons.tls import CertificateAuthority
from shipyard.control.certificates import Certificates, due
from shipyard.edge.certificates import EdgeCertificates
from shipyard.errors import PlatformError
from shipyard.settings import Settings
from shipyard.store.secrets import Cipher
from shipyard.store.store import Store


class FolderEdge:
    """The edge's certificate files without an HAProxy: what a stopped edge would load at its start."""

    def __init__(self, folder: Path) -> None:
        self.certificates = EdgeCertificates(folder / "certs", folder / "certs.list", api=None)  # type: ignore[arg-type]
        self.certificates.prepare()

    async def install_certificate(self, hostname: str, pem: str) -> None:
        await self.certificates.install(hostname, pem, running=False)

    async def remove_certificate(self, hostname: str) -> None:
        await self.certificates.remove(hostname, running=False)


def test_apps_get_the_platforms_certificates_domains_acme_ones_and_failures_say_why(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, https_port=8443)
    store = Store(tmp_path / "shipyard.db", Cipher(Fernet.generate_key()), tmp_path / "backups")
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    acme_ca = CertificateAuthority.load_or_create(tmp_path / "acme-ca")  # stands in for Let's Encrypt's
    edge = FolderEdge(tmp_path / "edge")
    asked: list[str] = []

    async def acme(hostname: str) -> tuple[str, str]:
        asked.append(hostname)
        if hostname == "broken.example.test":
            raise PlatformError("The ACME server could not verify broken.example.test: connection refused")
        return acme_ca.issue_pem([hostname], 90), "ACME (test)"

    certificates = Certificates(settings, store, edge, ca, acme)  # type: ignore[arg-type]
    store.create_app("shop")
    store.add_domain("shop", "shop.example.test")
    store.add_domain("shop", "Broken.Example.Test.")
    asyncio.run(certificates.converge())
    assert edge.certificates.hostnames() == {"shop.localhost", "shop.example.test"}
    statuses = {d.hostname: (d.status, d.detail) for d in store.list_domains("shop")}
    assert statuses["shop.example.test"] == ("issued", "by ACME (test)")
    assert statuses["broken.example.test"] == ("failed", "The ACME server could not verify broken.example.test: "
                                                         "connection refused")
    assert certificates.publicly_trusted("shop.example.test") and not certificates.publicly_trusted("shop.localhost")

    # Nothing due: nothing asked again; a failed domain waits an hour before the next try.
    asyncio.run(certificates.converge())
    assert sorted(asked) == ["broken.example.test", "shop.example.test"]

    store.remove_domain("shop", "shop.example.test")
    store.delete_app("shop")
    asyncio.run(certificates.converge())
    assert edge.certificates.hostnames() == set()
    store.close()


def test_a_certificate_is_due_when_a_third_of_its_life_is_left() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    assert due(None, now, 90)
    assert not due(now + dt.timedelta(days=31), now, 90) and due(now + dt.timedelta(days=29), now, 90)
    assert not due(now + dt.timedelta(days=800), now, 825) and due(now + dt.timedelta(days=20), now, 825)


def test_a_public_base_domain_is_certified_by_acme_and_localhost_never_is(tmp_path: Path) -> None:
    from shipyard.control.certificates import is_public

    assert is_public("apps.example.com") and is_public("shop.io")
    assert not any(is_public(h) for h in ("localhost", "todo.localhost", "nas.local", "a.test", "x.home.arpa"))
    store = Store(tmp_path / "shipyard.db", Cipher(Fernet.generate_key()), tmp_path / "backups")
    store.create_app("shop")
    public = Certificates(Settings(data_dir=tmp_path, base_domain="apps.example.com"), store,
                          FolderEdge(tmp_path / "edge"), None)  # type: ignore[arg-type]
    assert [(w.hostname, w.public) for w in public.wanted()] == [("shop.apps.example.com", True)]
    store.close()
