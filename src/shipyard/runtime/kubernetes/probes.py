"""The local readiness and liveness rules (runtime/readiness.py) as kubelet probes of a web container.

Kubernetes judges an HTTP probe by its status alone and counts consecutive failures at a fixed period, so
each local time limit becomes periodSeconds × failureThreshold:

- readiness: probed every second, a pod leaves the Service after `server_error_limit` (5 s) of answers
  ≥ 500. A probe that gets no answer costs its timeout (5 s) plus the period, so the same threshold takes
  5 × (5 + 1) = 30 s of silence, which is `no_answer_limit`: one threshold expresses both local limits.
- startup: the app gets its boot timeout to answer once; liveness and readiness wait for it.
- liveness: LivenessRules as they are (every 10 s, 5 s each, 3 failures in a row: restart).

kubelet's own HTTP probe counts only 200–399 as success, where the local rules accept any status below 500
(flask-todo answers `/` with a 404 and is up). So the probe is an `exec` of the container's bash instead: one
GET over /dev/tcp to the app's port on the pod's loopback, the app's hostname as Host, success when the status
is below 500, as locally; no process but bash is started. The difference that remains: a liveness probe
answered with a 5xx counts as a failure where locally only silence does.
"""

from __future__ import annotations

import math
from typing import Any

from shipyard.runtime.readiness import LivenessRules, ReadinessRules

READINESS_PERIOD = 1
STARTUP_PERIOD = 1
READINESS, LIVENESS = ReadinessRules(), LivenessRules()  # the local backend's defaults


# $1 the path, $2 the Host: passed as arguments, never spliced into the script. $PORT is the container's.
HTTP_CHECK = ('exec 3<>"/dev/tcp/127.0.0.1/$PORT" && '
              'printf "GET %s HTTP/1.0\\r\\nHost: %s\\r\\nUser-Agent: kube-probe\\r\\n\\r\\n" "$1" "$2" >&3 && '
              'read -r _ code _ <&3 && [ "${code:-500}" -lt 500 ] 2>/dev/null')


def _http_check(path: str, host: str) -> dict[str, Any]:
    # The app's hostname as Host: Django refuses any other (DisallowedHost), and kubelet's default is the
    # pod's IP.
    return {"exec": {"command": ["/bin/bash", "-c", HTTP_CHECK, "probe", path or "/", host]}}


def readiness_probe(path: str, host: str, rules: ReadinessRules = READINESS) -> dict[str, Any]:
    timeout = math.ceil(rules.probe_timeout)
    failures = math.ceil(rules.server_error_limit / READINESS_PERIOD)
    return {**_http_check(path, host), "periodSeconds": READINESS_PERIOD, "timeoutSeconds": timeout,
            "failureThreshold": failures, "successThreshold": 1}


def startup_probe(path: str, host: str, boot_timeout: float,
                  rules: ReadinessRules = READINESS) -> dict[str, Any]:
    return {**_http_check(path, host), "periodSeconds": STARTUP_PERIOD,
            "timeoutSeconds": math.ceil(rules.probe_timeout),
            "failureThreshold": max(1, math.ceil(boot_timeout / STARTUP_PERIOD)), "successThreshold": 1}


def liveness_probe(path: str, host: str, rules: LivenessRules = LIVENESS) -> dict[str, Any]:
    return {**_http_check(path, host), "periodSeconds": math.ceil(rules.interval),
            "timeoutSeconds": math.ceil(rules.timeout), "failureThreshold": rules.failures, "successThreshold": 1}


def min_ready_seconds(rules: ReadinessRules = READINESS) -> int:
    """The settle period: a pod must stay ready this long before the rollout counts it (whole seconds)."""
    return math.ceil(rules.settle)
