"""A real `shipyard up` in a temporary data directory, driven the way a user drives it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from shipyard.proc import free_port

APPS = Path(__file__).resolve().parent.parent / "apps"
SHIPYARD = [sys.executable, "-m", "shipyard"]


def distinct_free_ports(count: int) -> list[int]:
    """Ports to listen on later: none free now may be picked twice, since none is bound until then."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except OSError:
        return False


def descendants(pid: int) -> set[int]:
    """Children of pid, recursively, through /proc (includes those in other sessions)."""
    found: set[int] = set()
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:  # it exited meanwhile
            continue
        for task in tasks:
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            for kid in kids:
                if kid not in found:
                    found.add(kid)
                    frontier.append(kid)
    return found


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


class Shipyard:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.home = root / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.api_port, self.edge_port, self.https_port = distinct_free_ports(3)
        self.proc: subprocess.Popen[str] | None = None
        self.seen_pids: set[int] = set()
        self.env = {**os.environ, "HOME": str(self.home), "GIT_CONFIG_NOSYSTEM": "1",
                    "GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "test@example.com",
                    "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "test@example.com",
                    "GIT_TERMINAL_PROMPT": "0", "NO_COLOR": "1", "COLUMNS": "200"}
        self.env.pop("SHIPYARD_API_URL", None)
        self.env.pop("SHIPYARD_TOKEN", None)
        self.env["SHIPYARD_DATA_DIR"] = str(self.data_dir)
        # Platforms running side by side (several tests start their own) need uid ranges of their own.
        # Below 2**31 (gunicorn < 24 masks gids to 31 bits: real repos pin those).
        self.env["SHIPYARD_UID_BASE"] = str(1_000_000 + (self.api_port % 10_000) * 200_000)

    # platform lifecycle

    def start(self, timeout: float = 30) -> None:
        offset = len(self.up_log())
        log = open(self.root / "shipyard-up.log", "a")
        self.proc = subprocess.Popen(
            [*SHIPYARD, "up", "--api-port", str(self.api_port), "--edge-port", str(self.edge_port),
             "--https-port", str(self.https_port)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"shipyard up exited: {self.up_log()}")
            if "Shipyard is up" in self.up_log()[offset:]:
                return
            time.sleep(0.1)
        raise RuntimeError(f"shipyard up did not start: {self.up_log()}")

    def up_log(self) -> str:
        path = self.root / "shipyard-up.log"
        return path.read_text() if path.exists() else ""

    def remember_children(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.seen_pids |= descendants(self.proc.pid)

    def stop(self, sig: int = signal.SIGINT) -> int:
        """Stop the platform by its pid; return its exit code; assert no child survived."""
        assert self.proc is not None
        self.remember_children()
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        survivors = [p for p in self.seen_pids if pid_alive(p)]
        for pid in survivors:
            os.kill(pid, signal.SIGKILL)
        assert not survivors, f"processes survived shipyard up: {survivors}"
        self.proc = None
        self.clean_host_state()
        return code

    def clean_host_state(self) -> None:
        """What a platform killed by a test (kill -9) leaves on the host: its nftables table and cgroups."""
        base = self.env["SHIPYARD_UID_BASE"]
        if shutil.which("nft"):
            subprocess.run(["nft", "delete", "table", "inet", f"shipyard_{base}"], capture_output=True)
        for depth in ("*", "*/*", "*/*/*"):
            for folder in sorted(Path("/sys/fs/cgroup").glob(f"{depth}/shipyard-{base}"), reverse=True):
                for leftover in [*folder.glob("*/"), folder]:
                    try:
                        leftover.rmdir()
                    except OSError:
                        pass

    def kill_all(self) -> None:
        if self.proc is not None:
            self.stop()

    # user actions

    def cli(self, *args: str, check: bool = True, timeout: float = 300) -> Result:
        done = subprocess.run([*SHIPYARD, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        result = Result(done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            raise AssertionError(f"shipyard {' '.join(args)} failed: {result.text}")
        self.remember_children()
        return result

    def git(self, workdir: Path, *args: str, check: bool = True, timeout: float = 400) -> Result:
        done = subprocess.run(["git", *args], cwd=workdir, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        result = Result(done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed: {result.text}")
        self.remember_children()
        return result

    def checkout(self, sample: str, app: str) -> Path:
        """A user's working copy of a sample app, with the app's remote added."""
        work = self.root / "work" / app
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(APPS / sample, work)
        self.git(work, "init", "-q", "-b", "main")
        self.git(work, "add", "-A")
        self.git(work, "commit", "-q", "-m", f"{sample}")
        self.git(work, "remote", "add", "shipyard", self.git_url(app))
        return work

    def commit(self, work: Path, message: str) -> None:
        self.git(work, "add", "-A")
        self.git(work, "commit", "-q", "-m", message)

    def push(self, work: Path, check: bool = True) -> Result:
        return self.git(work, "push", "shipyard", "main", check=check)

    def git_url(self, app: str) -> str:
        return f"http://127.0.0.1:{self.api_port}/git/{app}.git"

    @property
    def token(self) -> str:
        return (self.data_dir / "token").read_text().strip()

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return httpx.request(method, f"http://127.0.0.1:{self.api_port}{path}", headers=headers, timeout=60, **kwargs)

    def get(self, app: str, path: str = "/", **kwargs) -> httpx.Response:  # type: ignore[no-untyped-def]
        """A request through the edge, as a browser sends it to http://<app>.localhost:<edge-port>/."""
        headers = {"Host": f"{app}.localhost:{self.edge_port}", **kwargs.pop("headers", {})}
        return httpx.get(f"http://127.0.0.1:{self.edge_port}{path}", headers=headers,
                         timeout=kwargs.pop("timeout", 30), **kwargs)

    def get_json_post(self, app: str, path: str, body: dict) -> httpx.Response:
        headers = {"Host": f"{app}.localhost:{self.edge_port}"}
        return httpx.post(f"http://127.0.0.1:{self.edge_port}{path}", headers=headers, json=body, timeout=30)

    def app_info(self, app: str) -> dict:
        return self.api("GET", f"/apps/{app}").json()

    def wait_for(self, predicate, timeout: float = 30, interval: float = 0.2):  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = predicate()
            except httpx.TransportError:  # e.g. the edge reloading while the platform starts
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting")
            time.sleep(interval)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
