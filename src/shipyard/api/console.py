"""`shipyard run` attached to a terminal: one WebSocket between the CLI and a process on a pty.

Frames, client → server: binary = keystrokes, text = {"resize": [columns, rows]}.
Server → client: text {"started": "run.N"} or {"error": …, "hint": …} first; then binary = terminal
output; last, text {"exit": code}. A client that goes away stops the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json

from fastapi import WebSocket, WebSocketDisconnect

from shipyard.api.auth import check_token
from shipyard.api.platform import Platform
from shipyard.errors import ShipyardError
from shipyard.runtime.console import Console

DRAIN_TIMEOUT = 1.0  # output still buffered when the process exits (a daemon it left may hold the pty)


async def serve_console(websocket: WebSocket, platform: Platform, token: str, name: str, command: str,
                        columns: int, rows: int, term: str) -> None:
    await websocket.accept()
    try:
        check_token(websocket.headers.get("authorization"), token)
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
