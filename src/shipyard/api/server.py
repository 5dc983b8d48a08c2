"""The control-plane HTTP API (FastAPI) with git smart HTTP on the same server."""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi import Depends, FastAPI, Request, Response, WebSocket
from prometheus_client import CONTENT_TYPE_LATEST
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse

from shipyard import __version__
from shipyard.api.auth import check_token
from shipyard.api.domains import domains_router
from shipyard.api.console import serve_console
from shipyard.api.dashboard.mount import dashboard_error, is_dashboard, mount_dashboard
from shipyard.api.dashboard.site import Dashboard
from shipyard.api.operations import Operations, quiet
from shipyard.api.scaling import autoscale_out, scaling_out, scaling_router
from shipyard.control.databases import Databases
from shipyard.control.releases import formation_of
from shipyard.control.platform import Platform
from shipyard.api.schemas import (AddonCreate, AppCreate, AppOut, AppUpdate, BackupOut, ConfigOut, ConfigUpdate,
                                  DeployRequest, InstanceOut, LayerOut, ReleaseOut, RestoreRequest, RollbackRequest,
                                  RunRequest)
from shipyard.runtime.disk import disk_space, low_disk_warning
from shipyard.errors import InvalidInput, NotFound, ShipyardError, Unauthorized
from shipyard.git.http_backend import CgiResponse, cgi_env, run_http_backend, spool_body
from shipyard.git.push_queue import PushQueue, pkt_line, progress_message, push_capabilities
from shipyard.runtime.instance import Instance
from shipyard.runtime.kubernetes.status import InstanceState
from shipyard.runtime.logs import follow as follow_log
from shipyard.store import records
from shipyard.store.names import validate_command


def mask_secrets(config: dict[str, str]) -> dict[str, str]:
    """Passwords stay out of terminals and logs unless asked for (`--reveal`)."""
    masked = dict(config)
    if "PGPASSWORD" in masked:
        masked["PGPASSWORD"] = "********"
    if "DATABASE_URL" in masked:
        masked["DATABASE_URL"] = re.sub(r"(://[^:/@]+:)[^@]+@", r"\1********@", masked["DATABASE_URL"])
    return masked


def commit_summary(author: str, subject: str, width: int = 60) -> str:
    """' by Jane Doe: Fix the login page', shortened, for a release's description."""
    text = (f" by {author}" if author else "") + (f": {subject}" if subject else "")
    return text if len(text) <= width else text[:width - 1] + "…"


def pod_out(pod: InstanceState) -> InstanceOut:
    """A pod of the Kubernetes backend as `shipyard ps` shows an instance (routed: ready behind its Service)."""
    return InstanceOut(name=pod.name, release=pod.release, state=pod.state, port=0, pid=None,
                       exit_code=pod.exit_code, restarts=pod.restarts, since=pod.since,
                       last_failure=pod.last_failure, routed=pod.state == "up")


def instance_out(i: Instance, routed: bool, busy: dict[str, int] | None = None,
                 usage: dict[str, tuple[float | None, float | None]] | None = None) -> InstanceOut:
    cpu, memory = (usage or {}).get(i.spec.name, (None, None))
    return InstanceOut(name=i.spec.name, release=i.spec.release, state="frozen" if i.frozen else i.state,
                       port=i.port, pid=i.pid,
                       exit_code=i.exit_code, restarts=i.restarts, since=i.since, last_failure=i.last_failure,
                       routed=routed, in_flight=busy.get(i.address, 0) if busy is not None and
                       i.spec.process_type == "web" else None,
                       cpu=None if cpu is None else round(cpu, 3), memory=None if memory is None else int(memory))


# What `git http-backend` sends with every response, so no proxy caches one.
NO_CACHE = {"Expires": "Fri, 01 Jan 1980 00:00:00 GMT", "Pragma": "no-cache",
            "Cache-Control": "no-cache, max-age=0, must-revalidate"}


def git_error(message: str, service: str) -> StreamingResponse:
    """An `ERR` pkt-line: git prints it as `fatal: remote error: <message>` instead of a bare 404."""
    body = pkt_line(f"ERR {message}\n".encode())
    media = f"application/x-{service}-advertisement" if service.startswith("git-") else "text/plain"
    return StreamingResponse(iter([body]), status_code=200 if service else 404, media_type=media)


