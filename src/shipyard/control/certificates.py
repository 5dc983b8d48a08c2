"""Certificates converge to the apps' hostnames: every `<app>.<base_domain>` and custom domain gets one.

The platform's own CA signs the base domain's hostnames (as Caddy does for `*.localhost`: `shipyard ca` says
how to trust it) and, without ACME, the custom domains too. With an ACME directory set, custom domains get
publicly trusted certificates by HTTP-01, answered by the edge itself. Each domain's state (pending, issued,
failed and why) is in the store for `shipyard domains list`. Renewal is the same loop: a certificate due is
issued again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from shipyard.addons.tls import CertificateAuthority
from shipyard.edge.acme import AcmeClient, ChallengeResponder, renewal_due
from shipyard.edge.certificates import certificate_path
from shipyard.edge.haproxy import Edge
from shipyard.errors import ShipyardError
from shipyard.settings import Settings
from shipyard.store.store import Store

INTERNAL_DAYS = 825
CHECK_INTERVAL = 3600.0  # renewals are looked for hourly; changes (a new app, a domain) converge at once

# Issues a certificate for one hostname: its PEM (chain then key) and its issuer's description.
Issue = Callable[[str], Awaitable[tuple[str, str]]]


@dataclass(frozen=True)
class Wanted:
    hostname: str
    app: str
    custom: bool  # a custom domain, else the app's `<app>.<base_domain>`
    public: bool  # a name the world resolves: ACME certifies it when set up


# Names no public CA will certify (RFC 6761, 6762, 8375 and the de facto private ones).
PRIVATE_SUFFIXES = ("localhost", "local", "test", "example", "invalid", "internal", "home.arpa", "lan")


def is_public(hostname: str) -> bool:
    return not any(hostname == s or hostname.endswith(f".{s}") for s in PRIVATE_SUFFIXES)


def not_after(pem_file: Path) -> dt.datetime | None:
    try:
        return x509.load_pem_x509_certificate(pem_file.read_bytes()).not_valid_after_utc
    except (OSError, ValueError):
        return None


def signed_by(pem_file: Path, ca: CertificateAuthority) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(pem_file.read_bytes())
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca.cert_file.read_bytes()))
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    return True


def due(expires: dt.datetime | None, now: dt.datetime, days: int) -> bool:
    """Missing, or as good as expired (acme.renewal_due: a third of its life, at most 30 days, left)."""
    return expires is None or renewal_due(expires, now, dt.timedelta(days=days))


def acme_issuer(settings: Settings, responder: ChallengeResponder) -> Issue | None:
    """Custom domains' certificates from the ACME directory the platform was given, if any."""
    if not settings.acme_directory:
        return None
    client = AcmeClient(settings.acme_directory, settings.data_dir / "acme" / "account.pem", responder=responder,
                        contact_email=settings.acme_email or None,
                        ca_bundle=Path(settings.acme_ca_bundle) if settings.acme_ca_bundle else None)

    async def issue(hostname: str) -> tuple[str, str]:
        issued = await client.issue([hostname])
        return issued.haproxy_pem, f"ACME ({settings.acme_directory})"

    return issue


class Certificates:
    def __init__(self, settings: Settings, store: Store, edge: Edge, ca: CertificateAuthority | None,
                 acme: Issue | None = None) -> None:
        self._settings = settings
        self._store = store
        self._edge = edge
        self.ca = ca
        self._acme = acme
        self._lock = asyncio.Lock()
        self._trusted: dict[str, tuple[int, bool]] = {}  # hostname → (its file's mtime, publicly trusted)
        self._failed: dict[str, dt.datetime] = {}  # custom domain → when ACME last failed (retried hourly)

    def wanted(self) -> list[Wanted]:
        # A public base domain (apps at <app>.apps.example.com, a wildcard DNS record) is certified as custom
        # domains are; custom domains are always asked of the ACME server, a test one may certify `.test`.
        public_base = is_public(self._settings.base_domain)
        names = [Wanted(self._settings.app_hostname(app.name), app.name, False, public_base)
                 for app in self._store.list_apps() if not app.damage]
        return names + [Wanted(d.hostname, d.app, True, True) for d in self._store.list_domains()]

    def has_certificate(self, hostname: str) -> bool:
        return certificate_path(self._edge.certificates.folder, hostname).exists()

    def publicly_trusted(self, hostname: str) -> bool:
        """Its certificate was not signed by the platform's CA (so by the ACME server's)."""
        path = certificate_path(self._edge.certificates.folder, hostname)
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return False
        cached = self._trusted.get(hostname)
        if cached is None or cached[0] != stamp:
            cached = self._trusted[hostname] = (stamp, self.ca is not None and not signed_by(path, self.ca))
        return cached[1]

    async def converge(self) -> None:
        """Issue what is missing or due, remove what no app has any more; one hostname's failure is recorded
        and the others go on."""
        if not self._settings.https_port or self.ca is None:
            return
        async with self._lock:
            wanted = self.wanted()
            names = {w.hostname for w in wanted}
            for hostname in sorted(self._edge.certificates.hostnames() - names):
                await self._edge.remove_certificate(hostname)
            now = dt.datetime.now(dt.timezone.utc)
            for item in wanted:
                path = certificate_path(self._edge.certificates.folder, item.hostname)
                expires = not_after(path)
                if not due(expires, now, INTERNAL_DAYS if not (item.public and self._acme) else 90):
                    continue
                if item.public and self._acme and (failed := self._failed.get(item.hostname)) and \
                        now - failed < dt.timedelta(seconds=CHECK_INTERVAL):
                    continue
                await self._issue(item, now)

    async def _issue(self, item: Wanted, now: dt.datetime) -> None:
        try:
            if item.public and self._acme is not None:
                self._store.set_domain_status(item.hostname, "pending", "asking the ACME server")
                pem, issuer = await self._acme(item.hostname)
            else:
                assert self.ca is not None
                pem = await asyncio.to_thread(self.ca.issue_pem, [item.hostname], INTERNAL_DAYS)
                issuer = "the platform's CA (trusted where `shipyard ca` was installed)"
            await self._edge.install_certificate(item.hostname, pem)
        except ShipyardError as exc:
            self._failed[item.hostname] = now
            if item.custom:
                self._store.set_domain_status(item.hostname, "failed", exc.message.splitlines()[0])
            return
        self._failed.pop(item.hostname, None)
        if item.custom:
            expires = not_after(certificate_path(self._edge.certificates.folder, item.hostname))
            self._store.set_domain_status(item.hostname, "issued", f"by {issuer}", expires)
