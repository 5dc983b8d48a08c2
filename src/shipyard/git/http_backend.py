"""git smart HTTP through `git http-backend` (CGI), streamed both ways.

The response is streamed as git writes it, so the pusher sees the build log
(`remote:` lines) while the pre-receive hook is still deploying.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shipyard.proc import die_with_parent


@dataclass
class CgiResponse:
    status: int
    headers: list[tuple[str, str]]
    body: AsyncIterator[bytes]
    process: asyncio.subprocess.Process


def cgi_env(*, repos_root: Path, path_info: str, method: str, query: str,
            headers: Mapping[str, str], remote_addr: str, extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        "GIT_PROJECT_ROOT": str(repos_root),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": path_info,
        "REQUEST_METHOD": method,
        "QUERY_STRING": query,
        "REMOTE_USER": "shipyard",
        "REMOTE_ADDR": remote_addr,
        "CONTENT_TYPE": headers.get("content-type", ""),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        **extra,
    }
    if "content-encoding" in headers:
        env["HTTP_CONTENT_ENCODING"] = headers["content-encoding"]
    if "git-protocol" in headers:
        env["GIT_PROTOCOL"] = headers["git-protocol"]
    return env


def parse_cgi_headers(raw: bytes) -> tuple[int, list[tuple[str, str]]]:
    status = 200
    headers: list[tuple[str, str]] = []
    for line in raw.decode("latin-1").splitlines():
        if not line.strip():
            continue
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        else:
            headers.append((name.strip(), value.strip()))
    return status, headers


async def spool_body(body: AsyncIterator[bytes], dest: BinaryIO) -> int:
    """Write the whole request body to a file first.

    The response starts streaming while git still runs; reading the body from the
    server at that point races with the server's own wait for a disconnect, which
    swallows body chunks of a large (chunked) push.
    """
    size = 0
    async for chunk in body:
        dest.write(chunk)
        size += len(chunk)
    dest.flush()
    return size


async def run_http_backend(env: dict[str, str], body: BinaryIO, error_log: Path) -> CgiResponse:
    """Run git on the spooled request body (an open file: git reads it from its start)."""
    env = {**env, "CONTENT_LENGTH": str(os.fstat(body.fileno()).st_size)}
    body.seek(0)
    with open(error_log, "ab") as errors:
        proc = await asyncio.create_subprocess_exec(
            "git", "http-backend", env=env, stdin=body, stdout=asyncio.subprocess.PIPE,
            stderr=errors, start_new_session=True, preexec_fn=die_with_parent)
    assert proc.stdout is not None
    stdout = proc.stdout
    head = b""
    while b"\r\n\r\n" not in head and b"\n\n" not in head:
        chunk = await stdout.read(65536)
        if not chunk:
            break
        head += chunk
    sep = b"\r\n\r\n" if b"\r\n\r\n" in head else b"\n\n"
    raw_headers, _, rest = head.partition(sep)
    status, headers = parse_cgi_headers(raw_headers)

    async def stream() -> AsyncIterator[bytes]:
        try:
            if rest:
                yield rest
            while chunk := await stdout.read(65536):
                yield chunk
        finally:
            if proc.returncode is None:
                await proc.wait()

    return CgiResponse(status=status, headers=headers, body=stream(), process=proc)
