"""The local readiness and liveness rules (runtime/readiness.py) as kubelet probes of a web container.

Kubernetes judges an HTTP probe by its status alone and counts consecutive failures at a fixed period, so
each local time limit becomes periodSeconds × failureThreshold:

- readiness: probed every second, a pod leaves the Service after `server_error_limit` (5 s) of answers
  ≥ 500. A probe that gets no answer costs its timeout (5 s) plus the period, so the same threshold takes
  5 × (5 + 1) = 30 s of silence, which is `no_answer_limit`: one threshold expresses both local limits.
- startup: the app gets its boot timeout to answer once; liveness and readiness wait for it.
- liveness: LivenessRules as they are (every 10 s, 5 s each, 3 failures in a row: restart).

Differences that remain: kubelet counts only 200–399 as success where the local rules accept any status
below 500 (a health path that answers 404 must be changed with `--health-path`), and a liveness probe
answered with a 5xx counts as a failure where locally only silence does.
"""

from __future__ import annotations

import math
from typing import Any

from shipyard.runtime.readiness import LivenessRules, ReadinessRules

READINESS_PERIOD = 1
STARTUP_PERIOD = 1
READINESS, LIVENESS = ReadinessRules(), LivenessRules()  # the local backend's defaults


def _http_get(path: str, host: str) -> dict[str, Any]:
    # The app's hostname as Host: Django refuses any other (DisallowedHost), and kubelet's default is the
    # pod's IP. The port by name, so a fixed-port app needs no other probe.
    return {"path": path or "/", "port": "http", "scheme": "HTTP",
            "httpHeaders": [{"name": "Host", "value": host}]}


def readiness_probe(path: str, host: str, rules: ReadinessRules = READINESS) -> dict[str, Any]:
    timeout = math.ceil(rules.probe_timeout)
    failures = math.ceil(rules.server_error_limit / READINESS_PERIOD)
    return {"httpGet": _http_get(path, host), "periodSeconds": READINESS_PERIOD, "timeoutSeconds": timeout,
            "failureThreshold": failures, "successThreshold": 1}


def startup_probe(path: str, host: str, boot_timeout: float,
                  rules: ReadinessRules = READINESS) -> dict[str, Any]:
    return {"httpGet": _http_get(path, host), "periodSeconds": STARTUP_PERIOD,
            "timeoutSeconds": math.ceil(rules.probe_timeout),
            "failureThreshold": max(1, math.ceil(boot_timeout / STARTUP_PERIOD)), "successThreshold": 1}


def liveness_probe(path: str, host: str, rules: LivenessRules = LIVENESS) -> dict[str, Any]:
    return {"httpGet": _http_get(path, host), "periodSeconds": math.ceil(rules.interval),
            "timeoutSeconds": math.ceil(rules.timeout), "failureThreshold": rules.failures, "successThreshold": 1}


def min_ready_seconds(rules: ReadinessRules = READINESS) -> int:
    """The settle period: a pod must stay ready this long before the rollout counts it (whole seconds)."""
    return math.ceil(rules.settle)
