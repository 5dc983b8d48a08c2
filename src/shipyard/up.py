"""`shipyard up`: the platform process. One asyncio loop runs the API, the supervisor and the edge."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

import uvicorn

from shipyard.addons.postgres import PostgresAddon, embedded_target, external_target
from shipyard.addons.postgres_server import PostgresServer
from shipyard.addons.tls import CertificateAuthority
from shipyard.api.auth import load_or_create_token
from shipyard.api.slug_server import SlugServer
from shipyard.control.cloud_databases import CloudNativePG
from shipyard.control.databases import Databases
from shipyard.control.kube_backend import KubernetesBackend
from shipyard.control.platform import Platform
from shipyard.api.server import create_api
from shipyard.edge.haproxy import Edge
from shipyard.runtime import netfilter
from shipyard.runtime.confinement import Confinement, Layer
from shipyard.runtime.disk import disk_space, low_disk_warning
from shipyard.errors import AlreadyRunning, PlatformError
from shipyard.settings import Settings
from shipyard.stopping import StopSteps
from shipyard.store.backups import scheduled_store_backups
from shipyard.store.secrets import Cipher, load_or_create_key
from shipyard.store.store import Store


def prepare_data_dir(settings: Settings) -> None:
    # Everything the platform writes is private to it; the data directory itself is only
    # traversable, so the `postgres` user can reach its own folder inside.
    os.umask(0o077)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o711)
    for folder in (settings.repos_dir, settings.slugs_dir, settings.logs_dir, settings.uv_cache_dir,
                   settings.tmp_dir, settings.edge_dir):
        folder.mkdir(parents=True, exist_ok=True)


def acquire_lock(settings: Settings) -> IO[str]:
    """Hold an exclusive lock on the data directory for the platform's lifetime."""
    handle = open(settings.lock_file, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        running = read_state(settings.state_file)
        where = f" (pid {running.get('pid')}, API {running.get('api_url')})" if running else ""
        raise AlreadyRunning(
            f"Shipyard is already running on {settings.data_dir}{where}.",
            hint="Stop that one first (Ctrl-C in its terminal), or start another with a different --data-dir.")
    return handle


def read_state(path: Path) -> dict[str, object]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_state(settings: Settings) -> None:
    state = {"pid": os.getpid(), "api_url": settings.api_url, "edge_url": settings.edge_url,
             "base_domain": settings.base_domain, "edge_port": settings.edge_port}
    tmp = settings.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state))
    os.replace(tmp, settings.state_file)


