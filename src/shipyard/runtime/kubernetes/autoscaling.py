"""Autoscaling of the web process on requests in flight per instance, as the local autoscaler does.

- min ≥ 1: a HorizontalPodAutoscaler (autoscaling/v2) on an External metric, the edge's
  `shipyard_instance_in_flight_requests` summed over the app's instances, with an AverageValue target: the HPA
  divides by the pods it has, so it asks for ceil(in flight / target) pods, as the KPA does. A metrics adapter
  (prometheus-adapter or KEDA's) must serve that metric through external.metrics.k8s.io.
- min 0 with KEDA: a ScaledObject (keda.sh/v1alpha1) with a `prometheus` trigger on the same metric; KEDA
  makes the HPA for 1..max itself and scales 0 ↔ 1 on the activation threshold.
- min 0 without KEDA: an HPA cannot go below 1 (HPAScaleToZero is an alpha gate), so min becomes 1 and the
  reason is returned with the object.

A pod at zero cannot report in-flight requests, so waking depends on the edge counting requests it holds.
An ingress controller answers 503 at once when a Service has no endpoints, so a ScaledObject alone wakes the
app only after those requests failed: the Ingress must then route through something that holds them
(Shipyard's activator, or the KEDA HTTP add-on's interceptor with its HTTPScaledObject instead of this one).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shipyard.runtime.kubernetes.model import Autoscale, KubeObject, KubeRelease, quantity
from shipyard.runtime.kubernetes.names import WEB, app_labels, process_name, release_annotations

IN_FLIGHT_METRIC = "shipyard_instance_in_flight_requests"  # edge/metrics.py's gauge, labels app and instance
# The local autoscaler goes to zero after 30 minutes without requests (SHIPYARD_SCALE_TO_ZERO_AFTER).
SCALE_TO_ZERO_AFTER = 1800
POLLING_INTERVAL = 15  # seconds: a Prometheus scrape interval; polling faster reads the same sample


@dataclass(frozen=True)
class WebScaling:
    """What scales web: the object (None: the formation's fixed count), its lowest count, and why it differs
    from what was asked, if it does."""

    autoscaler: KubeObject | None
    min_replicas: int
    note: str = ""


def behavior() -> dict[str, Any]:
    """The KPA's pace: up at once (a panic doubles or adds 4 pods per 5 s, whichever is more), down only after
    30 s without need and by at most half at a time."""
    return {"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                        "policies": [{"type": "Percent", "value": 100, "periodSeconds": 5},
                                     {"type": "Pods", "value": 4, "periodSeconds": 5}]},
            "scaleDown": {"stabilizationWindowSeconds": 30, "selectPolicy": "Min",
                          "policies": [{"type": "Percent", "value": 50, "periodSeconds": 30}]}}


def _metadata(release: KubeRelease) -> dict[str, Any]:
    return {"name": process_name(WEB), "namespace": release.namespace, "labels": app_labels(release.app),
            "annotations": release_annotations(release.version)}


def _target_ref() -> dict[str, str]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": process_name(WEB)}


def horizontal_pod_autoscaler(release: KubeRelease, bounds: Autoscale, min_replicas: int) -> KubeObject:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": _metadata(release),
        "spec": {
            "scaleTargetRef": _target_ref(), "minReplicas": min_replicas, "maxReplicas": bounds.max,
            "metrics": [{"type": "External", "external": {
                "metric": {"name": IN_FLIGHT_METRIC, "selector": {"matchLabels": {"app": release.app}}},
                "target": {"type": "AverageValue", "averageValue": quantity(bounds.target)}}}],
            "behavior": behavior(),
        },
    }


def scaled_object(release: KubeRelease, bounds: Autoscale) -> KubeObject:
    return {
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": _metadata(release),
        "spec": {
            "scaleTargetRef": _target_ref(),
            "minReplicaCount": 0, "maxReplicaCount": bounds.max,
            "pollingInterval": POLLING_INTERVAL, "cooldownPeriod": SCALE_TO_ZERO_AFTER,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior()}},
            "triggers": [{"type": "prometheus", "metadata": {
                "serverAddress": release.cluster.prometheus_url,
                "query": f'sum({IN_FLIGHT_METRIC}{{app="{release.app}"}})',
                "threshold": f"{bounds.target:g}",
                # Any request in flight wakes the app from zero.
                "activationThreshold": "0"}}],
        },
    }


def web_scaling(release: KubeRelease) -> WebScaling:
    bounds = release.autoscale
    if WEB not in release.running_types or bounds is None:
        return WebScaling(None, release.count(WEB))
    if bounds.min >= 1:
        return WebScaling(horizontal_pod_autoscaler(release, bounds, bounds.min), bounds.min)
    if release.cluster.keda:
        return WebScaling(scaled_object(release, bounds), 0)
    return WebScaling(horizontal_pod_autoscaler(release, bounds, 1), 1,
                      f"{release.app}: web scales between 1 and {bounds.max}, not from 0: scaling to zero on "
                      "Kubernetes needs KEDA, which this cluster does not have (a HorizontalPodAutoscaler cannot "
                      "go below 1).")
