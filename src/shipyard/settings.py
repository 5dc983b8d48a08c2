"""The one typed settings object: where the platform keeps things and where it listens."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.errors import PlatformError

DEFAULT_API_PORT = 8470
DEFAULT_EDGE_PORT = 8480
DEFAULT_HTTPS_PORT = 8443


def default_data_dir() -> Path:
    if env := os.environ.get("SHIPYARD_DATA_DIR"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(Path.home(), ".local", "share")
    return Path(xdg) / "shipyard"


def reachable(host: str) -> str:
    """An address to connect to for a listen address (a wildcard is reached on loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


MAX_UID = 2**31 - 1
BACKENDS = ("local", "kubernetes")


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class KubeSettings:
    """The Kubernetes backend's: which cluster, which runner image, and where its pods fetch slugs from."""

    kubeconfig: str = field(default_factory=lambda: _env("KUBECONFIG"))  # "": ~/.kube/config
    context: str = field(default_factory=lambda: _env("SHIPYARD_KUBE_CONTEXT"))  # "": the kubeconfig's current
    # The image every pod runs (its Python runs the slug); "": python:3.X-slim for the release's Python.
    runner_image: str = field(default_factory=lambda: _env("SHIPYARD_KUBE_RUNNER_IMAGE"))
    # The slug server: a TLS listener of its own (certificate from the platform's CA, which pods are given),
    # and the URL pods reach it at (a name or address of this machine that the cluster's nodes can reach).
    slug_listen: str = field(default_factory=lambda: _env("SHIPYARD_KUBE_SLUG_LISTEN", "0.0.0.0:8471"))
    slug_url: str = field(default_factory=lambda: _env("SHIPYARD_KUBE_SLUG_URL"))
    ingress_class: str = field(default_factory=lambda: _env("SHIPYARD_KUBE_INGRESS_CLASS"))
    ingress_namespace: str = field(default_factory=lambda: _env("SHIPYARD_KUBE_INGRESS_NAMESPACE", "ingress-nginx"))
    keda: bool = field(default_factory=lambda: _env("SHIPYARD_KUBE_KEDA") == "1")
    # A cert-manager ClusterIssuer: every app hostname and custom domain gets its certificate from it (HTTPS).
    cert_issuer: str = field(default_factory=lambda: _env("SHIPYARD_KUBE_CERT_ISSUER"))
    # Pods may reach private addresses (a slug server or database on a private network).
    open_egress: bool = field(default_factory=lambda: _env("SHIPYARD_KUBE_OPEN_EGRESS") == "1")
    # The PostgreSQL add-on where CloudNativePG is installed (and SHIPYARD_POSTGRES_ADMIN_URL is not set): one
    # Cluster for every app's database, in this namespace, of this many instances and this volume size each.
    postgres_namespace: str = field(default_factory=lambda: _env("SHIPYARD_KUBE_POSTGRES_NAMESPACE",
                                                                 "shipyard-postgres"))
    postgres_instances: int = field(default_factory=lambda: int(_env("SHIPYARD_KUBE_POSTGRES_INSTANCES", "1")))
    postgres_storage: str = field(default_factory=lambda: _env("SHIPYARD_KUBE_POSTGRES_STORAGE", "10Gi"))


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=default_data_dir)
    api_host: str = "127.0.0.1"
    api_port: int = DEFAULT_API_PORT
    edge_host: str = "127.0.0.1"
    edge_port: int = DEFAULT_EDGE_PORT
    https_port: int = DEFAULT_HTTPS_PORT  # the edge's HTTPS listener, on edge_host; 0: none
    # ACME for custom domains (Let's Encrypt: https://acme-v02.api.letsencrypt.org/directory); without it, custom
    # domains get certificates of the platform's own CA, as `<app>.<base_domain>` does.
    acme_directory: str = field(default_factory=lambda: os.environ.get("SHIPYARD_ACME_DIRECTORY", ""))
    acme_email: str = field(default_factory=lambda: os.environ.get("SHIPYARD_ACME_EMAIL", ""))
    # A CA bundle to verify the ACME server with (a private or test ACME server such as Pebble).
    acme_ca_bundle: str = field(default_factory=lambda: os.environ.get("SHIPYARD_ACME_CA_BUNDLE", ""))
    base_domain: str = "localhost"
    # Seconds an old instance gets between SIGTERM and SIGKILL when drained.
    drain_grace: float = 10.0
    default_web_concurrency: int = 2
    # Every app runs as host uids of its own, which need no passwd entry: its instances, release command and
    # one-offs as tenant_uid_base + app id, its builds as build_uid_base + app id (so a build cannot change what
    # a running instance sees, and no two apps ever share a uid). The network filter matches the whole span.
    # Two platforms on one machine (the tests start several) need different bases: SHIPYARD_UID_BASE.
    tenant_uid_base: int = field(default_factory=lambda: int(os.environ.get("SHIPYARD_UID_BASE", "200000")))
    uid_span: int = 200000  # tenant_uid_base .. tenant_uid_base + uid_span - 1: runtime, then build uids
    # Automatic database backups: how often, and how many of them to keep per app.
    backup_interval: float = 24 * 3600
    backup_keep: int = 7
    # Online backups of the store itself (apps, releases, config): how often, and how many to keep. One is
    # also made at every start and stop.
    store_backup_interval: float = field(
        default_factory=lambda: float(os.environ.get("SHIPYARD_STORE_BACKUP_INTERVAL", "3600")))
    store_backups_kept: int = field(default_factory=lambda: int(os.environ.get("SHIPYARD_STORE_BACKUPS_KEPT", "24")))
    # Releases whose slugs are kept for rollback; older slugs (and venvs only they used) are deleted.
    # Apps the edge can route to: HAProxy's config holds this many empty backends, taken by apps without a reload.
    edge_backends: int = field(default_factory=lambda: int(os.environ.get("SHIPYARD_EDGE_BACKENDS", "512")))
    releases_kept: int = field(default_factory=lambda: int(os.environ.get("SHIPYARD_RELEASES_KEPT", "20")))
    # A PostgreSQL server the user runs, instead of the embedded one (same provisioning there).
    postgres_admin_url: str = field(default_factory=lambda: os.environ.get("SHIPYARD_POSTGRES_ADMIN_URL", ""))

    # Readiness (runtime/readiness.py): a new instance must have been up this long, and one that listens but
    # never answers HTTP fails after the hang limit; running web instances are probed every liveness interval
    # and restarted after `liveness_failures` probes in a row without a response.
    readiness_settle: float = field(default_factory=lambda: float(os.environ.get("SHIPYARD_READINESS_SETTLE", "0.5")))
    hang_limit: float = field(default_factory=lambda: float(os.environ.get("SHIPYARD_HANG_LIMIT", "30")))
    liveness_interval: float = field(default_factory=lambda: float(os.environ.get("SHIPYARD_LIVENESS_INTERVAL",
                                                                                   "10")))
    liveness_failures: int = 3
    # Seconds between samples of each app's request counters and instances' CPU and memory (the dashboard's
    # charts); the end-to-end tests use 1.
    metrics_interval: float = field(default_factory=lambda: float(os.environ.get("SHIPYARD_METRICS_INTERVAL",
                                                                                  "10")))
    # The autoscaler's windows, in seconds (Knative's KPA defaults); the end-to-end tests shorten them.
    autoscale_stable_window: float = field(default_factory=lambda: float(os.environ.get(
        "SHIPYARD_AUTOSCALE_STABLE_WINDOW", "60")))
    autoscale_panic_window: float = field(default_factory=lambda: float(os.environ.get(
        "SHIPYARD_AUTOSCALE_PANIC_WINDOW", "6")))
    autoscale_scale_down_delay: float = field(default_factory=lambda: float(os.environ.get(
        "SHIPYARD_AUTOSCALE_SCALE_DOWN_DELAY", "30")))
    # An app autoscaled with --min 0 has its web instances frozen after freeze_after seconds without a request
    # (no CPU; thawed in milliseconds) and stopped after scale_to_zero_after (no memory); the next request is
    # held (up to wake_timeout seconds) while they thaw or one starts.
    freeze_after: float = field(default_factory=lambda: float(os.environ.get("SHIPYARD_FREEZE_AFTER", "300")))
    scale_to_zero_after: float = field(default_factory=lambda: float(os.environ.get(
        "SHIPYARD_SCALE_TO_ZERO_AFTER", "1800")))
    wake_timeout: float = field(default_factory=lambda: float(os.environ.get("SHIPYARD_WAKE_TIMEOUT", "30")))
    # A cgroup hierarchy mounted with favordynmods while the platform runs: every instance start joins its
    # cgroup in 0.1 ms instead of 10-30 ms (runtime/wake_speed.py). Its cost (forks and exits a little dearer)
    # is machine-wide, hence the way out: SHIPYARD_FAVOR_CGROUP_MOVES=0.
    favor_cgroup_moves: bool = field(default_factory=lambda: os.environ.get("SHIPYARD_FAVOR_CGROUP_MOVES",
                                                                            "1") != "0")
    # Where that hierarchy is mounted: one for the machine, left in place (it holds no cgroup).
    cgroup_moves_mount: Path = Path("/run/shipyard/cgroup-moves")
    # Where apps run: "local" (sandboxed processes on this machine) or "kubernetes" (the cluster KUBECONFIG
    # names); builds, releases, config, the API, CLI and dashboard are the same for both.
    backend: str = field(default_factory=lambda: os.environ.get("SHIPYARD_BACKEND", "local"))
    kube: KubeSettings = field(default_factory=lambda: KubeSettings())

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise PlatformError(f"There is no backend '{self.backend}'.",
                                hint=f"Pick one of {', '.join(BACKENDS)} (`shipyard up --backend`, SHIPYARD_BACKEND).")
        # Below 100000 lie the machine's own users (root, daemons, people); uids are 32-bit.
        # Up to 2**31: gunicorn before 24 masks the group id to 31 bits (`gid & 0x7FFFFFFF`), so a larger uid
        # (and gid) makes its workers' setgid fail and every worker die.
        if not 100_000 <= self.tenant_uid_base <= MAX_UID - self.uid_span:
            raise PlatformError(f"SHIPYARD_UID_BASE={self.tenant_uid_base} would give apps uids of this machine's "
                                "own users, or past the largest uid.",
                                hint=f"Pick a base from 100000 to {MAX_UID - self.uid_span} (default 200000).")
        if self.store_backup_interval < 1 or self.store_backups_kept < 1:
            raise PlatformError(f"Store backups every {self.store_backup_interval} s, keeping "
                                f"{self.store_backups_kept}, would never make or keep one.",
                                hint="Set SHIPYARD_STORE_BACKUP_INTERVAL to at least 1 (seconds) and "
                                     "SHIPYARD_STORE_BACKUPS_KEPT to at least 1.")
        if not 0.1 <= self.metrics_interval <= 60:
            raise PlatformError(f"Metrics sampled every {self.metrics_interval} s would miss minutes or busy the "
                                "platform.", hint="Set SHIPYARD_METRICS_INTERVAL to 0.1 … 60 (seconds; default 10).")
        if not 1 <= self.autoscale_panic_window <= self.autoscale_stable_window <= 3600:
            raise PlatformError(f"The autoscaler's panic window ({self.autoscale_panic_window:g} s) must be at least "
                                f"1 s and at most its stable window ({self.autoscale_stable_window:g} s, up to 3600).",
                                hint="Set SHIPYARD_AUTOSCALE_PANIC_WINDOW and SHIPYARD_AUTOSCALE_STABLE_WINDOW "
                                     "(defaults 6 and 60 seconds).")

    def app_uid(self, app_id: int) -> int:
        return self.tenant_uid_base + app_id

    def build_uid(self, app_id: int) -> int:
        return self.build_uid_base + app_id

    @property
    def build_uid_base(self) -> int:
        return self.tenant_uid_base + self.uid_span // 2

    @property
    def api_url(self) -> str:
        return f"http://{reachable(self.api_host)}:{self.api_port}"

    @property
    def edge_url(self) -> str:
        return f"http://{reachable(self.edge_host)}:{self.edge_port}"

    def app_hostname(self, app: str) -> str:
        return f"{app}.{self.base_domain}"

    def app_url(self, app: str, https: bool = False) -> str:
        """The app's URL; https: the one its plain-HTTP requests are redirected to."""
        if self.backend == "kubernetes":  # the cluster's ingress controller, on its own ports (80, 443)
            return f"{'https' if self.kube.cert_issuer else 'http'}://{self.app_hostname(app)}/"
        if https and self.https_port:
            return f"https://{self.app_hostname(app)}{'' if self.https_port == 443 else f':{self.https_port}'}/"
        port = "" if self.edge_port == 80 else f":{self.edge_port}"
        return f"http://{self.app_hostname(app)}{port}/"

    @property
    def https_listen(self) -> str | None:
        return f"{self.edge_host}:{self.https_port}" if self.https_port else None

    # Files and folders inside the data directory.
    @property
    def lock_file(self) -> Path:
        return self.data_dir / "shipyard.lock"

    @property
    def state_file(self) -> Path:
        """Where a running platform says how to reach it (read by the CLI)."""
        return self.data_dir / "platform.json"

    @property
    def token_file(self) -> Path:
        return self.data_dir / "token"

    @property
    def kube_dir(self) -> Path:
        """The Kubernetes backend's files: the slug server's certificate, the copy of CloudNativePG's CA."""
        return self.data_dir / "kube"

    @property
    def secret_key_file(self) -> Path:
        return self.data_dir / "secret.key"

    @property
    def db_file(self) -> Path:
        return self.data_dir / "shipyard.db"

    @property
    def store_backups_dir(self) -> Path:
        return self.data_dir / "backups" / "store"

    @property
    def repos_dir(self) -> Path:
        return self.data_dir / "repos"

    @property
    def slugs_dir(self) -> Path:
        return self.data_dir / "slugs"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def uv_cache_dir(self) -> Path:
        """Parent of the per-app uv caches (`<uv_cache_dir>/<app>`): no build can poison another app's."""
        return self.data_dir / "cache" / "uv"

    @property
    def tmp_dir(self) -> Path:
        return self.data_dir / "tmp"

    @property
    def edge_dir(self) -> Path:
        """HAProxy's config, hosts map and runtime-API socket (root only: the socket's mode guards it)."""
        return self.data_dir / "edge"

    @property
    def edge_admin_socket(self) -> Path:
        return self.edge_dir / "admin.sock"
