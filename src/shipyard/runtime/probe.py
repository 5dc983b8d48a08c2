"""The observations readiness and liveness decide on: HTTP probes, listening sockets, the process tree."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import httpx
import psutil

from shipyard.runtime.readiness import Probe, refused_host


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
    """GET the health path on the instance's own address, with the Host the edge sends."""
    sent = time.monotonic()
    async with httpx.AsyncClient(timeout=timeout) as client:
        try:
            response = await client.get(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
        except httpx.TimeoutException:
            return Probe(None, f"no response within {timeout:g} s", waited=time.monotonic() - sent)
        except httpx.ConnectError:
            return Probe(None, "connection refused", waited=time.monotonic() - sent)
        except httpx.HTTPError as exc:
            return Probe(None, f"connection closed without a response ({type(exc).__name__})",
                         waited=time.monotonic() - sent)
        other: int | None = None
        if response.status_code == 400:
            try:
                other = (await client.get(f"http://127.0.0.1:{port}{path}",
                                          headers={"Host": "localhost"})).status_code
            except httpx.HTTPError:
                pass
    return Probe(response.status_code,
                 host_refused=refused_host(response.status_code, response.text[:4096], recent_log, other))


def process_tree(pid: int) -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of a process and its descendants; empty once it is gone."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return []
    tree = []
    for process in processes:
        try:
            tree.append((process.pid, process.ppid(), " ".join(process.cmdline())))
        except psutil.Error:
            continue
    return tree
