"""One supervised process: start → ready (listening on $PORT) → up; crash → backoff → restart; stop."""

from __future__ import annotations

import asyncio
import collections
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path

from shipyard.errors import DeployError, ServerErrorAtStart, ShipyardError
from shipyard.proc import free_port, signal_group
from shipyard.runtime import freezing
from shipyard.runtime.cgroups import Cgroup
from shipyard.runtime.child import Child
from shipyard.runtime.confinement import Confinement
from shipyard.runtime.diagnose import boot_hint, listen_hint, telling_error
from shipyard.runtime.logs import AppLog
from shipyard.runtime.probe import command_tree, http_probe, is_listening
from shipyard.runtime.readiness import (LivenessRules, Observation, Probe, Readiness, ReadinessRules, Verdict,
                                        disallowed_host_hint, gunicorn_workers)
from shipyard.runtime.shell import Spawned, pump_output, spawn
from shipyard.runtime.sockets import listening_addresses
from shipyard.runtime.spec import InstanceSpec, next_backoff

LOG_TAIL_LINES = 20  # shown with a failure
LOG_KEPT_LINES = 200  # searched for the cause (a gunicorn master's shutdown prints ~40 lines after it)
# A process that stayed up this long is healthy again: its next crash restarts without delay.
STABLE_AFTER = 60.0
WORKER_SETTLE = 1.0
OOM_POLL = 1.0  # how often a running instance's OOM-kill counter is read
SOCKET_SCAN = 0.5  # between scans of the sockets a not-yet-listening instance has open elsewhere
# A booting instance runs without its size's CPU quota (as Cloud Run's startup CPU boost does) until it is
# ready, for this long at most: a flask app's two gunicorn workers import in parallel instead of taking turns
# on one CPU. Its weight stays the size's, so a busy machine is still shared fairly.
BOOST_LIMIT = 10.0


