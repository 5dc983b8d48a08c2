"""A FastAPI app with a WebSocket, as chat and live-update apps have: GET / says which release answers,
/ws echoes each message with the release that holds the connection."""

import os

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()
RELEASE = os.environ.get("SHIPYARD_RELEASE", "?")


@app.get("/")
def index() -> dict[str, str]:
    return {"release": RELEASE}


@app.websocket("/ws")
async def echo(socket: WebSocket) -> None:
    await socket.accept()
    try:
        while True:
            await socket.send_text(f"{RELEASE}: {await socket.receive_text()}")
    except WebSocketDisconnect:
        pass
