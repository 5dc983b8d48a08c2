"""What a release's Kubernetes objects are made from: plain values, no client, no cluster.

The control plane fills a `KubeRelease` from its store (as it fills `ReleaseTarget` for the local backend);
everything in this package is a pure function of it. What is true of the cluster rather than of the release
(where the ingress controller runs, whether KEDA is installed, which addresses are the cluster's own) is a
`Cluster`, shared by every app.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import InvalidInput
from shipyard.runtime.kubernetes.names import DNS_LABEL, process_name
from shipyard.runtime.limits import DEFAULT_SIZE, SIZES, Size

KubeObject = dict[str, Any]
DEFAULT_PORT = 8080  # above 1024: a non-root process without capabilities can bind it

# Where a pod may never connect: the ranges every cluster's pod and service networks, nodes and cloud
# metadata endpoints (169.254.169.254) live in. Blocking them all, rather than one cluster's pod CIDR, keeps
# the default safe on any cluster; an operator whose database is on a private address lists it as a Peer.
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16",
                  "127.0.0.0/8", "fc00::/7", "fe80::/10")


@dataclass(frozen=True)
class Hostname:
    """A name the app is served at, and the Secret (kubernetes.io/tls) holding its certificate, if any."""

    name: str
    tls_secret: str | None = None


@dataclass(frozen=True)
class Autoscale:
    """The web process's bounds and the requests in flight per instance it aims at (store's AutoscaleBounds)."""

    min: int
    max: int
    target: float


@dataclass(frozen=True)
class Peer:
    """Pods in another namespace that an app's pods may connect to, on one TCP port (and UDP for DNS)."""

    namespace: str
    pod_labels: Mapping[str, str]
    port: int


def _kube_dns() -> Peer:
    # The label CoreDNS keeps from kube-dns on kubeadm, EKS, GKE, AKS and k3s alike.
    return Peer("kube-system", {"k8s-app": "kube-dns"}, 53)


@dataclass(frozen=True)
class Cluster:
    """What the cluster offers every app; the defaults fit ingress-nginx and a kube-prometheus stack."""

    namespace_prefix: str = "shipyard-"  # each app gets a namespace of its own: `shipyard-todo`
    keda: bool = False  # KEDA installed: web can scale to zero
    cert_issuer: str = ""  # a cert-manager ClusterIssuer that certifies every hostname with a TLS Secret
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"  # what KEDA queries
    ingress_class: str = ""  # "": the cluster's default IngressClass
    ingress_namespace: str = "ingress-nginx"  # the only namespace whose pods may connect to web pods
    dns: Peer = field(default_factory=_kube_dns)
    slug_server: Peer | None = None  # where slugs are served inside the cluster (None: from outside it)
    blocked_cidrs: tuple[str, ...] = PRIVATE_RANGES
    proxy_depth: int = 1  # proxies in front of the app (the ingress controller; 2 behind a cloud load balancer)