class Instance:
    def __init__(self, spec: InstanceSpec, log: AppLog, scratch_root: Path,
                 on_change: Callable[[], None], confinement: Confinement,
                 readiness: ReadinessRules | None = None, liveness: LivenessRules | None = None) -> None:
        self.spec = spec
        self._confinement = confinement
        self._readiness = readiness or ReadinessRules()
        self._liveness = liveness or LivenessRules()
        self.port = spec.port or free_port()
        self.state = "starting"
        self.since = time.time()  # when it entered its state (`shipyard ps`: "up for 3m")
        self.exit_code: int | None = None
        self.restarts = 0
        self.last_failure = ""  # why it last crashed or was restarted (`shipyard ps`)
        # Restarting right after a crash (no backoff): the edge holds requests for it until it listens.
        self.holding = False
        self.frozen = False  # idle, its processes stopped by the cgroup freezer (see freezing.py)
        self._log = log
        self._scratch = scratch_root / f"{spec.app}-{spec.name}-v{spec.release}-{self.port}"
        self._on_change = on_change
        self._proc: Child | None = None
        self._spawned: Spawned | None = None
        self._boosted = False
        self._started = 0.0
        self._oom_baseline = 0
        self._pump: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._recent: collections.deque[str] = collections.deque(maxlen=LOG_KEPT_LINES)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def cgroup(self) -> Cgroup | None:
        """The cgroup of its current process (a new one at each restart); None without cgroups."""
        return self._spawned.cgroup if self._spawned else None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def routable(self) -> bool:
        return self.state == "up" and self.spec.process_type == "web" and not self.frozen

    async def freeze(self) -> bool:
        """Stop its processes (idle: no CPU, memory kept); False without a cgroup freezer."""
        cgroup = self.cgroup
        if self.frozen:
            return True
        if self.state != "up" or cgroup is None:
            return cgroup is not None
        self.frozen = True  # first: the liveness probe must not count a frozen instance as hung
        if not await freezing.freeze(cgroup):
            self.frozen = False
            return False
        self._on_change()
        return True

    async def thaw(self, with_parents: bool = False) -> None:
        cgroup = self.cgroup
        if self.frozen and cgroup is not None:
            await freezing.thaw(cgroup, with_parents)
        self.frozen = False
        self._on_change()

    async def until_ready(self) -> None:
        """The health gate (see readiness.py); a process that is not web must stay alive for a moment."""
        await self._wait_ready()
        self._set_state("up")
        self._watch = asyncio.create_task(self._supervise())

    async def spawn(self) -> None:
        # Not DYNO: apps read it as "running on Heroku" and turn on HTTPS redirects (SECURE_SSL_REDIRECT,
        # SSLify) that loop on a plain-HTTP edge; SHIPYARD_PROCESS names the process (web.1) and nothing more.
        env = {**self.spec.env, "PORT": str(self.port), "SHIPYARD_PROCESS": self.spec.name}
        if "--bind" not in env.get("GUNICORN_CMD_ARGS", "") and "-b" not in env.get("GUNICORN_CMD_ARGS", "").split():
            # gunicorn ranks these over its config file (and under its command line): a `bind = "0.0.0.0:8080"`
            # in gunicorn.conf.py, as DigitalOcean's samples have, then still listens on $PORT.
            env["GUNICORN_CMD_ARGS"] = f"--bind=0.0.0.0:{self.port} {env.get('GUNICORN_CMD_ARGS', '')}".strip()
        if not self._confinement.sandboxed:  # no private /tmp and writable layer: a scratch folder instead
            self._scratch.mkdir(parents=True, exist_ok=True)
            env |= {"HOME": str(self._scratch), "TMPDIR": str(self._scratch)}
        self._recent.clear()
        self._spawned = await spawn(self.spec, env, self._confinement, cpu_boost=True)
        self._boosted = self._spawned.cgroup is not None
        self._proc = self._spawned.proc
        self._started = time.monotonic()
        self._oom_baseline = self._spawned.cgroup.oom_kills() if self._spawned.cgroup else 0
        self.exit_code = None
        self._platform_log(f"Starting process with command `{self.spec.command}` (pid {self._proc.pid}, port {self.port})")
        self._pump = asyncio.create_task(pump_output(self._proc, self._log, f"app[{self.spec.name}]", self._recent))

    async def _wait_ready(self) -> None:
        try:
            await self._health_gate()
        finally:
            self._end_boost()

    def _end_boost(self) -> None:
        if self._boosted and self._spawned is not None and self._spawned.cgroup is not None:
            self._spawned.cgroup.limit_cpu(self.spec.size.cpus)
        self._boosted = False

    async def _health_gate(self) -> None:
        assert self._proc is not None
        if self.spec.process_type != "web":
            await self._wait_alive()
            return
        readiness = Readiness(self._readiness)
        deadline = self._started + self.spec.boot_timeout
        verdict = Verdict("waiting")
        last_scan, elsewhere, listened = 0.0, (), False
        while time.monotonic() < deadline:
            if time.monotonic() - self._started > BOOST_LIMIT:
                self._end_boost()
            if self._proc.returncode is not None:
                await self._exited_while_starting(listened)
            on_port = await is_listening(self.port)
            listened = listened or on_port
            probe = await self._probe(self._readiness.probe_timeout) if on_port else None
            if not on_port and time.monotonic() - last_scan >= SOCKET_SCAN:
                last_scan = time.monotonic()
                elsewhere = tuple(await asyncio.to_thread(listening_addresses, self._proc.pid))
            workers = None
            # Workers still alive after the settle period; with none, the healthy answer came from a worker.
            if probe is not None and probe.healthy and self._readiness.settle > 0:
                workers = gunicorn_workers(await asyncio.to_thread(command_tree, self._proc.pid))
            verdict = readiness.observe(Observation(time.monotonic() - self._started, on_port,
                                                    () if on_port else elsewhere, probe, workers))
            if verdict.state == "ready":
                self._platform_log("State changed from starting to up")
                return
            if verdict.state == "failed":
                break
            await asyncio.sleep(self._readiness.pause(time.monotonic() - self._started))
        if self._proc.returncode is not None:
            await self._exited_while_starting(listened)
        listening = listening_addresses(self._proc.pid)
        await self._proc.stop(grace=2)
        await self._drain_pump()
        self.exit_code = self._proc.returncode
        raise self._not_ready(verdict, listening)

    async def _exited_while_starting(self, listened: bool) -> None:
        assert self._proc is not None
        await self._drain_pump()
        self.exit_code = self._proc.returncode
        if self._out_of_memory():
            raise DeployError(
                f"{self.spec.name} ran out of memory while starting: it exceeded its limit of "
                f"{self.spec.size.memory_mb} MB ({self.spec.size.name}) and was killed.\n" + self._tail_text(),
                hint=f"Give it a bigger size (`shipyard apps set {self.spec.app} --size medium`), or "
                     "lower WEB_CONCURRENCY (each gunicorn worker loads the app).")
        when = ("after opening $PORT, before it answered HTTP (e.g. gunicorn's workers failed to import the app)"
                if listened else "before listening on $PORT")
        raise DeployError(f"{self.spec.name} exited with code {self.exit_code} {when}.\n" + self._tail_text(),
                          hint=boot_hint(list(self._recent)))

    def _not_ready(self, verdict: Verdict, listening: list[tuple[str, int]]) -> DeployError:
        """The cause-specific error for a web instance that did not become ready."""
        name, path, tail = self.spec.name, self.spec.health_path or "/", self._tail_text()
        if verdict.cause == "host refused":
            env = self.spec.env
            return DeployError(f"{name} answered 400 Bad Request for its hostname {self.spec.host_header}.\n{tail}",
                               hint=disallowed_host_hint(self.spec.app, self.spec.host_header,
                                                         env.get("EXTERNAL_URL", f"http://{self.spec.host_header}")))
        if verdict.cause == "server error":
            return ServerErrorAtStart(
                f"{name} answered {verdict.last_status} to GET {path} for {self._readiness.server_error_limit:g} s "
                f"(a server error: the app is broken, not starting).\n{tail}",
                hint=f"{boot_hint(list(self._recent))} If {path} is meant to fail, give the app a page that "
                     f"answers below 500: `shipyard apps set {self.spec.app} --health-path /health`.")
        if verdict.cause == "no answer":
            return DeployError(
                f"{name} listens on $PORT ({self.port}) but did not answer GET {path} for "
                f"{self._readiness.no_answer_limit:g} s: it hangs (a request that never returns, a deadlock, or "
                f"workers still importing).\n{tail}",
                hint="Check what the app does at import and in its first request; a slow start can have more "
                     f"time with `shipyard apps set {self.spec.app} --health-path /path` on a light page.")
        wrong_port = verdict.cause == "wrong port"
        waited = f"within {self.spec.boot_timeout:g} s" if not wrong_port else \
            f"(it has listened elsewhere for {self._readiness.elsewhere_limit:g} s)"
        if verdict.last_status is not None and verdict.last_status >= 500:
            return DeployError(f"{name}'s health check {path} answered {verdict.last_status} until the "
                               f"{self.spec.boot_timeout:g} s deadline.\n{tail}",
                               hint="The page must answer with a status below 500; the app's errors are above. "
                                    f"Change the path with `shipyard apps set {self.spec.app} --health-path /path`.")
        return DeployError(f"{name} did not listen on $PORT ({self.port}) {waited}.\n{tail}",
                           hint=listen_hint(self.port, listening) or boot_hint(list(self._recent)))

    async def _probe(self, timeout: float) -> Probe:
        return await http_probe(self.port, self.spec.health_path or "/", self.spec.host_header or "localhost",
                                timeout, list(self._recent))

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
        """Crash → restart: at once the first time (the edge holds requests meanwhile), with backoff on repeats."""
        backoff = 0.0
        while True:
            assert self._proc is not None
            started = time.monotonic()
            reason = await self._until_failure()
            signal_group(self._proc.pid, signal.SIGKILL)  # what the crashed process forked dies with it
            await self._drain_pump()
            await self._cleanup()
            self.last_failure = reason
            self._platform_log(f"Process {reason}")
            backoff = 0.0 if self.restarts == 0 or time.monotonic() - started > STABLE_AFTER else next_backoff(backoff)
            while not await self._restart(backoff):
                backoff = next_backoff(backoff)
            self._set_state("up")

    async def _restart(self, backoff: float) -> bool:
        """One restart after `backoff` seconds; False if the new process did not become ready."""
        self.holding = backoff == 0
        self._set_state("crashed")
        try:
            if backoff:
                self._platform_log(f"Restarting in {backoff:g} s (it failed again within {STABLE_AFTER:g} s)")
                await asyncio.sleep(backoff)
            self.restarts += 1
            self._set_state("starting")
            await self.spawn()
            await self._wait_ready()
            return True
        except ShipyardError as exc:  # also a failed spawn (e.g. a full disk): retried with backoff
            self.last_failure = exc.message.splitlines()[0]
            self._platform_log(self.last_failure)
            await self._cleanup()
            return False
        finally:
            self.holding = False

    async def _until_failure(self) -> str:
        """Watch a running instance until it exits, exceeds its memory or stops answering; returns why.

        An OOM kill (often one gunicorn worker, which the master would quietly replace) kills the whole
        instance, so it restarts clean and says why.
        """
        assert self._proc is not None
        failures, next_probe = 0, time.monotonic() + self._liveness.interval
        out_of_memory = unanswered = False
        while True:
            try:
                code = await asyncio.wait_for(asyncio.shield(self._proc.wait()), timeout=OOM_POLL)
            except asyncio.TimeoutError:
                pass
            else:
                if out_of_memory or self._out_of_memory():
                    return (f"exceeded its memory limit ({self.spec.size.memory_mb} MB) and was restarted "
                            f"(status {code})")
                if unanswered:
                    return (f"did not answer {failures} health checks in a row ({self._liveness.timeout:g} s each) "
                            "and was restarted")
                self.exit_code = code
                return f"exited with status {code}"
            if self._out_of_memory():
                out_of_memory = True
                await self._kill()
            elif self.frozen:
                next_probe = time.monotonic() + self._liveness.interval  # nothing runs: nothing to probe
            elif self.spec.process_type == "web" and time.monotonic() >= next_probe and not unanswered:
                next_probe = time.monotonic() + self._liveness.interval
                probe = await self._probe(self._liveness.timeout)
                failures = 0 if probe.answered else failures + 1
                if failures:
                    self._platform_log(f"Health check {failures} of {self._liveness.failures} failed: {probe.error}")
                if failures >= self._liveness.failures:
                    unanswered = True
                    await self._kill()

    async def _kill(self) -> None:
        assert self._proc is not None
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
        if self.state == "stopped":  # a failed start is stopped by the supervisor and the rollout alike
            return
        if self.frozen:
            # A frozen process cannot act on SIGTERM: it would only die at the grace's end. Its parents (stopped
            # by the thaw, workers first) run again before the SIGTERM, not at some point during the stop.
            await self.thaw(with_parents=True)
        self._set_state("stopping")
        if self._watch:
            self._watch.cancel()
        if self._proc:
            code = await self._proc.stop(grace)
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
        tail = list(self._recent)[-LOG_TAIL_LINES:]
        text = f"Its last {len(tail)} log lines:\n" + "\n".join(f"  {line}" for line in tail)
        cause = telling_error(list(self._recent))
        if cause and not any(cause in line for line in tail):
            text = f"The error: {cause}\n{text}"
        return text
