"""The PostgreSQL add-on on a Kubernetes cluster with CloudNativePG: provision and remove an app's database.

The objects are runtime/kubernetes/postgres.py's; this applies them and waits, as rollout.deploy waits for a
rollout, until CloudNativePG reports the role and the database made (or says why not). The server's CA
certificate is copied from the cluster into the data directory, where the Kubernetes backend puts it into
every pod at the path PGSSLROOTCERT names, as it does the embedded server's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from shipyard.addons.postgres import Credentials, role_name
from shipyard.errors import PlatformError, ShipyardError
from shipyard.runtime.kubernetes import cluster
from shipyard.runtime.kubernetes import postgres as objects
from shipyard.runtime.kubernetes.postgres import PostgresCluster

SSLMODE = "verify-full"
READY_TIMEOUT = 900.0  # a first Cluster pulls PostgreSQL's image and runs initdb: minutes on a slow cluster


class CloudNativePG:
    def __init__(self, client: Any, pg: PostgresCluster, ca_file: Path, timeout: float = READY_TIMEOUT,
                 poll: float = cluster.POLL) -> None:
        self.client = client
        self.pg = pg
        self.ca_file = ca_file
        self.timeout = timeout
        self.poll = poll

    @property
    def description(self) -> str:
        return (f"CloudNativePG: Cluster {self.pg.name} in namespace {self.pg.namespace}, one role and database "
                f"per app")

    async def installed(self) -> bool:
        """Whether the cluster serves CloudNativePG's kinds (its operator is installed)."""
        return await cluster.served(self.client, objects.API_VERSION, "Cluster", self.pg.namespace)

    async def check(self) -> None:
        """At start: refresh the copy of the server's CA, which CloudNativePG renews before it expires."""
        live = await self._live_cluster()
        if live is not None and objects.cluster_ready(live):
            await self._copy_ca()

    async def provision(self, app: str, others: Sequence[str], say: cluster.Say) -> Credentials:
        """The app's role (with a new password) and database; `others` are the apps that keep theirs."""
        password = secrets.token_urlsafe(24)
        apps = sorted({*others, app})
        try:
            await cluster.apply(self.client, [objects.namespace_object(self.pg),
                                              objects.password_secret(self.pg, app, password),
                                              objects.cluster_object(self.pg, apps)])
            await self._until_ready(say)
            await self._until_role(app)
            await cluster.apply_one(self.client, objects.database_object(self.pg, app))
            await self._until_database(app)
            await self._copy_ca()
        except BaseException:
            with contextlib.suppress(ShipyardError):  # what went wrong first is what the user needs to read
                await asyncio.shield(self.deprovision(app, [a for a in apps if a != app]))
            raise
        return Credentials(self.pg.host, objects.PORT, role_name(app), role_name(app), password)

    async def deprovision(self, app: str, others: Sequence[str]) -> None:
        """Declared, not waited for: CloudNativePG drops the database once no pod of the app is connected to it
        (it retries until then), and the role once the database is gone."""
        await cluster.delete(self.client, objects.database_object(self.pg, app))
        if await self._live_cluster() is not None:
            await cluster.apply_one(self.client, objects.cluster_object(self.pg, others, removed=[app]))
        await cluster.delete(self.client, objects.password_secret(self.pg, app, ""))

    async def _live_cluster(self) -> dict[str, Any] | None:
        return await cluster.read(self.client, objects.cluster_object(self.pg, []))

    async def _until_ready(self, say: cluster.Say) -> None:
        said = ""

        async def ready() -> bool:
            nonlocal said
            live = await self._live_cluster()
            if live is not None and objects.cluster_ready(live):
                return True
            phase = objects.cluster_phase(live or {})
            if phase != said:
                said = phase
                await say(f"       PostgreSQL cluster {self.pg.name}: {phase}")
            return False
        await self._until(ready, f"PostgreSQL cluster {self.pg.name} in {self.pg.namespace} to be ready",
                          hint=f"`kubectl describe cluster {self.pg.name} -n {self.pg.namespace}` says what it "
                               "waits for (a StorageClass for its volume, the image pull).")

    async def _until_role(self, app: str) -> None:
        async def made() -> bool:
            live = await self._live_cluster() or {}
            if problem := objects.role_problem(live, app):
                raise PlatformError(f"CloudNativePG could not make the role {role_name(app)}: {problem}")
            return objects.role_reconciled(live, app)
        await self._until(made, f"the role {role_name(app)} to be made")

    async def _until_database(self, app: str) -> None:
        database = objects.database_object(self.pg, app)

        async def made() -> bool:
            applied, message = objects.database_state(await cluster.read(self.client, database) or {})
            if applied is False:
                raise PlatformError(f"CloudNativePG could not make the database {role_name(app)}: {message}")
            return bool(applied)
        await self._until(made, f"the database {role_name(app)} to be made")

    async def _until(self, done: Callable[[], Awaitable[bool]], what: str, hint: str | None = None) -> None:
        deadline = time.monotonic() + self.timeout
        while not await done():
            if time.monotonic() > deadline:
                raise PlatformError(f"Gave up waiting {self.timeout:g} s for {what}.",
                                    hint=hint or f"`kubectl get clusters,databases -n {self.pg.namespace}` and "
                                                 "the CloudNativePG operator's log say what it waits for.")
            await asyncio.sleep(self.poll)

    async def _copy_ca(self) -> None:
        secret = {"apiVersion": "v1", "kind": "Secret",
                  "metadata": {"name": self.pg.ca_secret, "namespace": self.pg.namespace}}
        live = await cluster.read(self.client, secret)
        encoded = ((live or {}).get("data") or {}).get("ca.crt")
        if not encoded:
            raise PlatformError(f"Secret {self.pg.ca_secret} in {self.pg.namespace} holds no ca.crt.",
                                hint="CloudNativePG makes it with the Cluster; is the operator running?")
        self.ca_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = self.ca_file.with_suffix(".tmp")
        partial.write_bytes(base64.b64decode(encoded))
        os.chmod(partial, 0o644)
        os.replace(partial, self.ca_file)
