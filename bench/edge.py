"""Edge throughput: wrk straight to an instance vs through Shipyard's edge, nginx, HAProxy and nginx + Lua.

Starts a real `shipyard up` in a temporary data directory, deploys tests/apps/flask-hello with git (gunicorn,
2 sync workers: `WEB_CONCURRENCY=2`; size `large` by default, whose CPU cap is the whole 2-core machine) and
creates `--other-apps` more apps, so every proxy routes among several hosts as a multi-app edge does. Then
each proxy is started from a temporary directory of its own, on a free loopback port, in front of that same
instance:

- direct:  wrk straight to the instance's port (gunicorn, as the platform runs it: sandboxed);
- edge:    Shipyard's edge, as the platform runs it (its own process and config; until issue 13, Caddy with
           `{file.*}` slot upstreams and a route per app), labelled with the program found running it;
- nginx:   plain nginx, a server block per app, upstream `keepalive 32`, HTTP/1.1 to the upstream;
- haproxy: HAProxy in http mode, `nbthread` = cores, the host map (`use_backend %[req.hdr(host),lower,map(…)]`)
           naming a backend per app (`balance leastconn`); the app's server and map entry are added at run time
           over the stats socket (`add server`, `enable server`, `add map`), as a reload-free edge would;
- nginx-lua: nginx with lua-nginx-module as ingress-nginx routes: the host's upstreams read from a
           `lua_shared_dict` (filled over a unix control socket, no reload) and picked in `balancer_by_lua`;
- nginx-1w, haproxy-1t: nginx and HAProxy as above with one worker process / one thread (`worker_processes
           auto` and `nbthread` = cores mean 2 here, on cores the app and wrk use too).

Rounds are interleaved (every target once per round, the order rotated each round) after a warm-up per
target; each ratio and p99 delta is against direct *in the same round*. Nothing is pinned: wrk, the proxy and
gunicorn share the machine's cores. Every process started here is stopped by its pid at the end, also on
Ctrl-C or an error.

Usage: python bench/edge.py [--rounds 3] [--duration 10] [--connections 16] [--markdown]
Needs (Debian): wrk, nginx-light (or nginx), haproxy, libnginx-mod-http-lua; and what `shipyard up` needs.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from tests.e2e.harness import Shipyard, descendants, free_port  # noqa: E402

APP = "zbench"  # sorts after the other apps: Caddy matches its routes in order, so this one is matched last
HOST = f"{APP}.localhost"
GOAL_RATIO = 0.85
GOAL_P99_DELTA_MS = 1.0
NGINX_MODULES = Path("/usr/lib/nginx/modules")
LUA_MODULES = (NGINX_MODULES / "ndk_http_module.so", NGINX_MODULES / "ngx_http_lua_module.so")
LABELS = {"direct": "direct (gunicorn)", "edge": "Shipyard edge", "nginx": "nginx",
          "haproxy": "HAProxy", "nginx-lua": "nginx + Lua",
          # The same configurations with one worker / one thread: on a machine this small the proxy shares its
          # cores with the app and the load generator, where more threads mostly add context switches.
          "nginx-1w": "nginx, 1 worker", "haproxy-1t": "HAProxy, nbthread 1"}
ALL_TARGETS = tuple(LABELS)
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------------------------- dependencies

def check_dependencies(targets: list[str]) -> None:
    """Exit with the packages to install when a program this run needs is missing."""
    missing: list[tuple[str, str]] = []  # (what, Debian package or fix)
    if not shutil.which("wrk"):
        missing.append(("wrk", "wrk"))
    if not shutil.which("git"):
        missing.append(("git", "git"))
    if any(t.startswith("nginx") for t in targets) and not nginx_binary():
        missing.append(("nginx", "nginx-light"))
    if any(t.startswith("haproxy") for t in targets) and not shutil.which("haproxy"):
        missing.append(("haproxy", "haproxy"))
    if "nginx-lua" in targets:
        for module in LUA_MODULES:
            if not module.exists():
                missing.append((str(module), "libnginx-mod-http-lua"))
    debian = sorted({package for _, package in missing})
    if missing:
        for what, package in missing:
            print(f"error: {what} is missing (Debian package `{package}`)", file=sys.stderr)
        print(f"Install them (as root): apt-get install -y --no-install-recommends {' '.join(debian)}",
              file=sys.stderr)
        if set(debian) - {"wrk", "git"}:
            print("or leave the proxies they serve out with --targets.", file=sys.stderr)
        sys.exit(2)


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (("/usr/sbin/nginx") if Path("/usr/sbin/nginx").exists() else None)


def version(*cmd: str) -> str:
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else "?"


def debian_version(package: str) -> str:
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package], check=False, capture_output=True,
                          text=True)
    return done.stdout.strip() if done.returncode == 0 else "?"


# ------------------------------------------------------------------------------------------------ processes

def own_cpu_seconds(pid: int) -> float:
    """User + system CPU time of this one process (all its threads, not its children)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_seconds(roots: set[int]) -> float:
    """User + system CPU time of these processes and their descendants now (all threads), from /proc.

    Reaped children count too (cutime, cstime), so a worker replaced during a run keeps its share: its time
    moves to its parent's counters.
    """
    total = 0
    for pid in {p for root in roots for p in with_descendants(root)}:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return total / CLOCK_TICKS


