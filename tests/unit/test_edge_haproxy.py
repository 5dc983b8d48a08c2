"""The edge against a real HAProxy on loopback, with real upstream HTTP servers (subprocesses)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from shipyard.edge.haproxy import Edge
from shipyard.edge.haproxy_config import EdgeLimits
from shipyard.edge.routes import AppRoute
from shipyard.errors import PlatformError
from shipyard.proc import free_port

from .tls_client import tls_get

# An upstream that answers every GET with its name and the headers it received; /slow takes a second.
UPSTREAM = r"""
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else headers and body wait out a delayed ACK (40 ms)
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(1)
        body = json.dumps({"name": sys.argv[1], "headers": dict(self.headers)}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    log_message = lambda *args: None
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), H).serve_forever()
"""

# Failures where the client received nothing at all: HTTP/1.1 clients may safely retry these.
NOTHING_RECEIVED = (httpx.RemoteProtocolError, httpx.ReadError)


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@pytest.fixture
def upstream() -> Iterator[Callable[[str], str]]:
    """Start a named upstream; returns its dial address. Every one is stopped by its pid afterwards."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> str:
        port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-c", UPSTREAM, name, str(port)]))
        wait_listening(port)
        return f"127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


@contextlib.asynccontextmanager
async def running_edge(tmp_path: Path, pool: int = 8, retries: int = 10,
                       headers_timeout: str = "10s") -> AsyncIterator[tuple[Edge, str]]:
    port = free_port()
    edge = Edge(config_dir=tmp_path / "edge", admin_socket=tmp_path / "edge" / "admin.sock",
                listen=f"127.0.0.1:{port}", base_domain="localhost", log_file=tmp_path / "logs" / "edge.log",
                pool=pool, limits=EdgeLimits(retries=retries, request_headers_timeout=headers_timeout))
    await edge.start()
    try:
        yield edge, f"http://127.0.0.1:{port}"
    finally:
        await edge.stop()


def config_written(tmp_path: Path) -> int:
    """When HAProxy's config was last written: once per process, never for a change."""
    return (tmp_path / "edge" / "haproxy.cfg").stat().st_mtime_ns


def test_routes_by_host_and_sets_forwarded_headers(tmp_path: Path, upstream: Callable[[str], str]) -> None:
    a, b = upstream("A"), upstream("B")

    async def scenario() -> None:
        async with running_edge(tmp_path) as (edge, url):
            await edge.apply([AppRoute("todo", "todo.localhost", (a,)), AppRoute("blog", "blog.localhost", (b,))])
            port = url.rsplit(":", 1)[1]
            async with httpx.AsyncClient(base_url=url) as client:
                # The hostname is matched without the port and the case, as browsers may send either.
                for host in ("todo.localhost", f"todo.localhost:{port}", "TODO.localhost"):
                    assert (await client.get("/", headers={"Host": host})).json()["name"] == "A"
                assert (await client.get("/", headers={"Host": "blog.localhost"})).json()["name"] == "B"
                seen = (await client.get("/", headers={"Host": f"todo.localhost:{port}",
                                                       "X-Forwarded-For": "6.6.6.6",
                                                       "X-Forwarded-Host": "evil.example"})).json()["headers"]
            seen = {name.title(): value for name, value in seen.items()}  # HAProxy sends names in lower case
            # Client-supplied X-Forwarded-* are replaced: the client is not a trusted proxy.
            assert seen["X-Forwarded-For"] == "127.0.0.1"
            assert seen["X-Forwarded-Proto"] == "http"
            assert seen["X-Forwarded-Host"] == f"todo.localhost:{port}"
            assert seen["Host"] == f"todo.localhost:{port}"  # passed through, for Django's ALLOWED_HOSTS

    asyncio.run(scenario())


def test_requests_spread_over_every_upstream(tmp_path: Path, upstream: Callable[[str], str]) -> None:
    a, b = upstream("A"), upstream("B")

    async def scenario() -> None:
        async with running_edge(tmp_path) as (edge, url):
            await edge.apply([AppRoute("todo", "todo.localhost", (a, b))])
            async with httpx.AsyncClient(base_url=url, headers={"Host": "todo.localhost"}) as client:
                names = [(await client.get("/")).json()["name"] for _ in range(4)]
            assert sorted(names) == ["A", "A", "B", "B"]
            assert not any((await edge.upstream_requests()).values())

    asyncio.run(scenario())