@dataclass(frozen=True)
class KubeRelease:
    """One release of one app, with the formation it runs at.

    The pod runs `image` (a runner image on a Python base, as Deis Workflow's slugrunner), whose init
    container fetches the release's slug from `slug_url` with `slug_token` (kept in a Secret of its own, seen
    by that init container only) and unpacks it under `slug_root`; the app's container then runs the
    Procfile command there. The slug holds `app/` and `venv/`, as on the local backend.
    """

    app: str
    version: int
    image: str
    slug_url: str
    slug_token: str
    process_types: Mapping[str, str]  # Procfile type → command (a `release` entry is the release phase)
    hostnames: tuple[Hostname, ...]  # the app's own first, then its custom domains
    formation: Mapping[str, int] = field(default_factory=dict)  # type → count; absent: web 1, others 0
    size: Size = SIZES[DEFAULT_SIZE]
    config: Mapping[str, str] = field(default_factory=dict)  # config vars and add-on credentials
    health_path: str = "/"
    boot_timeout: float = 240.0
    autoscale: Autoscale | None = None  # web only; None: the formation's count
    release_command: str = ""  # the app's setting; "" falls back to the Procfile's `release:`
    slug_sha256: str = ""  # checked by the fetch when set
    slug_ca: str = ""  # PEM: the CA the fetch verifies the slug server with ("": the image's trusted roots)
    # Files every process may read at these absolute paths besides its slug, as the local sandbox binds them in
    # (the CA certificate PGSSLROOTCERT names); path → text.
    files: Mapping[str, str] = field(default_factory=dict)
    fixed_port: int | None = None  # for apps that ignore $PORT
    database: Peer | None = None  # the app's own database, when it is in the cluster
    release_timeout: int = 3600  # the release phase's limit, as the local backend's RELEASE_PHASE_LIMIT
    slug_root: str = "/slug"  # the path the slug's venv was built for (its scripts name it)
    cluster: Cluster = field(default_factory=Cluster)

    def __post_init__(self) -> None:
        if not DNS_LABEL.fullmatch(self.app) or not self.app[0].isalpha():
            raise InvalidInput(f"'{self.app}' cannot name Kubernetes objects.",
                               hint="App names are lowercase letters, digits and dashes, starting with a letter.")
        if not DNS_LABEL.fullmatch(self.namespace):
            raise InvalidInput(f"'{self.namespace}' is not a valid namespace name.",
                               hint="Use a namespace prefix of lowercase letters, digits and dashes; prefix and "
                                    "app name together at most 63 characters.")
        if not self.hostnames:
            raise InvalidInput(f"{self.app} has no hostname.", hint="Every app is served at least at its own name.")
        if self.version < 1 or self.boot_timeout <= 0 or self.release_timeout <= 0:
            raise InvalidInput("A release needs a positive version, boot timeout and release timeout.")
        names: dict[str, str] = {}
        for process_type in self.running_types:
            other = names.setdefault(process_name(process_type), process_type)
            if other != process_type:
                raise InvalidInput(f"Process types {other} and {process_type} map to the same Kubernetes name.",
                                   hint="Rename one of them in the Procfile.")
        bounds = self.autoscale
        if bounds and not (0 <= bounds.min <= bounds.max and bounds.max >= 1 and bounds.target > 0):
            raise InvalidInput(f"Autoscaling bounds {bounds} are not 0 ≤ min ≤ max with max ≥ 1 and target > 0.")

    @property
    def namespace(self) -> str:
        return f"{self.cluster.namespace_prefix}{self.app}"

    @property
    def running_types(self) -> list[str]:
        """The types that run as Deployments (the release phase runs once per release, as a Job)."""
        return sorted(t for t in self.process_types if t != "release")

    def count(self, process_type: str) -> int:
        # As release.plan.default_scale (not importable from here): one web instance, every other type at 0
        # until scaled, so a worker whose Redis is not there yet does not reject the deploy.
        return self.formation.get(process_type, 1 if process_type == "web" else 0)

    @property
    def release_phase_command(self) -> str:
        """As release.plan.with_release_command: the app's setting wins over the Procfile's `release:`."""
        return self.release_command.strip() or self.process_types.get("release", "").strip()

    @property
    def hostname(self) -> str:
        return self.hostnames[0].name

    @property
    def external_url(self) -> str:
        # Ingress controllers redirect to HTTPS once a host has a certificate, so the app's URL is then https.
        scheme = "https" if self.hostnames[0].tls_secret else "http"
        return f"{scheme}://{self.hostname}/"

    @property
    def port(self) -> int:
        return self.fixed_port or DEFAULT_PORT

    @property
    def boot_seconds(self) -> int:
        return math.ceil(self.boot_timeout)


def quantity(value: float) -> str:
    """A number as a Kubernetes quantity string: whole numbers plain, fractions in thousandths (1.5 → 1500m)."""
    millis = round(value * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"