def machine_ticks() -> tuple[int, int]:
    """(idle, total) CPU ticks of the whole machine, from /proc/stat (idle includes iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return values[3] + values[4], sum(values[:8])


def with_descendants(pid: int) -> set[int]:
    return {pid, *descendants(pid)}


class Proxy:
    """One proxy process, started in its own temporary directory and stopped by its pid."""

    name = ""

    def __init__(self, workdir: Path, upstream_port: int, other_apps: list[str], threads: int = 0,
                 name: str = "") -> None:
        self.name = name or self.name
        self.threads = threads  # nginx's worker_processes, HAProxy's nbthread; 0 = one per core
        self.dir = workdir / self.name
        self.dir.mkdir(parents=True)
        os.chmod(self.dir, 0o755)  # nginx's workers run as nobody when started as root
        self.port = free_port()
        self.upstream = f"127.0.0.1:{upstream_port}"
        self.other_apps = other_apps
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "output.log"

    def command(self) -> list[str]:
        raise NotImplementedError

    def configure(self) -> None:  # after the process answers: routes changed at run time, if any
        pass

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.command(), cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not listen on {self.port}:\n{self.log.read_text()[-3000:]}")
                time.sleep(0.05)
        self.configure()
        response = httpx.get(f"http://127.0.0.1:{self.port}/", headers={"Host": HOST}, timeout=10)
        if response.status_code != 200 or "flask-hello" not in response.text:
            raise RuntimeError(f"{self.name} did not route {HOST} to the app: {response.status_code} "
                               f"{response.text[:200]!r}\n{self.log.read_text()[-3000:]}")

    def pids(self) -> set[int]:
        return {self.proc.pid} if self.proc and self.proc.poll() is None else set()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()  # by pid: nginx's master and HAProxy stop their workers/threads themselves
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# The same forwarded headers Caddy's reverse_proxy sets, so every proxy does the same work per request.
NGINX_PROXY = """
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;"""


def nginx_main(workdir: Path, modules: str = "", workers: int = 0) -> str:
    return f"""{modules}
worker_processes {workers or "auto"};
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 4096; }}
"""


def nginx_http_common(workdir: Path) -> str:
    return f"""
    access_log off;
    client_body_temp_path {workdir}/client_body;
    proxy_temp_path {workdir}/proxy;"""


class Nginx(Proxy):
    name = "nginx"

    def command(self) -> list[str]:
        conf = self.dir / "nginx.conf"
        servers = []
        for app, upstream in [(APP, self.upstream), *((a, "127.0.0.1:9") for a in self.other_apps)]:
            servers.append(f"""
    upstream app_{app} {{
        server {upstream};
        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        server_name {app}.localhost;
        location / {{
            proxy_pass http://app_{app};{NGINX_PROXY}
        }}
    }}""")
        conf.write_text(nginx_main(self.dir, workers=self.threads) + f"""
