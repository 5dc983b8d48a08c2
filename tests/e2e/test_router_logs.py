"""Router lines and request metrics (issue 13): one line per request in `shipyard logs`, an X-Request-ID the
app receives, and per-app counts at the platform's /metrics matching the requests sent."""

from __future__ import annotations

import re

from .harness import Shipyard


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and line.split("{", 1)[1].split("}", 1)[0] == wanted:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_router_lines_request_ids_and_metrics(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "traced")
    shipyard.push(shipyard.checkout("flask-hello", "traced"))
    for _ in range(5):
        assert shipyard.get("traced").status_code == 200
    for _ in range(3):
        assert shipyard.get("traced", "/nothing-here").status_code == 404
    mine = "client-chosen-request-id-0001"
    seen = shipyard.get("traced", "/headers", headers={"X-Request-ID": mine}).json()
    assert seen["X-Request-Id"] == mine  # a client's id of 20–200 characters is kept, as on Heroku
    generated = shipyard.get("traced", "/headers", headers={"X-Request-ID": "short"}).json()["X-Request-Id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", generated)

    logs = shipyard.wait_for(lambda: (out := shipyard.cli("logs", "traced", "-n", "100").out)
                             .count("router: GET") >= 10 and out)
    line = re.compile(r"router: GET / 200 \d+ ms \d+ B web\.1 req=[0-9a-f-]{36}$", re.MULTILINE)
    assert len(line.findall(logs)) >= 5, logs  # the health checks do not pass through the edge
    assert len(re.findall(r"router: GET /nothing-here 404 \d+ ms .* web\.1 req=", logs)) == 3
    assert "router: GET /headers 200" in logs and f"req={mine}" in logs

    text = shipyard.api("GET", "/metrics").text
    assert metric(text, "shipyard_requests_total", app="traced", status_class="4xx") == 3
    assert metric(text, "shipyard_requests_total", app="traced", status_class="2xx") >= 7
    assert metric(text, "shipyard_request_duration_seconds_count", app="traced") >= 10
    assert metric(text, "shipyard_instance_in_flight_requests", app="traced", instance="web.1") == 0
    assert 'shipyard_instance_in_flight_requests{app="traced",instance="web.1"}' in text
    assert shipyard.api("GET", "/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401

    shipyard.cli("apps", "destroy", "traced", "--confirm", "traced")
    assert 'app="traced"' not in shipyard.api("GET", "/metrics").text
