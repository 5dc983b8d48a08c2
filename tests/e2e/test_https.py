"""HTTPS through the platform (issue 13): every app is served over HTTPS with a certificate of the platform's
CA (verified here against it, as a user who ran `shipyard ca` would), HTTP/2 is offered, redirects and HSTS
are per-app settings, EXTERNAL_URL follows the redirect, and custom domains are served with a certificate
each and a status `shipyard domains list` shows."""

from __future__ import annotations

import json

from ..unit.tls_client import tls_get
from .harness import Shipyard


def test_apps_over_https_redirects_hsts_and_custom_domains(shipyard: Shipyard) -> None:
    ca_file = shipyard.data_dir / "ca" / "ca.crt"
    said = shipyard.cli("ca").out
    assert str(ca_file) in said and "curl --cacert" in said

    shipyard.cli("apps", "create", "secure")
    shipyard.push(shipyard.checkout("flask-hello", "secure"))
    host = "secure.localhost"
    alpn, answer, subject = tls_get(shipyard.https_port, host, ca_file, "/headers")
    assert alpn == "h2" and subject == host
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"strict-transport-security" not in head.lower()
    seen = json.loads(body.split(b"\r\n", 1)[1] if b"transfer-encoding: chunked" in head.lower() else body)
    assert seen["X-Forwarded-Proto"] == "https"
    # By default a certificate of the platform's own CA does not make plain HTTP redirect.
    assert shipyard.get("secure").status_code == 200
    assert shipyard.get("secure", "/env").json()["EXTERNAL_URL"] == f"http://{host}:{shipyard.edge_port}/"

    shipyard.cli("apps", "set", "secure", "--redirect-https", "on", "--hsts", "on")
    redirect = shipyard.get("secure", "/env?x=1", follow_redirects=False)
    assert redirect.status_code == 308
    assert redirect.headers["location"] == f"https://{host}:{shipyard.https_port}/env?x=1"
    _, answer, _ = tls_get(shipyard.https_port, host, ca_file, "/env")
    assert b"strict-transport-security: max-age=31536000" in answer.lower()
    shipyard.cli("restart", "secure")  # EXTERNAL_URL comes with the next instances
    _, answer, _ = tls_get(shipyard.https_port, host, ca_file, "/env")
    assert f'"EXTERNAL_URL":"https://{host}:{shipyard.https_port}/"'.encode() in answer.replace(b" ", b"")
    info = shipyard.cli("apps", "info", "secure").out
    assert f"https://{host}:{shipyard.https_port}/" in info and "redirect on, HSTS on" in info

    # A custom domain: served by the same app, with a certificate of its own (the platform's CA: no ACME here).
    added = shipyard.cli("domains", "add", "secure", "Shop.Example.TEST").out
    assert "Added shop.example.test to secure" in added and "Point its DNS at this machine" in added
    listed = shipyard.wait_for(lambda: "issued" in (out := shipyard.cli("domains", "list", "secure").out) and out)
    assert "shop.example.test" in listed and "the platform's CA" in listed
    _, answer, subject = shipyard.wait_for(lambda: tls_get(shipyard.https_port, "shop.example.test", ca_file, "/"))
    assert subject == "shop.example.test" and b"from flask-hello" in answer
    shipyard.cli("apps", "create", "other")
    taken = shipyard.cli("domains", "add", "other", "shop.example.test", check=False)
    assert taken.code == 1 and "already a domain of the app 'secure'" in taken.err
    bad = shipyard.cli("domains", "add", "other", "https://shop.example.test/x", check=False)
    assert bad.code == 1 and "not a domain name Shipyard can serve" in bad.err

    shipyard.cli("domains", "remove", "secure", "shop.example.test")
    assert "has no custom domain" in shipyard.cli("domains", "list", "secure").out
    gone = shipyard.get("secure", headers={"Host": "shop.example.test"})
    assert gone.status_code == 404