http {{{nginx_http_common(self.dir)}
    server {{
        listen 127.0.0.1:{self.port} default_server;
        return 404;
    }}{"".join(servers)}
}}
""")
        return [nginx_binary() or "nginx", "-p", str(self.dir), "-e", str(self.dir / "error.log"), "-c", str(conf)]


# Routes live in a shared dict (host → "addr,addr,…"), changed over the control socket; each worker parses a
# value once and round-robins over its addresses in the balancer phase, as ingress-nginx's balancer does.
LUA_HTTP = r"""
    lua_shared_dict routes 4m;
    init_worker_by_lua_block {
        peers_cache = {}
        next_peer = {}
    }
    upstream upstream_balancer {
        server 0.0.0.1;  # a placeholder: balancer_by_lua picks the peer
        balancer_by_lua_block {
            local balancer = require "ngx.balancer"
            local value = ngx.ctx.upstreams
            local peers = peers_cache[value]
            if not peers then
                peers = {}
                for host, port in value:gmatch("([^,:]+):(%d+)") do peers[#peers + 1] = {host, tonumber(port)} end
                peers_cache[value] = peers
                next_peer[value] = 0
            end
            local n = next_peer[value] % #peers + 1
            next_peer[value] = n
            local ok, err = balancer.set_current_peer(peers[n][1], peers[n][2])
            if not ok then
                ngx.log(ngx.ERR, "set_current_peer: ", err)
                return ngx.exit(502)
            end
        }
        keepalive 32;
    }
"""


class NginxLua(Proxy):
    name = "nginx-lua"

    @property
    def control(self) -> Path:
        return self.dir / "control.sock"

    def command(self) -> list[str]:
        conf = self.dir / "nginx.conf"
        modules = "".join(f"load_module {m};\n" for m in LUA_MODULES)
        conf.write_text(nginx_main(self.dir, modules, self.threads) + f"""
http {{{nginx_http_common(self.dir)}
{LUA_HTTP}
    server {{
        listen 127.0.0.1:{self.port} default_server;
        location / {{
            rewrite_by_lua_block {{
                local upstreams = ngx.shared.routes:get(ngx.var.host)
                if not upstreams then return ngx.exit(404) end
                ngx.ctx.upstreams = upstreams
            }}
            proxy_pass http://upstream_balancer;{NGINX_PROXY}
        }}
    }}
    server {{
        listen unix:{self.control};
        location = /routes {{
            content_by_lua_block {{
                ngx.req.read_body()
                local routes = ngx.shared.routes
                for host, upstreams in (ngx.req.get_body_data() or ""):gmatch("(%S+)%s+(%S+)") do
                    if upstreams == "-" then routes:delete(host) else routes:set(host, upstreams) end
                end
                ngx.say("ok")
            }}
        }}
    }}
}}
""")
        return [nginx_binary() or "nginx", "-p", str(self.dir), "-e", str(self.dir / "error.log"), "-c", str(conf)]

    def configure(self) -> None:
        body = "".join(f"{a}.localhost 127.0.0.1:9\n" for a in self.other_apps) + f"{HOST} {self.upstream}\n"
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(self.control)), timeout=10) as client:
            client.post("http://control/routes", content=body).raise_for_status()


class HAProxy(Proxy):
    name = "haproxy"

    @property
    def socket(self) -> Path:
        return self.dir / "admin.sock"

    def command(self) -> list[str]:
        conf, hosts = self.dir / "haproxy.cfg", self.dir / "hosts.map"
        hosts.write_text("".join(f"{a}.localhost app_{a}\n" for a in self.other_apps))  # APP's entry: at run time
        backends = "".join(f"""
backend app_{app}
    balance leastconn
""" for app in [APP, *self.other_apps])
        conf.write_text(f"""
global
    nbthread {self.threads or os.cpu_count() or 1}
    maxconn 4096
    stats socket {self.socket} mode 600 level admin
    pidfile {self.dir}/haproxy.pid

defaults
    mode http
    option http-keep-alive
    option forwardfor
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    timeout http-request 10s

frontend edge
    bind 127.0.0.1:{self.port}
    http-request set-header X-Forwarded-Proto http
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    use_backend %[req.hdr(host),lower,map({hosts})]
    default_backend not_found

backend not_found
    http-request return status 404 content-type text/plain string "No application is served at this address."
{backends}""")
        return ["haproxy", "-db", "-f", str(conf)]

    def admin(self, command: str) -> str:
        import socket
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(self.socket))
            s.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode()

    def configure(self) -> None:
        # What a reload-free edge does when an app gets its first instance: a server, enabled, then the route.
        for command in (f"add server app_{APP}/web1 {self.upstream}", f"enable server app_{APP}/web1",
                        f"add map {self.dir / 'hosts.map'} {HOST} app_{APP}"):
            answer = self.admin(command).strip()
            if answer and "New server registered" not in answer:
                raise RuntimeError(f"HAProxy's runtime API refused `{command}`: {answer}")


PROXIES: dict[str, tuple[type[Proxy], int]] = {  # target: (proxy, threads; 0 = one per core)
    "nginx": (Nginx, 0), "haproxy": (HAProxy, 0), "nginx-lua": (NginxLua, 0), "nginx-1w": (Nginx, 1),
    "haproxy-1t": (HAProxy, 1)}


def lua_loads(workdir: Path) -> str | None:
    """None if nginx loads lua-nginx-module with a balancer_by_lua config here, else why not."""
    probe = NginxLua(workdir / "probe", 9, [])
    command = probe.command()
    done = subprocess.run([*command, "-t"], check=False, capture_output=True, text=True)
    return None if done.returncode == 0 else (done.stdout + done.stderr).strip()


# ------------------------------------------------------------------------------------------------------ wrk

@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # socket errors + non-2xx/3xx responses
    proxy_cores: float = 0.0
    app_cores: float = 0.0
    wrk_cores: float = 0.0
    platform_cores: float = 0.0  # `shipyard up` itself (e.g. reading the edge's per-request log lines)
    idle: float = 0.0  # the machine's idle CPU share during the run
    left_open: int = 0  # connections to the instance still open after wrk ended (none carries a request)
    left_open_s: float = 0.0  # how long they stayed open


UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def to_ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()  # type: ignore[union-attr]
    return float(number) * UNITS[unit]


def parse_wrk(out: str) -> Run:
    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, out)
        if not match:
            raise RuntimeError(f"unexpected wrk output (no {pattern!r}):\n{out}")
        return match

    errors = 0
    if socket_errors := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(n) for n in socket_errors.groups())
    if bad := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(bad.group(1))
    return Run(rps=float(find(r"Requests/sec:\s+([\d.]+)").group(1)),
               p50_ms=to_ms(find(r"\n\s+50%\s+(\S+)").group(1)), p99_ms=to_ms(find(r"\n\s+99%\s+(\S+)").group(1)),
               requests=int(find(r"(\d+) requests in").group(1)), errors=errors)


def established_to(port: int) -> int:
    """TCP connections in state ESTABLISHED whose local port is `port` (the instance's side), from /proc."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, _, state = line.split()[1:4]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


def settle(run: Run, instance_port: int, limit: float = 60) -> None:
    """Wait until no connection to the instance is left open, so the next run finds both workers free.

    A gunicorn sync worker that accepted a connection on which no request comes blocks on it until the
    proxy closes it or gunicorn's worker timeout (30 s) kills the worker: the app meanwhile has one worker.
    """
    time.sleep(0.3)
    started = time.monotonic()
    run.left_open = established_to(instance_port)
    while established_to(instance_port) and time.monotonic() - started < limit:
        time.sleep(0.2)
    if run.left_open:
        run.left_open_s = time.monotonic() - started


def wrk(port: int, duration: float, connections: int, proxy_pids: set[int], app_pids: set[int],
        platform_pid: int = 0) -> Run:
    """One wrk run; the CPU used meanwhile by the processes under proxy_pids and app_pids (roots)."""
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{duration:g}s", "--latency", "-H", f"Host: {HOST}",
           f"http://127.0.0.1:{port}/"]
    proxy_before, app_before = cpu_seconds(proxy_pids), cpu_seconds(app_pids)
    platform_before = own_cpu_seconds(platform_pid) if platform_pid else 0.0
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    idle_before, total_before = machine_ticks()
    started = time.monotonic()
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=duration + 60)
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    idle_after, total_after = machine_ticks()
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    run = parse_wrk(done.stdout)
    run.proxy_cores = (cpu_seconds(proxy_pids) - proxy_before) / elapsed
    run.app_cores = (cpu_seconds(app_pids) - app_before) / elapsed
    if platform_pid:
        run.platform_cores = (own_cpu_seconds(platform_pid) - platform_before) / elapsed
    run.wrk_cores = (after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime) / elapsed
    run.idle = (idle_after - idle_before) / max(1, total_after - total_before)
    return run


