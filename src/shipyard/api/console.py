"""`shipyard run` attached to a terminal: one WebSocket between the CLI and a process on a pty.

Frames, client → server: binary = keystrokes, text = {"resize": [columns, rows]}.
Server → client: text {"started": "run.N"} or {"error": …, "hint": …} first; then binary = terminal
output; last, text {"exit": code}. A client that goes away stops the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from urllib.parse import urlsplit

from fastapi import WebSocket, WebSocketDisconnect

from shipyard.api.auth import check_token
from shipyard.control.platform import Platform
from shipyard.errors import ShipyardError, Unauthorized
from shipyard.runtime.console import Console
from shipyard.store.names import validate_command

DRAIN_TIMEOUT = 1.0  # output still buffered when the process exits (a daemon it left may hold the pty)
POLICY_VIOLATION = 1008  # WebSocket close code for a refused origin or token (RFC 6455 7.4.1)


def _origin(url: str) -> tuple[str, str, int | None] | None:
    parts = urlsplit(url.strip())
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


def check_origin(origin: str | None, own_url: str) -> None:
    """Browsers send `Origin` with every WebSocket handshake and let any page open one to any host, with
    the user's cookies and cached credentials: only a page of the API's own origin may. Programs (the
    CLI's client) send none."""
    if origin is None:
        return
    if _origin(origin) is None or _origin(origin) != _origin(own_url):
        raise Unauthorized(f"Consoles are not opened for web pages of other origins ({origin[:100]!r}).",
                           hint=f"Use `shipyard run` or a client that sends no Origin header or {own_url}.")


async def serve_console(websocket: WebSocket, platform: Platform, token: str, name: str, command: str,
                        columns: int, rows: int, term: str, *, origin: str) -> None:
    # Checked before anything else: a refused client only ever gets the error.
    try:
        check_origin(websocket.headers.get("origin"), origin)
        check_token(websocket.headers.get("authorization"), token)
    except ShipyardError as exc:
        await _refuse(websocket, exc, POLICY_VIOLATION)
        return
    await websocket.accept()
    try:
        validate_command(command)
        console = await platform.console(name, command, columns, rows, term)
    except ShipyardError as exc:
        await websocket.send_text(json.dumps({"error": exc.message, "hint": exc.hint}))
        await websocket.close()
        return
    await websocket.send_text(json.dumps({"started": console.name}))
    output = asyncio.create_task(_send_output(websocket, console))
    keystrokes = asyncio.create_task(_receive_keystrokes(websocket, console))
    exited = asyncio.create_task(console.wait())
    try:
        await asyncio.wait({keystrokes, exited}, return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(output), DRAIN_TIMEOUT)
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await websocket.send_text(json.dumps({"exit": exited.result()}))
                await websocket.close()
    finally:
        for task in (output, keystrokes, exited):
            task.cancel()
        await console.close()  # stops the process if the user went away first
        platform.console_ended(name, console, await console.wait())


async def _refuse(websocket: WebSocket, exc: ShipyardError, code: int) -> None:
    """The error as the first (and only) frame, as every other console error, then a close with `code`."""
    await websocket.accept()
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await websocket.send_text(json.dumps({"error": exc.message, "hint": exc.hint}))
        await websocket.close(code=code, reason="refused")


async def _send_output(websocket: WebSocket, console: Console) -> None:
    while data := await console.read():
        await websocket.send_bytes(data)


async def _receive_keystrokes(websocket: WebSocket, console: Console) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes"):
            await console.write(message["bytes"])
        elif message.get("text"):
            with contextlib.suppress(ValueError, KeyError, TypeError):
                columns, rows = json.loads(message["text"])["resize"]
                console.resize(int(columns), int(rows))
