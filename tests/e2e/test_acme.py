"""ACME end to end (issue 13): a custom domain gets a certificate from a real ACME server (Debian's pebble, on
loopback), which validates HTTP-01 by asking the platform's edge itself; the domain is then served over HTTPS
with that certificate and redirects from plain HTTP by default. (A failed validation's status and reason:
tests/unit/test_certificates.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from ..unit.pebble import PEBBLE, running_pebble
from ..unit.tls_client import tls_get
from .harness import Shipyard


@pytest.mark.skipif(not PEBBLE.exists(), reason="Debian's pebble is not installed (.ci/run installs it)")
def test_a_custom_domain_gets_a_certificate_from_an_acme_server(tmp_path: Path) -> None:
    shipyard = Shipyard(tmp_path / "platform")
    # Pebble validates HTTP-01 on the edge's plain-HTTP port (a public edge's port 80).
    with running_pebble(tmp_path / "pebble", http01_port=shipyard.edge_port) as pebble:
        shipyard.env.update(SHIPYARD_ACME_DIRECTORY=pebble.directory_url,
                            SHIPYARD_ACME_CA_BUNDLE=str(pebble.ca_bundle), SHIPYARD_ACME_EMAIL="ops@example.test")
        shipyard.start()
        try:
            shipyard.cli("apps", "create", "shop")
            shipyard.push(shipyard.checkout("flask-hello", "shop"))
            shipyard.cli("domains", "add", "shop", "shop.example.test")
            listed = shipyard.wait_for(
                lambda: "issued" in (out := shipyard.cli("domains", "list", "shop").out) and out, timeout=60)
            assert f"by ACME ({pebble.directory_url})" in listed

            root = tmp_path / "pebble-root.pem"
            root.write_bytes(pebble.issuing_root().public_bytes(encoding=_pem()))
            alpn, answer, subject = tls_get(shipyard.https_port, "shop.example.test", root)
            assert alpn == "h2" and answer.startswith(b"HTTP/1.1 200") and b"from flask-hello" in answer
            # A publicly trusted certificate: plain HTTP redirects to HTTPS by default (`--redirect-https auto`).
            redirect = shipyard.get("shop", "/x", headers={"Host": "shop.example.test"}, follow_redirects=False)
            assert redirect.status_code == 308
            assert redirect.headers["location"] == f"https://shop.example.test:{shipyard.https_port}/x"
            # ...while its own <app>.localhost name, with the platform's CA, does not.
            assert shipyard.get("shop").status_code == 200
            # The app can turn the redirect off.
            shipyard.cli("apps", "set", "shop", "--redirect-https", "off")
            assert shipyard.get("shop", headers={"Host": "shop.example.test"}).status_code == 200
        finally:
            shipyard.kill_all()


def _pem():  # type: ignore[no-untyped-def]
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.PEM