# ------------------------------------------------------------------------------------------------- platform

def start_platform(shipyard: Shipyard, other_apps: list[str], size: str, workers: int) -> None:
    shipyard.start()
    for app in other_apps:  # apps with no release: a route each, as on a platform hosting several apps
        shipyard.api("POST", "/apps", json={"name": app}).raise_for_status()
    shipyard.cli("apps", "create", APP)
    shipyard.cli("apps", "set", APP, "--size", size)
    work = shipyard.checkout("flask-hello", APP)
    shipyard.push(work)
    shipyard.cli("config", "set", APP, f"WEB_CONCURRENCY={workers}")  # a new release, restarted with it
    shipyard.wait_for(lambda: shipyard.get(APP).status_code == 200 and len(serving(shipyard)) == 1
                      and serving(shipyard)[0]["release"] >= 2)


def serving(shipyard: Shipyard) -> list[dict]:
    return [i for i in shipyard.app_info(APP)["instances"] if i["state"] == "up" and i["routed"]]


def instance(shipyard: Shipyard) -> dict:
    web = serving(shipyard)
    if len(web) != 1:
        raise RuntimeError(f"expected one instance of {APP} up and routed, got {shipyard.app_info(APP)['instances']}")
    return web[0]


def gunicorn_processes(pid: int) -> dict[int, str]:
    """pid: command line of the gunicorn processes (master and workers) under the instance's pid."""
    found = {}
    for p in sorted(with_descendants(pid)):
        try:
            cmdline = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"gunicorn" in cmdline[0] or any(part.endswith(b"/gunicorn") for part in cmdline[:2]):
            found[p] = " ".join(part.decode(errors="replace") for part in cmdline if part)
    return found


