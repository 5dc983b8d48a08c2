"""The activator on real loopback sockets: a held request is handed to the woken instance byte for byte, an
unknown host is a 404, and a start that takes too long or fails is a 503 page saying why."""

from __future__ import annotations

import asyncio

from shipyard.edge.activator import Activator, host_of
from shipyard.errors import DeployError


def test_host_of() -> None:
    assert host_of(b"GET / HTTP/1.1\r\nHost: Todo.localhost:8480\r\n\r\n") == "todo.localhost"
    assert host_of(b"GET / HTTP/1.1\r\nhost: [::1]\r\n\r\n") == "[::1]"
    assert host_of(b"GET / HTTP/1.1\r\n\r\n") is None


async def echo_instance() -> tuple[asyncio.Server, str]:
    """An 'instance' that answers with what it received (head and body), then closes, as gunicorn sync does."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0)
        body = await reader.readexactly(length)
        answer = head + body
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(answer) + answer)
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, f"127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def ask(address: str, request: bytes) -> bytes:
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


def test_a_held_request_reaches_the_woken_instance_unchanged() -> None:
    async def run() -> tuple[bytes, bytes, list[str]]:
        instance, address = await echo_instance()
        woken: list[str] = []

        async def wake(app: str) -> str:
            woken.append(app)
            await asyncio.sleep(0.2)  # starting
            return address

        activator = Activator({"todo.localhost": "todo"}.get, wake, timeout=5)
        where = await activator.start()
        try:
            request = b"POST /items HTTP/1.1\r\nHost: todo.localhost:8480\r\nContent-Length: 5\r\n\r\nhello"
            answer = await ask(where, request)
            unknown = await ask(where, b"GET / HTTP/1.1\r\nHost: other.localhost\r\n\r\n")
        finally:
            await activator.stop()
            instance.close()
        return answer, unknown, woken

    answer, unknown, woken = asyncio.run(run())
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"Content-Length: 5\r\n\r\nhello")
    assert woken == ["todo"]
    assert unknown.startswith(b"HTTP/1.1 404") and b"No application" in unknown


def test_a_start_too_slow_or_failing_is_a_503_page() -> None:
    async def run() -> tuple[bytes, bytes]:
        async def slow(app: str) -> str:
            await asyncio.sleep(10)
            return "127.0.0.1:1"

        async def failing(app: str) -> str:
            raise DeployError("web.1 exited with code 3 before listening on $PORT.\n  KeyError: SECRET")

        request = b"GET / HTTP/1.1\r\nHost: todo.localhost\r\n\r\n"
        answers = []
        for wake in (slow, failing):
            activator = Activator(lambda host: "todo", wake, timeout=0.3)
            where = await activator.start()
            try:
                answers.append(await ask(where, request))
            finally:
                await activator.stop()
        return answers[0], answers[1]

    too_slow, failed = asyncio.run(run())
    assert too_slow.startswith(b"HTTP/1.1 503") and b"did not start within 0.3 s" in too_slow
    assert b"shipyard logs todo" in too_slow
    assert failed.startswith(b"HTTP/1.1 503") and b"could not start" in failed
    assert b"exited with code 3" not in failed  # the app's own output is for its owner, not for visitors
