"""How a release's slug reaches its pods: Deis Workflow's way, one runner image for every app.

An init container of the runner image downloads the slug (a tar.gz of `app/` and `venv/`) from the
release's URL with a per-release bearer token, checks its SHA-256 when one is given, and unpacks it into an
emptyDir the app's container then runs from. The token comes from a Secret through `secretKeyRef` into the
init container alone: the app's own processes never see it, and with no service account token they cannot
read the Secret through the API either.

The script is Python (the runner image's base), so the image needs no fetch tool of its own; tarfile's
"tar" filter (Python ≥ 3.11.4) refuses members outside the slug and drops setuid bits, while still allowing
the venv's absolute symlink to the image's interpreter.

The slug server's certificate is verified against the platform's CA when the Secret carries it (`ca.crt`,
as SLUG_CA): the server is Shipyard's own, with a certificate of that CA, not a public one.
"""

from __future__ import annotations

from typing import Any

from shipyard.runtime.kubernetes.model import KubeObject, KubeRelease
from shipyard.runtime.kubernetes.names import app_labels, release_annotations, slug_secret_name

TOKEN_KEY = "token"
CA_KEY = "ca.crt"

FETCH_SCRIPT = """\
import hashlib, os, ssl, sys, tarfile, urllib.request
root, want, ca = sys.argv[1], os.environ.get("SLUG_SHA256", ""), os.environ.get("SLUG_CA", "")
archive, digest = os.path.join(root, ".slug.tar.gz"), hashlib.sha256()
request = urllib.request.Request(os.environ["SLUG_URL"],
                                 headers={"Authorization": "Bearer " + os.environ["SLUG_TOKEN"]})
context = ssl.create_default_context(cadata=ca) if ca else None
with urllib.request.urlopen(request, timeout=60, context=context) as response, open(archive, "wb") as out:
    for chunk in iter(lambda: response.read(1 << 20), b""):
        digest.update(chunk)
        out.write(chunk)
if want and digest.hexdigest() != want:
    os.remove(archive)
    sys.exit(f"slug checksum mismatch: got {digest.hexdigest()}, want {want}")
with tarfile.open(archive) as tar:
    tar.extractall(root, filter="tar")
os.remove(archive)
"""


def slug_secret(release: KubeRelease, ca_pem: str = "") -> KubeObject:
    """The fetch's token and, given `ca_pem`, the CA the slug server's certificate is checked against."""
    data = {TOKEN_KEY: release.slug_token, **({CA_KEY: ca_pem} if ca_pem else {})}
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": slug_secret_name(release.version), "namespace": release.namespace,
                         "labels": app_labels(release.app), "annotations": release_annotations(release.version)},
            "type": "Opaque", "immutable": True, "stringData": data}


def fetch_env(release: KubeRelease, with_ca: bool = False) -> list[dict[str, Any]]:
    """The init container's environment: where the slug is, the token from its Secret and, `with_ca`, the
    CA from it too (optional: a Secret written without one leaves the fetch on the system's trust)."""
    secret = slug_secret_name(release.version)
    env: list[dict[str, Any]] = [
        {"name": "SLUG_URL", "value": release.slug_url},
        {"name": "SLUG_TOKEN", "valueFrom": {"secretKeyRef": {"name": secret, "key": TOKEN_KEY}}}]
    if with_ca:
        env.append({"name": "SLUG_CA", "valueFrom": {"secretKeyRef": {"name": secret, "key": CA_KEY,
                                                                      "optional": True}}})
    if release.slug_sha256:
        env.append({"name": "SLUG_SHA256", "value": release.slug_sha256})
    return env


def fetch_command(release: KubeRelease) -> list[str]:
    return ["python3", "-c", FETCH_SCRIPT, release.slug_root]