EDGE_PROGRAMS = {"caddy": ("Caddy", "version"), "haproxy": ("HAProxy", "-v"), "nginx": ("nginx", "-v")}


def platform_edge(shipyard: Shipyard) -> tuple[str, str, set[int]]:
    """(name, version, pids) of the proxy `shipyard up` runs as its edge."""
    assert shipyard.proc is not None
    for pid in sorted(descendants(shipyard.proc.pid)):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if comm in EDGE_PROGRAMS:
            name, flag = EDGE_PROGRAMS[comm]
            return name, version(exe, flag), {pid}
    return "?", "?", set()


# --------------------------------------------------------------------------------------------------- report

def fmt_row(label: str, run: Run, direct: Run | None) -> str:
    ratio = f"{run.rps / direct.rps:5.2f}x" if direct else "     -"
    delta = f"{run.p99_ms - direct.p99_ms:+6.2f}" if direct else "     -"
    return (f"  {label:<22} {run.rps:8.0f} {ratio}  {run.p50_ms:6.2f} {run.p99_ms:7.2f} {delta}   "
            f"{run.proxy_cores:4.2f} {run.app_cores:4.2f} {run.wrk_cores:4.2f}     {run.platform_cores:4.2f}  "
            f"{run.idle:4.0%} {run.errors:6d}")


HEADER = (f"  {'target':<22} {'RPS':>8} {'ratio':>6}  {'p50 ms':>6} {'p99 ms':>7} {'Δp99':>6}   "
          f"proxy  app  wrk  platform  idle  errors   (CPU: cores used, the machine's idle share)")


@dataclass
class Summary:
    target: str
    rps: float
    ratios: list[float] = field(default_factory=list)
    p50: float = 0.0
    p99: float = 0.0
    deltas: list[float] = field(default_factory=list)
    proxy_cores: float = 0.0
    proxy_us: float = 0.0  # the proxy's CPU time per request
    errors: int = 0

    @property
    def meets(self) -> bool:
        return (statistics.median(self.ratios) >= GOAL_RATIO
                and statistics.median(self.deltas) <= GOAL_P99_DELTA_MS)


def summarize(rounds: list[dict[str, Run]], targets: list[str]) -> list[Summary]:
    out = []
    for target in targets:
        runs = [r[target] for r in rounds]
        s = Summary(target, rps=statistics.median(r.rps for r in runs), p50=statistics.median(r.p50_ms for r in runs),
                    p99=statistics.median(r.p99_ms for r in runs),
                    proxy_cores=statistics.median(r.proxy_cores for r in runs),
                    proxy_us=statistics.median(r.proxy_cores / r.rps * 1e6 for r in runs),
                    errors=sum(r.errors for r in runs))
        if target != "direct":
            s.ratios = [r[target].rps / r["direct"].rps for r in rounds]
            s.deltas = [r[target].p99_ms - r["direct"].p99_ms for r in rounds]
        out.append(s)
    return out


