"""The observations readiness and liveness decide on: HTTP probes, listening sockets, the process tree."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import httpx
import psutil

from shipyard.runtime.readiness import Probe, refused_host
from shipyard.runtime.sockets import process_tree

BODY_LIMIT = 4096  # of a health response, enough to recognise Django's 400 page


async def is_listening(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


async def http_probe(port: int, path: str, host: str, timeout: float, recent_log: Sequence[str]) -> Probe:
    """GET the health path on the instance's own address, with the Host the edge sends.

    The app controls the response: it is read only up to BODY_LIMIT, and the whole exchange is bounded by
    `timeout` (httpx's own timeouts are per read, so a body trickled forever would hold the probe).
    """
    sent = time.monotonic()
    # Plain HTTP to the instance's loopback address: no TLS, so no CA bundle to load (18 ms of the event loop's
    # CPU per probe with it, paid by every instance's liveness check).
    async with httpx.AsyncClient(timeout=timeout, verify=False) as client:
        try:
            status, body = await asyncio.wait_for(_get(client, port, path, host), timeout)
        except (httpx.TimeoutException, asyncio.TimeoutError):
            return Probe(None, f"no response within {timeout:g} s", waited=time.monotonic() - sent)
        except httpx.ConnectError:
            return Probe(None, "connection refused", waited=time.monotonic() - sent)
        except httpx.HTTPError as exc:
            return Probe(None, f"connection closed without a response ({type(exc).__name__})",
                         waited=time.monotonic() - sent)
        other: int | None = None
        if status == 400:
            try:
                other, _ = await asyncio.wait_for(_get(client, port, path, "localhost"), timeout)
            except (httpx.HTTPError, asyncio.TimeoutError):
                pass
    return Probe(status, host_refused=refused_host(status, body, recent_log, other))


async def _get(client: httpx.AsyncClient, port: int, path: str, host: str) -> tuple[int, str]:
    async with client.stream("GET", f"http://127.0.0.1:{port}{path}", headers={"Host": host}) as response:
        body = b""
        async for chunk in response.aiter_raw():
            body += chunk
            if len(body) >= BODY_LIMIT:
                break
        return response.status_code, body[:BODY_LIMIT].decode("utf-8", errors="replace")


def command_tree(pid: int) -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of a process and its descendants; empty once it is gone."""
    tree = []
    for process in process_tree(pid):
        try:
            tree.append((process.pid, process.ppid(), " ".join(process.cmdline())))
        except psutil.Error:
            continue
    return tree
