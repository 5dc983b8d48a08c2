"""The edge under hostile clients (issue 13), with the platform's defaults: a slowloris of 200 connections
trickling request heads is cut off after 10 s while an app keeps answering at once; client-sent
X-Forwarded-* headers never reach the app."""

from __future__ import annotations

import socket
import time

from .harness import Shipyard


def test_a_slowloris_is_cut_off_and_apps_keep_answering(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "calm")
    shipyard.push(shipyard.checkout("flask-hello", "calm"))
    slow = []
    for _ in range(200):
        sock = socket.create_connection(("127.0.0.1", shipyard.edge_port))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: calm.localhost\r\nX-Slow: ")
        slow.append(sock)
    started = time.monotonic()
    try:
        worst = 0.0
        while time.monotonic() - started < 5:
            began = time.monotonic()
            assert shipyard.get("calm").status_code == 200
            worst = max(worst, time.monotonic() - began)
            for sock in slow[:20]:
                sock.sendall(b"a")
            time.sleep(0.2)
        assert worst < 1.0, worst
        for sock in slow:
            sock.settimeout(15)
            answer = sock.recv(100)  # the edge's 408, or a close, once the head's 10 s are up
            assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - started < 16
    finally:
        for sock in slow:
            sock.close()


def test_forwarded_headers_from_a_client_are_replaced(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "honest")
    shipyard.push(shipyard.checkout("flask-hello", "honest"))
    seen = shipyard.get("honest", "/headers", headers={"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https",
                                                     "X-Forwarded-Host": "bank.example"}).json()
    assert seen["X-Forwarded-For"] == "127.0.0.1" and seen["X-Forwarded-Proto"] == "http"
    assert seen["X-Forwarded-Host"] == f"honest.localhost:{shipyard.edge_port}"