def print_summary(summaries: list[Summary], rounds: int, markdown: bool) -> None:
    def ratio(s: Summary) -> str:
        if not s.ratios:
            return "1"
        spread = f" ({min(s.ratios):.2f}–{max(s.ratios):.2f})" if len(s.ratios) > 1 else ""
        return f"{statistics.median(s.ratios):.2f}×{spread}"

    def delta(s: Summary) -> str:
        if not s.deltas:
            return "-"
        spread = f" ({min(s.deltas):+.2f}…{max(s.deltas):+.2f})" if len(s.deltas) > 1 else ""
        return f"{statistics.median(s.deltas):+.2f}{spread}"

    def cpu(s: Summary) -> str:
        return "-" if s.target == "direct" else f"{s.proxy_cores:.2f}, {s.proxy_us:.0f}"

    def goal(s: Summary) -> str:
        return "-" if s.target == "direct" else ("yes" if s.meets else "no")

    print(f"\nSummary: medians over {rounds} round(s); ratio and Δp99 per round against direct in the same round "
          f"(min–max in brackets); goal: ≥ {GOAL_RATIO}× and Δp99 ≤ {GOAL_P99_DELTA_MS:g} ms")
    if markdown:
        print("\n| target | RPS | ratio vs direct | p50 ms | p99 ms | Δp99 vs direct, ms | proxy CPU: cores, "
              "µs/request | errors | goal met |")
        print("|---|---|---|---|---|---|---|---|---|")
        for s in summaries:
            print(f"| {LABELS[s.target]} | {s.rps:.0f} | {ratio(s)} | {s.p50:.2f} | {s.p99:.2f} | {delta(s)} | "
                  f"{cpu(s)} | {s.errors} | {goal(s)} |")
        return
    print(f"  {'target':<22} {'RPS':>7}  {'ratio vs direct':<20} {'p50 ms':>6} {'p99 ms':>7}  "
          f"{'Δp99 ms':<22} proxy CPU (cores, µs/req)  errors  goal")
    for s in summaries:
        print(f"  {LABELS[s.target]:<22} {s.rps:7.0f}  {ratio(s):<20} {s.p50:6.2f} {s.p99:7.2f}  {delta(s):<22} "
              f"{cpu(s):<24}  {s.errors:6d}  {goal(s)}")


