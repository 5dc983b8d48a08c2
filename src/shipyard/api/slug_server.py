"""Slugs for the Kubernetes backend's pods, on a TLS listener of their own.

A pod's init container fetches `GET /slugs/<app>/v<version>.tar.gz` with the release's bearer token
(runtime/kubernetes/slug_tokens.py) and checks the certificate against the platform's CA. The listener is
apart from the API's: it serves only these archives, to clients that hold no API token, and may face the
cluster's network where the API does not.

The path is checked before the token, the token before the archive is looked up: a caller without a token
learns nothing about which apps or releases exist. `locate` runs in a worker thread, so it may pack an
archive on first use (slug_archive.archive_for) without holding up the event loop.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route

from shipyard.errors import PlatformError, ShipyardError
from shipyard.runtime.kubernetes.slug_tokens import token_matches

APP = re.compile(r"[a-z][a-z0-9-]{0,62}")
ARCHIVE = re.compile(r"v([1-9][0-9]{0,9})\.tar\.gz")  # a positive version, bounded

Locate = Callable[[str, int], Path | None]


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: in `shipyard up` the process's signals are the platform's, and
    a second server would otherwise swap them and raise them again when it stops."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _plain(status: int, text: str, **headers: str) -> Response:
    return PlainTextResponse(text + "\n", status_code=status, headers=headers or None)


class SlugServer:
    def __init__(self, host: str, port: int, cert_file: Path, key_file: Path, secret: bytes,
                 locate: Locate) -> None:
        self.host, self.port = host, port  # port 0: any free one, known once started
        self.cert_file, self.key_file = cert_file, key_file
        self.secret, self.locate = secret, locate
        self._server: _Server | None = None
        self._serving: asyncio.Task[None] | None = None

    def app(self) -> Starlette:
        app = Starlette(routes=[Route("/slugs/{app}/{archive}", self._slug, methods=["GET"])])  # HEAD comes with GET
        app.router.redirect_slashes = False  # `…tar.gz/` is not found, not redirected
        return app

    async def _slug(self, request: Request) -> Response:
        app, found = request.path_params["app"], ARCHIVE.fullmatch(request.path_params["archive"])
        if not APP.fullmatch(app) or not found:
            return _plain(404, "Not Found")
        version = int(found[1])
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _plain(401, "A bearer token is needed.", **{"WWW-Authenticate": "Bearer"})
        if not token_matches(self.secret, app, version, token.strip()):
            return _plain(403, "This token is not for this slug.")
        try:
            path = await run_in_threadpool(self.locate, app, version)
        except ShipyardError as exc:  # the slug could not be packed: said to the pod, whose log shows it
            return _plain(500, exc.message)
        if path is None or not path.is_file():
            return _plain(404, "Not Found")
        return FileResponse(path, media_type="application/gzip", headers={"Cache-Control": "no-store"})

    async def start(self) -> None:
        """Listen, and return once connections are accepted."""
        config = uvicorn.Config(self.app(), host=self.host, port=self.port, ssl_certfile=str(self.cert_file),
                                ssl_keyfile=str(self.key_file), log_level="warning", lifespan="off",
                                access_log=False, server_header=False, proxy_headers=False,
                                timeout_graceful_shutdown=5)
        try:
            config.load()  # a missing or broken certificate fails here, not inside the server's task
        except (OSError, ValueError) as exc:
            raise PlatformError(f"The slug server's certificate could not be loaded: {exc}",
                                hint=f"Check {self.cert_file} and {self.key_file}.") from exc
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        try:
            # Bound here rather than by uvicorn, which exits the process when it cannot bind.
            sock = socket.create_server((self.host, self.port), family=family, backlog=config.backlog)
        except OSError as exc:
            raise PlatformError(f"The slug server could not listen on {self.host}:{self.port}: {exc.strerror}.",
                                hint="Is the port in use? Pick another.") from exc
        self.port = sock.getsockname()[1]
        server = _Server(config)
        serving = asyncio.create_task(self._serve(server, sock))
        while not server.started:
            if serving.done():
                sock.close()
                serving.result()
                raise PlatformError(f"The slug server stopped as it started, on {self.host}:{self.port}.")
            await asyncio.sleep(0.02)
        self._server, self._serving = server, serving

    @staticmethod
    async def _serve(server: _Server, sock: socket.socket) -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit as exc:  # uvicorn's way of failing at startup; never the platform's exit
            raise PlatformError("The slug server could not start (see the log above).") from exc

    async def stop(self) -> None:
        """Stop listening and let downloads in flight finish (at most uvicorn's graceful timeout)."""
        server, serving = self._server, self._serving
        self._server = self._serving = None
        if server is None or serving is None:
            return
        server.should_exit = True
        await serving