class PlatformServer:
    """Start (edge, reconcile, API), serve until a signal, then stop everything in reverse order."""

    def __init__(self, settings: Settings, announce: Callable[[str], None]) -> None:
        self.settings = settings
        self.announce = announce

    async def serve(self) -> None:
        settings = self.settings
        store = Store(settings.db_file, Cipher(load_or_create_key(settings.secret_key_file)),
                      settings.store_backups_dir)
        token = load_or_create_token(settings.token_file)
        ca = CertificateAuthority.load_or_create(settings.data_dir / "ca")
        edge = Edge(config_dir=settings.edge_dir, admin_socket=settings.edge_admin_socket,
                    listen=f"{settings.edge_host}:{settings.edge_port}", base_domain=settings.base_domain,
                    log_file=settings.logs_dir / "edge.log", pool=settings.edge_backends,
                    https_listen=settings.https_listen, ca=ca)
        confinement = await asyncio.to_thread(Confinement.detect, f"shipyard-{settings.tenant_uid_base}",
                                              settings.tenant_uid_base)
        confinement.sweep()  # cgroups a killed platform left behind
        platform = Platform(settings, store, edge, confinement, ca)
        postgres = PostgresServer(settings.data_dir / "postgres", ca, settings.logs_dir / "postgres.log",
                                  announce=self.announce)
        databases = Databases(platform, None)
        config = uvicorn.Config(create_api(platform, databases, token, postgres.status), host=settings.api_host,
                                port=settings.api_port, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=5)
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        network: netfilter.TenantNetwork | None = None
        slugs: SlugServer | None = None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            try:
                if settings.postgres_admin_url:
                    target = external_target(settings.postgres_admin_url)
                elif platform.local:
                    await postgres.start()
                    target = embedded_target(postgres)
                else:  # the cluster's CloudNativePG, once the backend has connected (its pods cannot reach ours)
                    target = None
                if target is not None:
                    databases.addon = PostgresAddon(target, settings.data_dir / "backups")
                    if target.sslrootcert:
                        platform.shared_files = (Path(target.sslrootcert),)
                    await asyncio.to_thread(databases.addon.check)
            except PlatformError as exc:
                self.database_unavailable(databases, exc)
            network = await self.filter_tenant_network(confinement, databases)
            for layer in confinement.layers:
                if not layer.active:
                    self.announce(f"Warning: isolation layer '{layer.name}' is degraded: {layer.detail} "
                                  "(see `shipyard doctor`)")
            if (space := disk_space(settings.data_dir)).low:
                self.announce(f"Warning: {low_disk_warning(space)}")
            await platform.start()
            if isinstance(platform.backend, KubernetesBackend):
                slugs = await self.serve_slugs(platform.backend, ca)
                if not databases.available and not settings.postgres_admin_url:
                    await self.attach_cloud_databases(platform, platform.backend, databases)
            store_backups = asyncio.create_task(scheduled_store_backups(
                settings.db_file, settings.store_backups_dir, settings.store_backup_interval,
                settings.store_backups_kept, self.announce))
            backups = asyncio.create_task(databases.scheduled_backups(settings.backup_interval,
                                                                      settings.backup_keep))
            serving = asyncio.create_task(server.serve())
            while not server.started:
                if serving.done():
                    serving.result()
                    raise PlatformError(f"The API could not listen on {settings.api_url}.",
                                        hint="Is the port in use? Pick another with --api-port.")
                await asyncio.sleep(0.05)
            write_state(settings)
            self.announce_ready(token)
            await stop.wait()
            backups.cancel()
            store_backups.cancel()  # it makes a last backup as it stops
            self.announce("Stopping: draining apps, stopping the edge …")
            server.should_exit = True
            await serving
        finally:
            if slugs is not None:
                await slugs.stop()
            await self.stop_everything(platform, confinement, network, postgres, store)

    async def serve_slugs(self, backend: KubernetesBackend, ca: CertificateAuthority) -> SlugServer:
        """The TLS listener the cluster's pods fetch slugs from, with a certificate of the platform's CA for the
        host of SHIPYARD_KUBE_SLUG_URL (the pods are given the CA)."""
        kube = self.settings.kube
        host, _, port = kube.slug_listen.rpartition(":")
        folder = self.settings.kube_dir
        folder.mkdir(mode=0o700, exist_ok=True)
        name = urlsplit(kube.slug_url).hostname or "localhost"
        await asyncio.to_thread(ca.issue, folder / "slugs.crt", folder / "slugs.key", [name])
        server = SlugServer(host.strip("[]") or "0.0.0.0", int(port or 8471), folder / "slugs.crt",
                            folder / "slugs.key", backend.slug_secret, backend.archive_path)
        await server.start()
        self.announce(f"Slugs for the cluster's pods: {kube.slug_url} (listening on {host}:{server.port})")
        return server

    async def attach_cloud_databases(self, platform: Platform, backend: KubernetesBackend,
                                     databases: Databases) -> None:
        """The PostgreSQL add-on through the cluster's CloudNativePG, where that operator is installed."""
        cloud = CloudNativePG(backend.client, backend.postgres_cluster(), self.settings.kube_dir / "postgres-ca.crt")
        try:
            if not await cloud.installed():
                raise PlatformError("CloudNativePG is not installed on the cluster, and SHIPYARD_POSTGRES_ADMIN_URL "
                                    "names no server.")
            await cloud.check()
        except PlatformError as exc:
            self.database_unavailable(databases, exc)
            return
        databases.cloud = cloud
        platform.shared_files = (cloud.ca_file,)

    def database_unavailable(self, databases: Databases, exc: PlatformError) -> None:
        databases.unavailable = exc.message.splitlines()[0]
        self.announce(f"Warning: the PostgreSQL add-on is unavailable: {exc.message}")

    async def stop_everything(self, platform: Platform, confinement: Confinement,
                              network: netfilter.TenantNetwork | None, postgres: PostgresServer,
                              store: Store) -> None:
        """Stop in reverse order of starting. Every step runs even if one before it failed (a full disk, a
        process already gone); each failure is one warning line, never a traceback."""
        steps = StopSteps()
        steps.failures += await platform.shutdown()
        await steps.run("Closing the apps' cgroups", confinement.close)
        if network is not None:
            await steps.run("Removing the apps' network filter", lambda: netfilter.remove(network))
        await steps.run("Stopping PostgreSQL", postgres.stop)
        await steps.run("Closing the store", store.close)
        await steps.run("Removing the state file", lambda: self.settings.state_file.unlink(missing_ok=True))
        for failure in steps.failures:
            self.announce(f"Warning: {failure}")

    async def filter_tenant_network(self, confinement: Confinement,
                                    databases: Databases) -> netfilter.TenantNetwork | None:
        """Load the per-uid packet filter; degraded (and said so) where nftables is missing."""
        s = self.settings
        target = databases.addon.target if databases.addon else None
        database_port = target.port if target and target.host in ("127.0.0.1", "localhost") else None
        network = netfilter.TenantNetwork(s.tenant_uid_base, s.tenant_uid_base + s.uid_span - 1, database_port,
                                          s.edge_port, s.https_port)
        if not confinement.sandboxed:
            confinement.add_layer(Layer("network", False, "no per-app uids, so no per-uid packet filter"))
            return None
        try:
            await netfilter.apply(network)
        except PlatformError as exc:
            confinement.add_layer(Layer("network", False, f"apps can reach every port of this machine: "
                                        f"{exc.message} {exc.hint or ''}".strip()))
            return None
        confinement.add_layer(Layer("network", True, f"nftables table {network.table}: per-uid filtering in the "
                                    "host's network namespace (no extra hop on the edge's path); apps answer only "
                                    "on loopback, reach their database, the edge's public port and the outside "
                                    "world, not the API, the edge's internals, other apps or other local ports"))
        return network

    def announce_ready(self, token: str) -> None:
        s = self.settings
        if s.backend == "kubernetes":
            title = "Shipyard is up, running apps on Kubernetes."
            apps = f"  Apps:  {s.app_url('<app>')} through the cluster's ingress controller\n"
        else:
            title = "Shipyard is up."
            apps = (f"  Edge:  {s.edge_url}  (apps at http://<app>.{s.base_domain}:{s.edge_port}/"
                    + (f", and at {s.app_url('<app>', https=True)} with the platform's CA: `shipyard ca`"
                       if s.https_port else "") + ")\n")
        self.announce(f"{title}\n  Dashboard: {s.api_url}/dashboard  (sign in with the token)\n"
                      f"  API:   {s.api_url}  (OpenAPI: {s.api_url}/docs)\n{apps}"
                      f"  Token: {s.token_file}\n  Data:  {s.data_dir}\nPress Ctrl-C to stop.")


def ensure_port_free(host: str, port: int, what: str, flag: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PlatformError(f"Cannot listen on {host}:{port} for the {what}: {exc.strerror}.",
                                hint=f"Another program uses that port; start Shipyard with another {flag}.") from None


def run_platform(settings: Settings, announce: Callable[[str], None]) -> None:
    prepare_data_dir(settings)
    lock = acquire_lock(settings)
    try:
        ensure_port_free(settings.api_host, settings.api_port, "API", "--api-port")
        ensure_port_free(settings.edge_host, settings.edge_port, "edge", "--edge-port")
        if settings.https_port:
            ensure_port_free(settings.edge_host, settings.https_port, "edge's HTTPS", "--https-port")
    except PlatformError:
        lock.close()
        raise
    try:
        asyncio.run(PlatformServer(settings, announce).serve())
    finally:
        lock.close()
