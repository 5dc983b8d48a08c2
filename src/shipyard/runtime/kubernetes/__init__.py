"""The Kubernetes backend's first piece: a release and its formation as Kubernetes objects (pure values).

`objects.render(release)` gives them in apply order, in three stages (see objects.py); nothing here talks to a
cluster. The modules: model (the input values), names (DNS-1123 names, labels), pods (the confined pod
template), probes (local readiness rules as kubelet probes), slug (how the slug reaches a pod), workloads
(Deployment, Job, PodDisruptionBudget), autoscaling (HPA or KEDA), network (Service, Ingress, policies).
"""

from shipyard.runtime.kubernetes.model import Autoscale, Cluster, Hostname, KubeObject, KubeRelease, Peer
from shipyard.runtime.kubernetes.objects import Rendered, release_objects, render

__all__ = ["Autoscale", "Cluster", "Hostname", "KubeObject", "KubeRelease", "Peer", "Rendered", "release_objects",
           "render"]
