"""One supervised process: start → ready (listening on $PORT) → up; crash → backoff → restart; stop."""

from __future__ import annotations

import asyncio
import collections
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from shipyard.errors import DeployError
from shipyard.proc import free_port, signal_group, stop_process
from shipyard.runtime.diagnose import boot_hint, listen_hint
from shipyard.runtime.logs import AppLog
from shipyard.runtime.confinement import Confinement
from shipyard.runtime.shell import Spawned, pump_output, spawn
from shipyard.runtime.sockets import listening_addresses
from shipyard.runtime.spec import InstanceSpec, next_backoff

LOG_TAIL_LINES = 20
# A process that stayed up this long is healthy again: its next crash restarts without delay.
STABLE_AFTER = 60.0
WORKER_SETTLE = 1.0
OOM_POLL = 1.0  # how often a running instance's OOM-kill counter is read


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


class Instance:
    def __init__(self, spec: InstanceSpec, log: AppLog, scratch_root: Path,
                 on_change: Callable[[], None], confinement: Confinement) -> None:
        self.spec = spec
        self._confinement = confinement
        self.port = spec.port or free_port()
        self.state = "starting"
        self.since = time.time()  # when it entered its state (`shipyard ps`: "up for 3m")
        self.exit_code: int | None = None
        self.restarts = 0
        self._log = log
        self._scratch = scratch_root / f"{spec.app}-{spec.name}-v{spec.release}-{self.port}"
        self._on_change = on_change
        self._proc: asyncio.subprocess.Process | None = None
        self._spawned: Spawned | None = None
        self._oom_baseline = 0
        self._pump: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._recent: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def routable(self) -> bool:
        return self.state == "up" and self.spec.process_type == "web"

    async def until_ready(self) -> None:
        """The health gate: listening on $PORT (and the health path < 500), or alive for a moment if not web."""
        await self._wait_ready()
        self._set_state("up")
        self._watch = asyncio.create_task(self._supervise())

    async def spawn(self) -> None:
        env = {**self.spec.env, "PORT": str(self.port), "DYNO": self.spec.name}
        if not self._confinement.sandboxed:  # no private /tmp and writable layer: a scratch folder instead
            self._scratch.mkdir(parents=True, exist_ok=True)
            env |= {"HOME": str(self._scratch), "TMPDIR": str(self._scratch)}
        self._recent.clear()
        self._spawned = await spawn(self.spec, env, self._confinement)
        self._proc = self._spawned.proc
        self._oom_baseline = self._spawned.cgroup.oom_kills() if self._spawned.cgroup else 0
        self.exit_code = None
        self._platform_log(f"Starting process with command `{self.spec.command}` (pid {self._proc.pid}, port {self.port})")
        self._pump = asyncio.create_task(pump_output(self._proc, self._log, f"app[{self.spec.name}]", self._recent))

    async def _wait_ready(self) -> None:
        assert self._proc is not None
        if self.spec.process_type != "web":
            await self._wait_alive()
            return
        deadline = time.monotonic() + self.spec.boot_timeout
        last_health: int | None = None
        while time.monotonic() < deadline:
            if self._proc.returncode is not None:
                await self._drain_pump()
                self.exit_code = self._proc.returncode
                if self._out_of_memory():
                    raise DeployError(
                        f"{self.spec.name} ran out of memory while starting: it exceeded its limit of "
                        f"{self.spec.size.memory_mb} MB ({self.spec.size.name}) and was killed.\n" + self._tail_text(),
                        hint=f"Give it a bigger size (`shipyard apps set {self.spec.app} --size medium`), or "
                             "lower WEB_CONCURRENCY (each gunicorn worker loads the app).")
                raise DeployError(
                    f"{self.spec.name} exited with code {self.exit_code} before listening on $PORT.\n"
                    + self._tail_text(), hint=boot_hint(list(self._recent)))
            if await is_listening(self.port):
                status = await self._health_status()
                if status is None or status < 500:
                    self._platform_log("State changed from starting to up")
                    return
                last_health = status
            await asyncio.sleep(0.05)
        listening = listening_addresses(self._proc.pid)
        await stop_process(self._proc, grace=2)
        await self._drain_pump()
        self.exit_code = self._proc.returncode
        if last_health is not None:
            raise DeployError(
                f"{self.spec.name}'s health check {self.spec.health_path} answered {last_health} until the "
                f"{self.spec.boot_timeout:g} s deadline.\n" + self._tail_text(),
                hint="The page must answer with a status below 500; the app's errors are above. "
                     "Change the path with `shipyard apps set <app> --health-path /path`.")
        raise DeployError(
            f"{self.spec.name} did not listen on $PORT ({self.port}) within {self.spec.boot_timeout:g} s.\n"
            + self._tail_text(), hint=listen_hint(self.port, listening) or boot_hint(list(self._recent)))

    async def _health_status(self) -> int | None:
        """The health path's HTTP status (None when the app has no health path)."""
        if not self.spec.health_path:
            return None
        try:
            async with httpx.AsyncClient(timeout=5) as client:
                response = await client.get(f"http://127.0.0.1:{self.port}{self.spec.health_path}",
                                            headers={"Host": self.spec.host_header or "localhost"})
            return response.status_code
        except httpx.HTTPError:
            return 599

    async def _wait_alive(self, seconds: float = WORKER_SETTLE) -> None:
        """A background process is ready once it has stayed up a moment: it listens on nothing."""
        assert self._proc is not None
        try:
            await asyncio.wait_for(asyncio.shield(self._proc.wait()), timeout=seconds)
        except asyncio.TimeoutError:
            self._platform_log("State changed from starting to up")
            return
        await self._drain_pump()
        self.exit_code = self._proc.returncode
        raise DeployError(f"{self.spec.name} exited with code {self.exit_code} right after starting.\n"
                          + self._tail_text(), hint="Fix the error above; background processes must keep running.")

    async def _supervise(self) -> None:
        backoff = 0.0
        while True:
            assert self._proc is not None
            started = time.monotonic()
            code = await self._wait_exit()
            out_of_memory = self._out_of_memory()  # read before its cgroup goes
            signal_group(self._proc.pid, signal.SIGKILL)  # what the crashed process forked dies with it
            await self._drain_pump()
            await self._cleanup()
            self.exit_code = code
            if out_of_memory:
                self._platform_log(f"Process exceeded its memory limit ({self.spec.size.memory_mb} MB) "
                                   "and was restarted")
            self._platform_log(f"Process exited with status {code}")
            self._set_state("crashed")
            backoff = 0.0 if time.monotonic() - started > STABLE_AFTER else next_backoff(backoff)
            self._platform_log(f"Restarting in {backoff:g} s")
            await asyncio.sleep(backoff)
            self.restarts += 1
            self._set_state("starting")
            await self.spawn()
            try:
                await self._wait_ready()
            except DeployError as exc:
                self._platform_log(exc.message.splitlines()[0])
                continue
            self._set_state("up")

    async def _wait_exit(self) -> int:
        """The exit code; an instance whose cgroup saw an OOM kill (often one gunicorn worker, which the
        master would quietly replace) is killed whole, so it restarts clean and says why."""
        assert self._proc is not None
        while True:
            try:
                return await asyncio.wait_for(asyncio.shield(self._proc.wait()), timeout=OOM_POLL)
            except asyncio.TimeoutError:
                if self._out_of_memory():
                    signal_group(self._proc.pid, signal.SIGKILL)
                    if self._spawned and self._spawned.cgroup:
                        await asyncio.to_thread(self._spawned.cgroup.kill)

    def _out_of_memory(self) -> bool:
        cgroup = self._spawned.cgroup if self._spawned else None
        return cgroup is not None and cgroup.oom_kills() > self._oom_baseline

    async def _cleanup(self) -> None:
        if self._spawned is not None:
            await self._spawned.cleanup()

    async def stop(self, grace: float) -> None:
        self._set_state("stopping")
        if self._watch:
            self._watch.cancel()
        if self._proc:
            code = await stop_process(self._proc, grace)
            await self._drain_pump()
            await self._cleanup()
            self._platform_log(f"Process exited with status {code}")
        self._set_state("stopped")
        shutil.rmtree(self._scratch, ignore_errors=True)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.since = time.time()
            self._on_change()

    async def _drain_pump(self) -> None:
        if self._pump:
            try:
                await asyncio.wait_for(self._pump, timeout=2)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._pump.cancel()

    def _platform_log(self, text: str) -> None:
        self._log.write(f"shipyard[{self.spec.name}]", text)

    def _tail_text(self) -> str:
        if not self._recent:
            return "(the process printed nothing)"
        return f"Its last {len(self._recent)} log lines:\n" + "\n".join(f"  {line}" for line in self._recent)
