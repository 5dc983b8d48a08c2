"""The PostgreSQL add-on on a cluster with CloudNativePG: its objects as values, and how to read their status.

One `Cluster` (a PostgreSQL server of one or more instances) serves every app, as the embedded server does
locally: each app gets a role and a database of its own name, `app_<name>`, with the same attributes and
connection limit as `addons/postgres.py` gives them. CloudNativePG makes them from the Cluster's managed
roles (each role's password in a basic-auth Secret beside the Cluster) and from a `Database` object per app.
Its pg_hba rules admit a role only to the database of its own name, over TLS; the server's certificate is
signed by the Cluster's own CA (the `<cluster>-ca` Secret), which the apps verify it with (verify-full).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shipyard.addons.postgres import CONNECTION_LIMIT, role_name
from shipyard.runtime.kubernetes.model import KubeObject, Peer
from shipyard.runtime.kubernetes.names import MANAGED_BY

API_VERSION = "postgresql.cnpg.io/v1"
PORT = 5432
# Rules before CloudNativePG's last one (which admits any role to any database with a password): a role only
# into the database of its own name, only over TLS, as the embedded server's pg_hba.
PG_HBA = ("hostssl sameuser all all scram-sha-256", "host all all all reject")
_LABELS = {"app.kubernetes.io/managed-by": MANAGED_BY}


@dataclass(frozen=True)
class PostgresCluster:
    """Where the apps' databases live on the cluster, and how big the server is."""

    namespace: str = "shipyard-postgres"
    name: str = "shipyard"
    instances: int = 1
    storage: str = "10Gi"

    @property
    def host(self) -> str:
        """The primary's Service: a name the server's certificate holds, so verify-full passes."""
        return f"{self.name}-rw.{self.namespace}.svc"

    @property
    def ca_secret(self) -> str:
        return f"{self.name}-ca"

    def peer(self) -> Peer:
        """What an app's NetworkPolicy lets its pods connect to: the Cluster's instances."""
        return Peer(self.namespace, {"cnpg.io/cluster": self.name}, PORT)


def password_secret_name(app: str) -> str:
    return f"{role_name(app).replace('_', '-')}-password"


def namespace_object(pg: PostgresCluster) -> KubeObject:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": pg.namespace, "labels": _LABELS}}


def _role(app: str, present: bool) -> dict[str, Any]:
    if not present:
        return {"name": role_name(app), "ensure": "absent"}
    return {"name": role_name(app), "ensure": "present", "login": True, "superuser": False, "createdb": False,
            "createrole": False, "replication": False, "bypassrls": False, "inherit": True,
            "connectionLimit": CONNECTION_LIMIT, "passwordSecret": {"name": password_secret_name(app)}}


def cluster_object(pg: PostgresCluster, apps: Sequence[str], removed: Sequence[str] = ()) -> KubeObject:
    """The Cluster with a managed role for every app that has a database (and `removed` ones dropped)."""
    roles = [_role(app, True) for app in sorted(apps)] + [_role(app, False) for app in sorted(removed)]
    spec: dict[str, Any] = {"instances": pg.instances, "storage": {"size": pg.storage},
                            "postgresql": {"pg_hba": list(PG_HBA)}, "enableSuperuserAccess": False}
    if roles:
        spec["managed"] = {"roles": roles}
    return {"apiVersion": API_VERSION, "kind": "Cluster",
            "metadata": {"name": pg.name, "namespace": pg.namespace, "labels": _LABELS}, "spec": spec}


def password_secret(pg: PostgresCluster, app: str, password: str) -> KubeObject:
    # cnpg.io/reload: CloudNativePG watches only Secrets so labelled, so a changed password is applied.
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
            "metadata": {"name": password_secret_name(app), "namespace": pg.namespace,
                         "labels": {**_LABELS, "cnpg.io/reload": "true"}},
            "stringData": {"username": role_name(app), "password": password}}


def database_object(pg: PostgresCluster, app: str) -> KubeObject:
    """The app's database, dropped with its Database object (reclaim policy `delete`)."""
    return {"apiVersion": API_VERSION, "kind": "Database",
            "metadata": {"name": role_name(app).replace("_", "-"), "namespace": pg.namespace, "labels": _LABELS},
            "spec": {"name": role_name(app), "owner": role_name(app), "cluster": {"name": pg.name},
                     "ensure": "present", "databaseReclaimPolicy": "delete"}}


def cluster_ready(live: KubeObject) -> bool:
    status = live.get("status") or {}
    return int(status.get("readyInstances") or 0) >= 1 and bool(status.get("currentPrimary"))


def cluster_phase(live: KubeObject) -> str:
    status = live.get("status") or {}
    return str(status.get("phase") or "not started yet")


def role_problem(live: KubeObject, app: str) -> str | None:
    """What CloudNativePG could not do for the app's role (None: nothing has failed)."""
    failures = ((live.get("status") or {}).get("managedRolesStatus") or {}).get("cannotReconcile") or {}
    errors = failures.get(role_name(app))
    return "; ".join(errors) if errors else None


def role_reconciled(live: KubeObject, app: str) -> bool:
    by_status = ((live.get("status") or {}).get("managedRolesStatus") or {}).get("byStatus") or {}
    return role_name(app) in (by_status.get("reconciled") or [])


def database_state(live: KubeObject) -> tuple[bool | None, str]:
    """(applied, message) of a Database: None until CloudNativePG has looked at this generation."""
    status = live.get("status") or {}
    generation = (live.get("metadata") or {}).get("generation")
    if status.get("observedGeneration") != generation or "applied" not in status:
        return None, ""
    return bool(status["applied"]), str(status.get("message") or "")