# ----------------------------------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", type=int, default=16, help="wrk -c (default 16; -t2 always)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of wrk per target before round 1")
    parser.add_argument("--targets", default=",".join(ALL_TARGETS),
                        help=f"comma-separated, from {','.join(ALL_TARGETS)} (direct is always measured)")
    parser.add_argument("--other-apps", type=int, default=20, help="apps routed besides the measured one")
    parser.add_argument("--size", default="large", help="the app's instance size (large: 2 CPUs, the whole "
                        "machine here; small, the default for apps, caps gunicorn at 1 CPU)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (WEB_CONCURRENCY)")
    parser.add_argument("--markdown", action="store_true", help="print the summary as a Markdown table")
    args = parser.parse_args()
    targets = ["direct", *[t for t in args.targets.split(",") if t and t != "direct"]]
    unknown = set(targets) - set(ALL_TARGETS)
    if unknown:
        parser.error(f"unknown targets: {', '.join(sorted(unknown))}")
    check_dependencies(targets)

    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1, 5, 15 min); "
          f"{os.cpu_count()} cores, nothing pinned: wrk, the proxy and gunicorn share them")
    print(f"wrk -t2 -c{args.connections} -d{args.duration:g}s --latency, Host: {HOST}; {args.rounds} interleaved "
          f"round(s), {args.warmup:g} s warm-up per target; {args.other_apps} other apps routed")

    other_apps = [f"app{n:02d}" for n in range(args.other_apps)]
    proxies: dict[str, Proxy] = {}
    with tempfile.TemporaryDirectory(prefix="shipyard-edge-bench-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        if "nginx-lua" in targets and (why := lua_loads(workdir)):
            print(f"nginx + Lua left out: nginx does not load lua-nginx-module here:\n  {why}")
            targets.remove("nginx-lua")
        shipyard = Shipyard(workdir / "platform")
        try:
            start_platform(shipyard, other_apps, args.size, args.workers)
            web = instance(shipyard)
            port, pid = web["port"], web["pid"]
            gunicorns = gunicorn_processes(pid)
            print(f"app: flask-hello on `shipyard up` (sandboxed instance, size {args.size}), 127.0.0.1:{port}, "
                  f"gunicorn master + {len(gunicorns) - 1} workers: {next(iter(gunicorns.values()), '?')}")
            app_pids = {pid}
            for name in targets:
                if name in PROXIES:
                    kind, threads = PROXIES[name]
                    proxies[name] = kind(workdir, port, other_apps, threads, name)
                    proxies[name].start()
            edge_name, edge_version, edge_pids = platform_edge(shipyard)
            LABELS["edge"] = f"Shipyard edge ({edge_name})"
            answer = httpx.get(f"http://127.0.0.1:{shipyard.edge_port}/", headers={"Host": HOST}, timeout=10)
            if answer.status_code != 200 or "flask-hello" not in answer.text:
                raise RuntimeError(f"the platform's edge answered {answer.status_code} {answer.text[:200]!r} "
                                   f"for Host: {HOST}")
            ports = {"direct": port, "edge": shipyard.edge_port, **{n: p.port for n, p in proxies.items()}}
            pids = {"direct": set(), "edge": edge_pids, **{n: p.pids() for n, p in proxies.items()}}

            print("versions:")
            print(f"  edge     {edge_name}: {edge_version}")
            if any(t.startswith("nginx") for t in targets):
                package = "nginx-light" if debian_version("nginx-light") != "?" else "nginx"
                print(f"  nginx    {version(nginx_binary() or 'nginx', '-v')} (Debian {package} "
                      f"{debian_version(package)})")
            if any(t.startswith("haproxy") for t in targets):
                print(f"  haproxy  {version('haproxy', '-v')}")
            if "nginx-lua" in targets:
                print(f"  lua      libnginx-mod-http-lua {debian_version('libnginx-mod-http-lua')}")
            print(f"  wrk      {version('wrk', '-v')}")

            for name in targets:  # warm-up: connections, workers, caches
                settle(wrk(ports[name], args.warmup, args.connections, set(), set()), port)

            results: list[dict[str, Run]] = []
            for n in range(args.rounds):
                order = targets[n % len(targets):] + targets[:n % len(targets)]
                round_runs: dict[str, Run] = {}
                for name in order:
                    round_runs[name] = wrk(ports[name], args.duration, args.connections, pids[name], app_pids,
                                           shipyard.proc.pid if shipyard.proc else 0)
                    settle(round_runs[name], port)
                results.append(round_runs)
                print(f"\nround {n + 1} (order: {', '.join(order)}; load average {os.getloadavg()[0]:.2f})")
                print(HEADER)
                for name in targets:
                    direct = round_runs["direct"] if name != "direct" else None
                    print(fmt_row(LABELS[name], round_runs[name], direct))
                for name in order:
                    if (run := round_runs[name]).left_open:
                        print(f"  note: after {LABELS[name]}'s run, {run.left_open} connection(s) to gunicorn stayed "
                              f"open with no request for {run.left_open_s:.1f} s (the next run waited)")
            after = instance(shipyard)
            if set(gunicorn_processes(pid)) != set(gunicorns):
                print(f"note: gunicorn's processes changed during the run ({sorted(gunicorns)} → "
                      f"{sorted(gunicorn_processes(pid))}); the app's last log lines:")
                print(*shipyard.cli("logs", APP, check=False).text.strip().splitlines()[-15:], sep="\n")
            if after["port"] != port or after["restarts"]:
                print(f"warning: the instance changed during the run: {after}")
        finally:
            for proxy in proxies.values():
                proxy.stop()
            shipyard.kill_all()
    print_summary(summarize(results, targets), args.rounds, args.markdown)
    if "edge" in targets:
        platform = [r["edge"].platform_cores for r in results]
        per_request = [r["edge"].platform_cores / r["edge"].rps * 1e6 for r in results]
        others = [r[t].platform_cores for r in results for t in targets if t != "edge"]
        print(f"`shipyard up` itself used {statistics.median(platform):.2f} cores "
              f"({statistics.median(per_request):.0f} µs/request) during the edge's runs, "
              f"{statistics.median(others):.2f} during the others' (not in the proxy CPU column)")
    for name in targets:
        left = [r[name] for r in results if r[name].left_open]
        if left:
            print(f"{LABELS[name]} left connections to gunicorn open with no request after {len(left)} of "
                  f"{len(results)} runs ({', '.join(f'{r.left_open} for {r.left_open_s:.0f} s' for r in left)}): "
                  f"a sync worker blocks on such a connection until it closes (gunicorn kills it after 30 s)")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
