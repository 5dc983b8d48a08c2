"""The health probe against real sockets, including an app that answers with an endless body."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from shipyard.runtime.probe import BODY_LIMIT, http_probe


def serve_once(handler) -> int:  # type: ignore[no-untyped-def]
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def run() -> None:
        with listener:
            listener.settimeout(10)
            try:
                while True:
                    connection, _ = listener.accept()
                    threading.Thread(target=handler, args=(connection,), daemon=True).start()
            except OSError:
                return

    threading.Thread(target=run, daemon=True).start()
    return port


def endless(connection: socket.socket) -> None:
    with connection:
        connection.recv(4096)
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
        try:
            while True:
                connection.sendall(b"x" * 1024)
                time.sleep(0.01)
        except OSError:
            return


def django_400(connection: socket.socket) -> None:
    with connection:
        connection.recv(4096)
        body = b"<!doctype html><title>Bad Request (400)</title><h1>Bad Request (400)</h1><p></p>"
        connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))


def test_an_endless_body_is_read_only_up_to_the_limit_and_counts_as_an_answer() -> None:
    port = serve_once(endless)
    started = time.monotonic()
    probe = asyncio.run(http_probe(port, "/", "app.localhost", 2, []))
    assert probe.status == 200 and probe.healthy
    assert time.monotonic() - started < 1.5
    assert BODY_LIMIT == 4096


def test_a_silent_app_gives_no_response_within_the_timeout() -> None:
    port = serve_once(lambda connection: time.sleep(5))
    probe = asyncio.run(http_probe(port, "/", "app.localhost", 0.5, []))
    assert probe.status is None and probe.error == "no response within 0.5 s" and 0.4 < probe.waited < 1.5


def test_djangos_bare_400_page_is_a_refused_host() -> None:
    port = serve_once(django_400)
    probe = asyncio.run(http_probe(port, "/", "app.localhost", 2, []))
    assert probe.status == 400 and probe.host_refused and not probe.healthy