def challenge(path: str) -> str:
    """A 401's WWW-Authenticate: Basic only for git, which needs it to ask its credential helper; a
    Basic challenge anywhere else would make browsers prompt and then replay the token cross-site."""
    return 'Basic realm="Shipyard"' if path.startswith("/git/") else 'Bearer realm="Shipyard"'


def create_api(platform: Platform, databases: Databases, token: str,
               database_server: Callable[[], str | None] = lambda: None) -> FastAPI:
    """`database_server` says how the platform's own PostgreSQL server is (None: it runs none)."""
    api = FastAPI(title="Shipyard", version=__version__,
                  description="Control plane of Shipyard. Every endpoint but /health needs the platform token "
                              "as `Authorization: Bearer <token>`.")
    settings = platform.settings
    pushes = PushQueue()
    operations = Operations(platform, databases)
    dashboard = Dashboard(platform, databases, operations, token)

    @api.exception_handler(ShipyardError)
    async def _user_error(request: Request, exc: ShipyardError) -> Response:
        if is_dashboard(request):
            return dashboard_error(dashboard, request, exc)
        headers = {"WWW-Authenticate": challenge(request.url.path)} if isinstance(exc, Unauthorized) else None
        return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=exc.status_code, headers=headers)

    def authorized(request: Request) -> None:
        check_token(request.headers.get("authorization"), token)

    def app_out(app: records.App, busy: dict[str, int] | None = None, manifest: str | None = None) -> AppOut:
        return AppOut(name=app.name, branch=app.branch, boot_timeout=app.boot_timeout,
                      start_command=app.start_command, build_command=app.build_command,
                      release_command=app.release_command, port=app.port,
                      health_path=app.health_path, size=app.size,
                      release=app.current_release,
                      state="damaged" if app.damage else platform.app_state(app), damage=app.damage,
                      url=settings.app_url(app.name, https=bool(app.redirect_https)),
                      https_url=(settings.app_url(app.name, https=True) if settings.https_port and platform.local
                                 else None),
                      redirect_https={True: "on", False: "off", None: "auto"}[app.redirect_https], hsts=app.hsts,
                      git_url=f"{settings.api_url}/git/{app.name}.git", created_at=app.created_at,
                      instances=[instance_out(i, platform.edge.routes_to(app.name, i.address), busy,
                                              platform.metrics_history.latest_usage(app.name))
                                 for i in [*platform.supervisor.instances(app.name),
                                           *platform.supervisor.starting(app.name, app.current_release)]]
                      + [pod_out(s) for s in platform.pods(app.name)],
                      formation={} if app.damage else formation_of(platform.store, app, manifest),
                      autoscale=autoscale_out(app), scaling=scaling_out(platform, app.name))

    @api.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @api.get("/metrics", dependencies=[Depends(authorized)])
    async def metrics() -> Response:
        """Per-app request counts by status class, latency histograms and in-flight requests per instance, in
        Prometheus's text format (scrape with the platform token as a bearer token)."""
        return Response(await platform.requests.metrics_text(), media_type=CONTENT_TYPE_LATEST)

    @api.get("/doctor", dependencies=[Depends(authorized)])
    async def doctor() -> list[LayerOut]:
        """Which isolation layers are active on this machine, and why the others are degraded."""
        # On Kubernetes these protect builds (they run on this machine), and the pods' own layer follows.
        layers = [LayerOut(name=layer.name, active=layer.active, detail=layer.detail)
                  for layer in platform.confinement.layers]
        if not platform.local:
            layers.append(LayerOut(name="pods", active=True, detail=(
                "each app in a namespace of its own that enforces the restricted Pod Security Standard (non-root "
                "uid, no capabilities or privilege escalation, RuntimeDefault seccomp), read-only root filesystem, "
                "no service account token; NetworkPolicies let only the ingress controller reach web pods and no "
                "pod reach another app or a private address (the cluster's network plugin must enforce them)")))
        layers.append(LayerOut(name="builds", active=platform.confinement.sandboxed, detail=(
            "the same sandbox as instances, as each app's own build uid, an empty environment until that uid "
            "runs, a uv cache per app, slugs frozen once built, no symlink followed by the platform"
            if platform.confinement.sandboxed else "builds run unconfined (see the sandbox layer)")))
        private = [path for path in (settings.token_file, settings.edge_admin_socket, settings.secret_key_file)
                   if path.exists() and path.stat().st_mode & 0o077]
        layers.append(LayerOut(name="control plane", active=not private, detail=(
            "token and secret key 0600, the edge's admin API on a unix socket only the platform can open, "
            "git and API behind the token" if not private else
            f"readable by others: {', '.join(map(str, private))} (chmod 600 them)")))
        if not databases.available:
            layers.append(LayerOut(name="database", active=False, detail=f"no PostgreSQL add-on: {databases.unavailable}"))
        elif databases.cloud is not None:
            layers.append(LayerOut(name="database", active=True, detail=(
                f"{databases.cloud.description} (pg_hba: a role only into its own database, TLS only), a "
                "connection limit per role")))
        else:
            layers.append(LayerOut(name="database", active=True, detail=(
                "a role and database per app (CONNECT revoked from PUBLIC, pg_hba: a role only into its own "
                "database, TLS only), a connection limit per role; admin credentials stay in the data directory"
                + (f"; {server}" if (server := database_server()) else ""))))
        backend = platform.backend.status()
        layers.append(LayerOut(name=backend.name, active=backend.healthy, kind="resource", detail=backend.detail))
        edge = platform.edge
        restarted = f", restarted {edge.restarts} time(s) since the platform started" if edge.restarts else ""
        if platform.local:
            layers.append(LayerOut(name="edge", active=edge.serving, detail=(
                f"HAProxy (pid {edge.pid}) serving {settings.edge_url}, changed without reloads{restarted}"
                if edge.serving else
                "HAProxy is down or restarting: apps are unreachable until it is back (it is restarted by itself; "
                f"its log: {settings.logs_dir / 'edge.log'})")))
        space = disk_space(settings.data_dir)
        layers.append(LayerOut(name="disk", active=not space.low, kind="resource", detail=(
            low_disk_warning(space) if space.low else
            f"the data directory {settings.data_dir}: {space.describe()}")))
        layers += [LayerOut(name=s.name, active=s.available, detail=s.detail, kind="speed")
                   for s in platform.wake_support]
        return layers

    @api.get("/apps", dependencies=[Depends(authorized)])
    async def list_apps() -> list[AppOut]:
        manifests = platform.store.live_manifests()
        return [app_out(a, manifest=manifests.get(a.name)) for a in platform.store.list_apps()]

    @api.post("/apps", status_code=201, dependencies=[Depends(authorized)])
    async def create_app(body: AppCreate) -> AppOut:
        return app_out(operations.create_app(body.name, body.branch, body.boot_timeout))

    @api.get("/apps/{name}", dependencies=[Depends(authorized)])
    async def get_app(name: str) -> AppOut:
        app = platform.store.get_app(name)
        try:
            busy = await platform.edge.upstream_requests()
        except ShipyardError:
            busy = None  # the edge is restarting: no in-flight figures this time
        return app_out(app, busy)

    @api.patch("/apps/{name}", dependencies=[Depends(authorized)])
    async def update_app(name: str, body: AppUpdate) -> AppOut:
        return app_out(await operations.update_app(name, body))

    @api.delete("/apps/{name}", dependencies=[Depends(authorized)])
    async def destroy_app(name: str, confirm: str = "") -> dict[str, str | None]:
        backup = await operations.destroy_app(name, confirm)
        where = str(databases.backup_path(name, backup.id)) if backup else None
        return {"destroyed": name, "final_backup": where}

    @api.get("/apps/{name}/config", dependencies=[Depends(authorized)])
    async def get_config(name: str, reveal: bool = False) -> ConfigOut:
        config = platform.store.get_config(name)
        return ConfigOut(config=config if reveal else mask_secrets(config),
                         build_time=sorted(platform.store.build_time_keys(name)))

    @api.patch("/apps/{name}/config", dependencies=[Depends(authorized)])
    async def update_config(name: str, body: ConfigUpdate) -> ConfigOut:
        release = await operations.update_config(name, body.set, body.unset, build_time=body.build_time)
        return ConfigOut(config=platform.store.get_config(name), release=release.version if release else None)

    @api.post("/apps/{name}/addons", status_code=201, dependencies=[Depends(authorized)])
    async def create_addon(name: str, body: AddonCreate) -> ConfigOut:
        release = await databases.create(name, quiet)
        return ConfigOut(config=mask_secrets(platform.store.get_config(name)),
                         release=release.version if release else None)

    @api.delete("/apps/{name}/addons/postgres", dependencies=[Depends(authorized)])
    async def destroy_addon(name: str, confirm: str = "") -> ConfigOut:
        release = await operations.destroy_database(name, confirm)
        return ConfigOut(config=mask_secrets(platform.store.get_config(name)),
                         release=release.version if release else None)

    @api.post("/apps/{name}/db/backups", status_code=201, dependencies=[Depends(authorized)])
    async def create_backup(name: str) -> BackupOut:
        return BackupOut(**vars(await databases.backup(name)))

    @api.get("/apps/{name}/db/backups", dependencies=[Depends(authorized)])
    async def list_backups(name: str) -> list[BackupOut]:
        return [BackupOut(**vars(b)) for b in databases.backups(name)]

    @api.post("/apps/{name}/db/restore", dependencies=[Depends(authorized)])
    async def restore_backup(name: str, body: RestoreRequest) -> dict[str, str]:
        await operations.restore_backup(name, body.backup_id, body.confirm)
        return {"restored": body.backup_id}

    @api.patch("/apps/{name}/formation", dependencies=[Depends(authorized)])
    async def scale(name: str, body: dict[str, int]) -> dict[str, int]:
        return await operations.scale(name, body)

    @api.post("/apps/{name}/restart", dependencies=[Depends(authorized)])
    async def restart(name: str, process_type: str | None = None) -> dict[str, str]:
        await platform.restart(name, process_type)
        return {"restarted": process_type or "all"}

    @api.websocket("/apps/{name}/console")
    async def console(websocket: WebSocket, name: str, command: str = "bash", columns: int = 80, rows: int = 24,
                      term: str = "xterm-256color") -> None:
        """`shipyard run` from a terminal: the process on a pty (frames: see shipyard.api.console).

        `command` (URL-encoded in the query) is one shell command line, like /runs' body."""
        await serve_console(websocket, platform, token, name, command, columns, rows, term, origin=settings.api_url)

    @api.post("/apps/{name}/runs", dependencies=[Depends(authorized)])
    async def run(name: str, body: RunRequest) -> StreamingResponse:
        """A one-off command; streams NDJSON {"output": line} events and a final {"exit": code}.

        `command` is one shell command line, run as `bash -c -- <command>`: never parsed for options here."""
        platform.store.get_app(name)
        validate_command(body.command)
        events: asyncio.Queue[dict | None] = asyncio.Queue()

        async def echo(line: str) -> None:
            await events.put({"output": line.removeprefix("       ")})

        async def execute() -> None:
            try:
                await events.put({"exit": await platform.run(name, body.command, echo)})
            except ShipyardError as exc:
                await events.put({"error": exc.message, "hint": exc.hint})
            finally:
                await events.put(None)

        task = asyncio.create_task(execute())
        if body.detach:
            return StreamingResponse(iter([json.dumps({"detached": True}) + "\n"]), media_type="application/x-ndjson")

        async def stream() -> AsyncIterator[str]:
            while (event := await events.get()) is not None:
                yield json.dumps(event) + "\n"
            await task

        return StreamingResponse(stream(), media_type="application/x-ndjson")

    @api.post("/apps/{name}/rollback", dependencies=[Depends(authorized)])
    async def rollback(name: str, body: RollbackRequest) -> dict[str, int]:
        release, version = await operations.rollback(name, body.version, release_phase=body.release_phase)
        return {"release": release.version, "rolled_back_to": version}

    @api.get("/apps/{name}/deploys", dependencies=[Depends(authorized)])
    async def list_deploys(name: str, limit: int = 20) -> list[dict]:
        """Each deploy's steps (build, release phase, start and health check, switch, drain) with times and logs."""
        return platform.store.list_deploys(name, limit)

    @api.get("/apps/{name}/releases", dependencies=[Depends(authorized)])
    async def list_releases(name: str) -> list[ReleaseOut]:
        current = platform.store.get_app(name).current_release
        return [ReleaseOut(version=r.version, description=r.description, status=r.status, commit=r.build.commit,
                           current=r.version == current, created_at=r.created_at)
                for r in platform.store.list_releases(name)]

    @api.get("/apps/{name}/logs", dependencies=[Depends(authorized)], response_class=PlainTextResponse)
    async def logs(name: str, lines: int = 100, follow: bool = False) -> StreamingResponse:
        platform.store.require_app(name)  # a damaged app's log says why it was not started
        path = platform.supervisor.app_log(name).path
        if follow:
            return StreamingResponse(follow_log(path, lines), media_type="text/plain")
        text = "".join(line + "\n" for line in platform.supervisor.app_log(name).tail(lines))
        return StreamingResponse(iter([text]), media_type="text/plain")

    @api.post("/apps/{name}/deploys", dependencies=[Depends(authorized)])
    async def deploy(name: str, body: DeployRequest) -> StreamingResponse:
        """Build and release a source tree (used by the git hook); streams NDJSON events."""
        platform.store.get_app(name)
        source = Path(body.source_dir)
        if not source.resolve().is_relative_to(settings.tmp_dir.resolve()) or not source.is_dir():
            raise InvalidInput("The source directory must be one the git hook exported.")
        events: asyncio.Queue[dict | None] = asyncio.Queue()
        received = (body.received_at, time.time()) if body.received_at else None

        async def log(line: str) -> None:
            await events.put({"log": line})

        async def run() -> None:
            try:
                release = await platform.deploy(name, source, body.commit, log, received,
                                                commit_summary(body.author, body.subject))
                await events.put({"release": release.version})
            except ShipyardError as exc:
                await events.put({"error": exc.message, "hint": exc.hint})
            finally:
                await events.put(None)

        task = asyncio.create_task(run())

        async def stream() -> AsyncIterator[str]:
            while (event := await events.get()) is not None:
                yield json.dumps(event) + "\n"
            await task

        return StreamingResponse(stream(), media_type="application/x-ndjson")

    @api.api_route("/git/{repo}/{path:path}", methods=["GET", "POST"], include_in_schema=False)
    async def git(repo: str, path: str, request: Request) -> StreamingResponse:
        started = time.time()
        check_token(request.headers.get("authorization"), token, allow_basic=True)
        name = repo.removesuffix(".git")
        if not repo.endswith(".git"):
            raise NotFound(f"Git remotes end in .git: use {settings.api_url}/git/{name}.git")
        try:
            app = platform.store.get_app(name)
        except NotFound as exc:
            return git_error(f"{exc.message} {exc.hint}", request.query_params.get("service", ""))
        platform.repos.create(name)  # a repo lost from disk comes back empty rather than failing every push
        env = cgi_env(repos_root=platform.repos.root, path_info=f"/{name}.git/{path}", method=request.method,
                      query=request.url.query, headers=request.headers,
                      remote_addr=request.client.host if request.client else "",
                      extra={"SHIPYARD_API_URL": settings.api_url, "SHIPYARD_HOOK_TOKEN": token,
                             "SHIPYARD_APP": name, "SHIPYARD_BRANCH": app.branch,
                             "SHIPYARD_TMP": str(settings.tmp_dir), "HOME": str(settings.data_dir),
                             "SHIPYARD_PUSH_STARTED": f"{started:.3f}"})
        body = tempfile.TemporaryFile(prefix="git-body-", dir=settings.tmp_dir)
        size = await spool_body(request.stream(), body)
        error_log = settings.logs_dir / "git.log"

        async def git_backend() -> CgiResponse:
            with body:  # git has its own handle on it once started
                return await run_http_backend(env, body, error_log)

        # A bare flush-pkt is git's probe before sending a large pack: it changes nothing, so it doesn't queue.
        if request.method == "POST" and path == "git-receive-pack" and size > len(b"0000"):
            body.seek(0)
            wants = push_capabilities(body.read(65536), request.headers.get("content-encoding", ""))
            note = progress_message(f"-----> Another push to {name} is still deploying: this push waits for it "
                                    "to finish", wants)
            return StreamingResponse(pushes.serve(name, note, git_backend), headers=NO_CACHE,
                                     media_type="application/x-git-receive-pack-result")
        response = await git_backend()
        return StreamingResponse(response.body, status_code=response.status, headers=dict(response.headers))

    api.include_router(domains_router(platform, operations), dependencies=[Depends(authorized)])
    api.include_router(scaling_router(platform, operations), dependencies=[Depends(authorized)])
    mount_dashboard(api, dashboard)
    return api
