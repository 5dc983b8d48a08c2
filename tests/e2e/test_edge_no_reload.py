"""The edge never reloads (issue 13): other apps' changes touch no connection of an app.

4 keep-alive clients and a WebSocket on app A while 20 apps are created and destroyed (one of them deployed,
so servers come and go in other backends), then A itself is redeployed: zero failed requests, the WebSocket
stays open through the churn, and a WebSocket on a bystander app stays open through everything. HAProxy's
pid never changes.
"""

from __future__ import annotations

import socket

from websockets.sync.client import ClientConnection, connect

from .harness import Shipyard
from .load import Load
from .test_faults import edge_pid


def websocket(shipyard: Shipyard, app: str) -> ClientConnection:
    """A WebSocket through the edge, to the app's hostname (dialled on loopback: *.localhost may not resolve)."""
    sock = socket.create_connection(("127.0.0.1", shipyard.edge_port))
    return connect(f"ws://{app}.localhost:{shipyard.edge_port}/ws", sock=sock, open_timeout=10)


def echoes(conn: ClientConnection, message: str) -> str:
    conn.send(message)
    return str(conn.recv(timeout=10))


def test_creating_and_destroying_apps_and_deploys_touch_no_other_connection(shipyard: Shipyard) -> None:
    works = {}
    for app in ("steady", "bystander"):
        shipyard.cli("apps", "create", app)
        works[app] = shipyard.checkout("websocket-echo", app)
        shipyard.push(works[app])
    edge = edge_pid(shipyard)
    churner = shipyard.checkout("flask-hello", "churn0")

    with websocket(shipyard, "steady") as steady_ws, websocket(shipyard, "bystander") as bystander_ws:
        assert echoes(steady_ws, "hello") == "v1: hello"
        with Load(shipyard, "steady", clients=4) as load:
            for n in range(20):
                name = f"churn{n}"
                shipyard.cli("apps", "create", name)
                if n == 0:  # one of them deployed: servers added to and removed from another backend
                    shipyard.push(churner)
                    assert shipyard.get(name).status_code == 200
                shipyard.cli("apps", "destroy", name, "--confirm", name)
                assert echoes(steady_ws, f"churn {n}") == f"v1: churn {n}"
            # A's own redeploy: the load moves to v2 without a failure.
            work = works["steady"]
            (work / "main.py").write_text((work / "main.py").read_text() + "\n# v2\n")
            shipyard.commit(work, "v2")
            shipyard.push(work)
        assert echoes(bystander_ws, "still there?") == "v1: still there?"

    assert load.sent > 100, load.sent
    assert load.no_response == [] and load.error_statuses == [], (load.no_response[:3], load.error_statuses[:3])
    assert set(load.bodies) == {'{"release":"v1"}', '{"release":"v2"}'}, load.bodies
    assert edge_pid(shipyard) == edge  # never restarted, never reloaded
