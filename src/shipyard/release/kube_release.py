"""A release as its Kubernetes objects are made from it: the same release the local backend runs (a
`ReleaseTarget`) plus what only a cluster has — the runner image, where the pod fetches the slug from and with
which token, the TLS secrets of its hostnames, the cluster's own settings. Pure: the control plane reads the
store and the cluster's configuration, this only combines them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from shipyard.release.plan import ReleaseTarget
from shipyard.runtime.kubernetes.model import Autoscale, Cluster, Hostname, KubeRelease, Peer
from shipyard.store.records import AutoscaleBounds


def kube_release(target: ReleaseTarget, *, image: str, slug_url: str, slug_token: str, domains: Sequence[str] = (),
                 release_command: str = "", autoscale: AutoscaleBounds | None = None, slug_sha256: str = "",
                 tls_secrets: Mapping[str, str] | None = None, cluster: Cluster | None = None,
                 slug_ca: str = "", files: Mapping[str, str] | None = None,
                 database: Peer | None = None) -> KubeRelease:
    """`domains`: the app's custom domains (its own hostname comes first, from the target); `tls_secrets`:
    hostname → the kubernetes.io/tls Secret holding its certificate; `release_command`: the app's setting,
    which wins over the Procfile's `release:` as it does locally."""
    secrets = tls_secrets or {}
    names = list(dict.fromkeys((target.hostname, *domains)))  # the app's own first, no name twice
    bounds = Autoscale(autoscale.min, autoscale.max, autoscale.target) if autoscale else None
    return KubeRelease(app=target.app, version=target.version, image=image, slug_url=slug_url,
                       slug_token=slug_token, process_types=dict(target.process_types),
                       hostnames=tuple(Hostname(name, secrets.get(name)) for name in names),
                       formation=dict(target.formation or {}), size=target.size, config=dict(target.config),
                       health_path=target.health_path or "/", boot_timeout=target.boot_timeout, autoscale=bounds,
                       release_command=release_command, slug_sha256=slug_sha256, fixed_port=target.fixed_port,
                       slug_ca=slug_ca, files=dict(files or {}), cluster=cluster or Cluster(), database=database)


# A web command bound to loopback: fine on one machine, where the edge connects over loopback; a pod is reached
# at its own address (the Service, kubelet's probes), so there it listens on every address of its own network
# namespace, which holds nothing but the pod. The build's own default (`gunicorn --bind 127.0.0.1:$PORT`) and
# the same in a Procfile, for gunicorn (--bind/-b), uvicorn, hypercorn and daphne (--host/-b/--bind).
_LOOPBACK_BIND = re.compile(r"(--bind[= ]|-b ?|--host[= ])(?:127\.0\.0\.1|localhost)(?=[:\s]|$)")


def pod_commands(process_types: Mapping[str, str]) -> dict[str, str]:
    """The Procfile's commands as a pod runs them: web bound to every address instead of loopback."""
    return {kind: _LOOPBACK_BIND.sub(r"\g<1>0.0.0.0", command) if kind == "web" else command
            for kind, command in process_types.items()}