def test_pages_for_unknown_host_no_instance_and_instance_down(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with running_edge(tmp_path, retries=1) as (edge, url):
            closed = f"127.0.0.1:{free_port()}"
            await edge.apply([AppRoute("empty", "empty.localhost", ()), AppRoute("dead", "dead.localhost", (closed,))])
            async with httpx.AsyncClient(base_url=url, timeout=15) as client:
                unknown = await client.get("/", headers={"Host": "nothing.localhost:8480"})
                empty = await client.get("/", headers={"Host": "empty.localhost"})
                dead = await client.get("/x", headers={"Host": "dead.localhost"})
            assert unknown.status_code == 404 and "`shipyard apps`" in unknown.text
            assert empty.status_code == 503 and empty.text == ("Application 'empty' has no running instance.\n"
                                                               "Deploy it with `git push`, or see why with "
                                                               "`shipyard logs empty`.\n")
            assert empty.headers["cache-control"] == "no-store"
            assert dead.status_code == 503 and "Application 'dead'" in dead.text
            assert "not answering" in dead.text and "`shipyard logs dead`" in dead.text
            for page in (unknown, empty, dead):
                assert page.headers["content-type"] == "text/plain; charset=utf-8"

    asyncio.run(scenario())


def test_apply_never_reloads_haproxy(tmp_path: Path, upstream: Callable[[str], str]) -> None:
    a, b = upstream("A"), upstream("B")

    async def scenario() -> None:
        async with running_edge(tmp_path) as (edge, url):
            pid, written = edge.pid, config_written(tmp_path)
            apps = [AppRoute("todo", "todo.localhost", (a,)), AppRoute("blog", "blog.localhost", ())]
            await edge.apply(apps)
            await edge.apply(apps)
            await edge.apply(list(reversed(apps)))
            async with httpx.AsyncClient(base_url=url, headers={"Host": "todo.localhost"}) as client:
                await edge.apply([AppRoute("todo", "todo.localhost", (b,)), apps[1]])  # a deploy: new instance
                assert (await client.get("/")).json()["name"] == "B"
                await edge.apply([AppRoute("todo", "todo.localhost", (a, b)), apps[1]])  # scaled to 2
                assert sorted([(await client.get("/")).json()["name"] for _ in range(4)]) == ["A", "A", "B", "B"]
                await edge.apply([AppRoute("todo", "todo.localhost", ()), apps[1]])  # its last instance stops
                assert (await client.get("/")).status_code == 503
                await edge.apply([AppRoute("todo", "todo.localhost", (b,)), apps[1]])  # and one starts again
                assert (await client.get("/")).json()["name"] == "B"
                await edge.apply([])
                assert (await client.get("/")).status_code == 404
                await edge.apply([AppRoute("todo", "todo.localhost", (a,))])  # made again: served again
                assert (await client.get("/")).json()["name"] == "A"
            assert edge.pid == pid and config_written(tmp_path) == written and edge.restarts == 0
            assert (tmp_path / "edge" / "hosts.map").read_text() == "todo.localhost b0:todo:\n"

    asyncio.run(scenario())


def test_a_killed_haproxy_comes_back_with_its_routes(tmp_path: Path, upstream: Callable[[str], str]) -> None:
    a = upstream("A")

    async def scenario() -> None:
        async with running_edge(tmp_path) as (edge, url):
            await edge.apply([AppRoute("todo", "todo.localhost", (a,)), AppRoute("blog", "blog.localhost", ())])
            os.kill(edge.pid or 0, 9)
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                # Sent while it is dead: waits in the platform's listening socket for the next HAProxy.
                response = await client.get("/", headers={"Host": "todo.localhost"})
                assert response.json()["name"] == "A"
                assert (await client.get("/", headers={"Host": "blog.localhost"})).status_code == 503
            assert edge.restarts == 1 and await edge.until_serving(5)
            assert edge.routes_to("todo", a)

    asyncio.run(scenario())


def test_every_backend_taken_is_said_and_the_routes_stay(tmp_path: Path, upstream: Callable[[str], str]) -> None:
    a = upstream("A")

    async def scenario() -> None:
        async with running_edge(tmp_path, pool=2) as (edge, url):
            good = [AppRoute("todo", "todo.localhost", (a,)), AppRoute("blog", "blog.localhost", ())]
            await edge.apply(good)
            with pytest.raises(PlatformError, match="room for 2 apps") as raised:
                await edge.apply([*good, AppRoute("shop", "shop.localhost", (a,))])
            assert "SHIPYARD_EDGE_BACKENDS" in (raised.value.hint or "")
            async with httpx.AsyncClient(base_url=url) as client:
                assert (await client.get("/", headers={"Host": "todo.localhost"})).json()["name"] == "A"
                assert (await client.get("/", headers={"Host": "shop.localhost"})).status_code == 404

    asyncio.run(scenario())


def test_refused_connections_are_retried_on_the_new_instances(tmp_path: Path, upstream: Callable[[str], str]) -> None:
    b = upstream("B")

    async def scenario() -> None:
        async with running_edge(tmp_path) as (edge, url):
            gone = f"127.0.0.1:{free_port()}"  # an instance that has just been stopped
            await edge.apply([AppRoute("todo", "todo.localhost", (gone,))])
            async with httpx.AsyncClient(base_url=url, headers={"Host": "todo.localhost"}) as client:
                request = asyncio.create_task(client.get("/"))
                await asyncio.sleep(0.3)
                await edge.apply([AppRoute("todo", "todo.localhost", (b,))])
                response = await request
            assert response.status_code == 200 and response.json()["name"] == "B"

    asyncio.run(scenario())


def test_start_and_stop(tmp_path: Path) -> None:
    sock = tmp_path / "edge" / "admin.sock"
    sock.parent.mkdir()
    with socket.socket(socket.AF_UNIX) as stale:  # left behind by a killed edge
        stale.bind(str(sock))

    async def scenario() -> int:
        async with running_edge(tmp_path) as (edge, _):
            pid = edge.pid
            assert pid is not None
            assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
            config = (tmp_path / "edge" / "haproxy.cfg").read_text()
            assert "    bind fd@" in config  # the platform's socket, inherited
            with pytest.raises(PlatformError, match="already answers"):
                await Edge(config_dir=tmp_path / "other", admin_socket=sock, listen=f"127.0.0.1:{free_port()}",
                           base_domain="localhost", log_file=tmp_path / "other.log").start()
        await edge.stop()  # idempotent
        assert edge.pid is None and not sock.exists()
        return pid

    pid = asyncio.run(scenario())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_port_in_use_is_reported(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        edge = Edge(config_dir=tmp_path, admin_socket=tmp_path / "admin.sock", listen=f"127.0.0.1:{port}",
                    base_domain="localhost", log_file=tmp_path / "edge.log")
        with pytest.raises(PlatformError, match="Address already in use") as raised:
            asyncio.run(edge.start())
    assert "--edge-port" in (raised.value.hint or "") and edge.pid is None


def test_haproxy_failing_to_start_shows_its_log(tmp_path: Path) -> None:
    edge = Edge(config_dir=tmp_path / "edge", admin_socket=tmp_path / "edge" / "admin.sock",
                listen=f"127.0.0.1:{free_port()}", base_domain="localhost", log_file=tmp_path / "edge.log",
                limits=EdgeLimits(request_headers_timeout="ten seconds"))  # not a duration: HAProxy refuses it
    with pytest.raises(PlatformError, match="exited while starting") as raised:
        asyncio.run(edge.start())
    assert "Fatal errors found in configuration" in raised.value.message and edge.pid is None


def test_a_data_directory_too_deep_for_unix_sockets_is_said(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 110)
    edge = Edge(config_dir=deep, admin_socket=deep / "admin.sock", listen=f"127.0.0.1:{free_port()}",
                base_domain="localhost", log_file=tmp_path / "edge.log")
    with pytest.raises(PlatformError, match="request log socket") as raised:
        asyncio.run(edge.start())
    assert "--data-dir" in (raised.value.hint or "") and edge.pid is None


def test_in_flight_requests_finish_on_the_old_upstream(tmp_path: Path, upstream: Callable[[str], str]) -> None:
    a, b = upstream("A"), upstream("B")

    async def scenario() -> None:
        async with running_edge(tmp_path) as (edge, url):
            await edge.apply([AppRoute("todo", "todo.localhost", (a,))])
            async with httpx.AsyncClient(base_url=url, headers={"Host": "todo.localhost"}) as client:
                slow = asyncio.create_task(client.get("/slow"))
                await asyncio.sleep(0.3)
                assert (await edge.upstream_requests())[a] == 1
                await edge.apply([AppRoute("todo", "todo.localhost", (b,))])
                assert (await edge.upstream_requests())[a] == 1  # still listed while busy: not drained
                assert (await client.get("/")).json()["name"] == "B"
                response = await slow
            assert response.status_code == 200 and response.json()["name"] == "A"
            assert (await edge.upstream_requests()).get(a, 0) == 0

    asyncio.run(scenario())


@pytest.mark.parametrize("keep_alive", [False, True], ids=["fresh-connections", "keep-alive"])
def test_switching_upstreams_under_load(tmp_path: Path, upstream: Callable[[str], str], keep_alive: bool) -> None:
    """200 sequential requests while the app's upstream switches 6 times: every one is answered.

    A reload could close a keep-alive connection a request is being sent on; switching instances is a few
    runtime-API commands, never a reload.
    """
    a, b = upstream("A"), upstream("B")
    switches = 6

    async def scenario() -> tuple[list[int], list[str], int]:  # statuses, upstream names, dropped
        async with running_edge(tmp_path) as (edge, url):
            await edge.apply([AppRoute("todo", "todo.localhost", (a,))])
            pid, written = edge.pid, config_written(tmp_path)
            limits = httpx.Limits(max_keepalive_connections=5 if keep_alive else 0)
            statuses, bodies, dropped, started = [], [], 0, asyncio.Event()

            async def switch() -> None:
                await started.wait()
                for n in range(switches):
                    await asyncio.sleep(0.03)
                    await edge.apply([AppRoute("todo", "todo.localhost", ((b, a)[n % 2],))])

            async with httpx.AsyncClient(base_url=url, headers={"Host": "todo.localhost"}, limits=limits) as client:
                switcher = asyncio.create_task(switch())
                for i in range(200):
                    if i == 10:
                        started.set()
                    try:
                        response = await client.get("/")
                    except NOTHING_RECEIVED:
                        dropped += 1
                        response = await client.get("/")
                    statuses.append(response.status_code)
                    bodies.append(response.json()["name"])
                await switcher
            assert edge.pid == pid and config_written(tmp_path) == written
            return statuses, bodies, dropped

    statuses, bodies, dropped = asyncio.run(scenario())
    print(f"\n{dropped} of 200 requests were dropped before any response byte during {switches} switches")
    assert statuses == [200] * 200
    assert set(bodies) == {"A", "B"}
    assert dropped == 0


def test_a_slowloris_neither_holds_the_edge_nor_slows_others(tmp_path: Path, upstream: Callable[[str], str]) -> None:
    """300 clients trickling a request head: each is cut off (408) once the head's time is up, while a normal
    client is answered at once all along."""
    a = upstream("A")

    async def scenario() -> tuple[list[float], list[bytes]]:
        async with running_edge(tmp_path, headers_timeout="2s") as (edge, url):  # the platform's default: 10 s
            await edge.apply([AppRoute("todo", "todo.localhost", (a,))])
            port = int(url.rsplit(":", 1)[1])
            slow = []
            for _ in range(300):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET / HTTP/1.1\r\nHost: todo.localhost\r\nX-Slow: ")
                slow.append((reader, writer))
            latencies = []
            async with httpx.AsyncClient(base_url=url, headers={"Host": "todo.localhost"}) as client:
                for _ in range(10):
                    started = time.monotonic()
                    assert (await client.get("/")).json()["name"] == "A"
                    latencies.append(time.monotonic() - started)
                    for _, writer in slow[:50]:
                        writer.write(b"a")  # still trickling: it does not reset the head's deadline
                    await asyncio.sleep(0.1)
            answers = [await asyncio.wait_for(reader.read(), timeout=10) for reader, _ in slow]
            for _, writer in slow:
                writer.close()
            return latencies, answers

    latencies, answers = asyncio.run(scenario())
    assert max(latencies) < 0.5, latencies
    assert all(answer == b"" or answer.startswith(b"HTTP/1.1 408") for answer in answers)


def test_a_body_larger_than_allowed_is_refused_before_the_app(tmp_path: Path, upstream: Callable[[str], str]) -> None:
    a = upstream("A")

    async def scenario() -> None:
        async with running_edge(tmp_path) as (edge, url):
            await edge.apply([AppRoute("todo", "todo.localhost", (a,))])
            reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
            writer.write(f"POST / HTTP/1.1\r\nHost: todo.localhost\r\nContent-Length: {200 * 1024 * 1024}\r\n\r\nx"
                         .encode())
            answer = await asyncio.wait_for(reader.read(), timeout=10)
            writer.close()
            assert answer.startswith(b"HTTP/1.1 413") and b"larger than this platform accepts" in answer
            async with httpx.AsyncClient(base_url=url, headers={"Host": "todo.localhost"}) as client:
                huge_head = await client.get("/", headers={"X-Big": "x" * 20000})
                assert huge_head.status_code == 400  # a request head past the edge's 16 kB buffer

    asyncio.run(scenario())


def test_https_with_the_platforms_ca_http2_redirects_and_hsts(tmp_path: Path, upstream: Callable[[str], str]) -> None:
    from shipyard.addons.tls import CertificateAuthority

    a = upstream("A")
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    https_port = free_port()

    async def scenario() -> None:
        edge = Edge(config_dir=tmp_path / "edge", admin_socket=tmp_path / "edge" / "admin.sock",
                    listen=f"127.0.0.1:{free_port()}", base_domain="localhost", log_file=tmp_path / "edge.log",
                    pool=4, https_listen=f"127.0.0.1:{https_port}", ca=ca)
        await edge.start()
        try:
            url = f"http://{edge._listen}"  # noqa: SLF001
            await edge.install_certificate("todo.localhost", ca.issue_pem(["todo.localhost"]))
            await edge.apply([AppRoute("todo", "todo.localhost", (a,), redirect_https=frozenset({"todo.localhost"}),
                                       hsts=frozenset({"todo.localhost"}))])
            alpn, answer, subject = await asyncio.to_thread(tls_get, https_port, "todo.localhost", ca.cert_file)
            assert alpn == "h2" and subject == "todo.localhost"
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and b"strict-transport-security: max-age=31536000" in head.lower()
            seen = {k.lower(): v for k, v in json.loads(body)["headers"].items()}
            assert seen["x-forwarded-proto"] == "https"
            async with httpx.AsyncClient(base_url=url, headers={"Host": "todo.localhost"}) as client:
                redirect = await client.get("/path?q=1")
            assert redirect.status_code == 308
            assert redirect.headers["location"] == f"https://todo.localhost:{https_port}/path?q=1"
            # Renewed in place, then the edge killed: the new HAProxy serves the certificates it had.
            await edge.install_certificate("todo.localhost", ca.issue_pem(["todo.localhost", "www.todo.localhost"]))
            os.kill(edge.pid or 0, 9)
            await asyncio.sleep(0.2)
            assert await edge.until_serving(10)
            alpn, answer, subject = await asyncio.to_thread(tls_get, https_port, "www.todo.localhost", ca.cert_file)
            assert subject == "todo.localhost" and answer.startswith(b"HTTP/1.1 404")  # www is no app's host
            await edge.remove_certificate("todo.localhost")
            with pytest.raises(ssl.SSLCertVerificationError):
                await asyncio.to_thread(tls_get, https_port, "todo.localhost", ca.cert_file)
        finally:
            await edge.stop()

    asyncio.run(scenario())



def test_a_change_haproxy_refuses_half_way_restarts_it_with_the_last_complete_routes(
        tmp_path: Path, upstream: Callable[[str], str]) -> None:
    a = upstream("A")

    async def scenario() -> None:
        async with running_edge(tmp_path) as (edge, url):
            await edge.apply([AppRoute("todo", "todo.localhost", (a,))])
            # A server added behind the platform's back: the plan's `add server b0/s2` is refused.
            await edge._api.run(f"add server b0/s2 {a}")  # noqa: SLF001 - simulating a divergence
            with pytest.raises(PlatformError, match="refused `add server b0/s2"):
                await edge.apply([AppRoute("todo", "todo.localhost", (a, "127.0.0.1:1"))])
            await asyncio.sleep(0.5)  # the supervisor sees it die and starts the next one
            assert await edge.until_serving(10) and edge.restarts == 1
            await edge.apply([AppRoute("todo", "todo.localhost", (a,)), AppRoute("blog", "blog.localhost", ())])
            async with httpx.AsyncClient(base_url=url) as client:
                assert (await client.get("/", headers={"Host": "todo.localhost"})).json()["name"] == "A"
                assert (await client.get("/", headers={"Host": "blog.localhost"})).status_code == 503

    asyncio.run(scenario())
