"""How requests reach an app and where its pods may connect: Service, Ingress, NetworkPolicies.

The NetworkPolicies make the app's namespace what the local nftables table makes its uid: reachable only
from the edge (the ingress controller's namespace), on the web port; connecting only to DNS, its own
database, the slug server and the internet, never to other apps, the platform or the cluster's own
addresses. They are enforced only where the network plugin implements NetworkPolicy (Calico, Cilium, …;
not flannel or kindnet alone); kubelet's probes come from the node and are not subject to them.
"""

from __future__ import annotations

from typing import Any

from shipyard.runtime.kubernetes.model import KubeObject, KubeRelease, Peer
from shipyard.runtime.kubernetes.names import MANAGED_BY, WEB, app_labels, process_name, selector_labels

NAMESPACE_LABEL = "kubernetes.io/metadata.name"  # set on every namespace by the API server since 1.21


def service(release: KubeRelease) -> KubeObject | None:
    if WEB not in release.running_types:
        return None
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": process_name(WEB), "namespace": release.namespace,
                         "labels": app_labels(release.app)},
            "spec": {"type": "ClusterIP", "selector": selector_labels(release.app, WEB),
                     "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}


def ingress(release: KubeRelease) -> KubeObject | None:
    """Host-based routes to the web Service, with TLS for every host that has a certificate Secret.

    Gateway API's HTTPRoute (gateway.networking.k8s.io/v1) is the alternative where a Gateway replaces the
    ingress controller: the same hosts as `hostnames` and one backendRef to the Service, with TLS set on the
    Gateway's listeners instead of here.
    """
    if WEB not in release.running_types:
        return None
    backend = {"service": {"name": process_name(WEB), "port": {"name": "http"}}}
    rules = [{"host": host.name, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}
             for host in release.hostnames]
    by_secret: dict[str, list[str]] = {}
    for host in release.hostnames:
        if host.tls_secret:
            by_secret.setdefault(host.tls_secret, []).append(host.name)
    spec: dict[str, Any] = {"rules": rules}
    if by_secret:
        spec["tls"] = [{"hosts": hosts, "secretName": secret} for secret, hosts in by_secret.items()]
    if release.cluster.ingress_class:
        spec = {"ingressClassName": release.cluster.ingress_class, **spec}
    meta: dict[str, Any] = {"name": process_name(WEB), "namespace": release.namespace,
                            "labels": app_labels(release.app)}
    if by_secret and release.cluster.cert_issuer:
        # cert-manager's ingress-shim makes a Certificate for each TLS entry, from this issuer.
        meta["annotations"] = {"cert-manager.io/cluster-issuer": release.cluster.cert_issuer}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def _policy(release: KubeRelease, name: str, spec: dict[str, Any]) -> KubeObject:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": release.namespace, "labels": app_labels(release.app)},
            "spec": spec}


def _peer(peer: Peer, protocols: tuple[str, ...] = ("TCP",)) -> dict[str, Any]:
    return {"to": [{"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: peer.namespace}},
                    "podSelector": {"matchLabels": dict(peer.pod_labels)}}],
            "ports": [{"protocol": protocol, "port": peer.port} for protocol in protocols]}


def _internet(blocked: tuple[str, ...]) -> dict[str, Any]:
    blocks = []
    for everything, family in (("0.0.0.0/0", False), ("::/0", True)):
        block: dict[str, Any] = {"cidr": everything}
        excepted = [cidr for cidr in blocked if (":" in cidr) == family]
        if excepted:
            block["except"] = excepted
        blocks.append({"ipBlock": block})
    return {"to": blocks}


def network_policies(release: KubeRelease) -> list[KubeObject]:
    """Deny everything to and from Shipyard's pods, then allow what the local table allows. Only Shipyard's
    pods are selected (policies add up, and a database operator's pods in the namespace keep theirs)."""
    ours = {"matchLabels": {"app.kubernetes.io/managed-by": MANAGED_BY}}
    cluster = release.cluster
    egress = [_peer(cluster.dns, ("UDP", "TCP"))]
    egress += [_peer(peer) for peer in (release.database, cluster.slug_server) if peer is not None]
    egress.append(_internet(cluster.blocked_cidrs))
    policies = [
        _policy(release, "default-deny", {"podSelector": ours, "policyTypes": ["Ingress", "Egress"]}),
        _policy(release, "egress", {"podSelector": ours, "policyTypes": ["Egress"], "egress": egress}),
    ]
    if WEB in release.running_types:
        from_edge = {"namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: cluster.ingress_namespace}}}
        policies.append(_policy(release, "web-from-ingress", {
            "podSelector": {"matchLabels": selector_labels(release.app, WEB)}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [from_edge], "ports": [{"protocol": "TCP", "port": release.port}]}]}))
    return policies
