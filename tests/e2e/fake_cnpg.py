"""The fake cluster's CloudNativePG operator (tests/e2e/fake_kube.py, `cloudnative_pg=True`).

What the platform waits for, as the operator reports it: a Cluster is "Setting up primary" for a moment, then
ready with its `<name>-ca` Secret; each managed role is reconciled when its password Secret exists (else it is
listed under `cannotReconcile`), and dropped when it is `absent`; a Database is applied once its owner role
exists (else `applied: false` with the reason). Nothing runs PostgreSQL: the platform never connects to it.
"""

from __future__ import annotations

import base64
import threading
from typing import Any

from .fake_kube_store import Store, now

GROUP = "postgresql.cnpg.io"
CA_PEM = "-----BEGIN CERTIFICATE-----\nZmFrZSBDbG91ZE5hdGl2ZVBHIENB\n-----END CERTIFICATE-----\n"
SETTING_UP = 0.5  # seconds a new Cluster is not ready yet (the platform must wait, and say so)


def _path(namespace: str, plural: str, name: str, group: str = GROUP) -> str:
    base = "/api/v1" if not group else f"/apis/{group}/v1"
    return f"{base}/namespaces/{namespace}/{plural}/{name}"


def reconcile(store: Store, kind: str, path: str) -> None:
    with store.lock:
        live = store.objects.get(path)
        if live is None:
            return
        if kind == "Cluster":
            _cluster(store, path, live)
        else:
            _database(store, live)


def _cluster(store: Store, path: str, live: dict[str, Any]) -> None:
    meta, spec = live["metadata"], live["spec"]
    namespace, name = meta["namespace"], meta["name"]
    if "status" not in live:
        live["status"] = {"phase": "Setting up primary", "instances": spec["instances"], "readyInstances": 0}
        timer = threading.Timer(SETTING_UP, store.work.put, (("Cluster", path),))
        timer.daemon = True
        timer.start()
        return
    ca_path = _path(namespace, "secrets", f"{name}-ca", group="")
    if ca_path not in store.objects:
        store.put(ca_path, {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                            "metadata": {"name": f"{name}-ca", "namespace": namespace, "uid": f"ca-{name}",
                                         "creationTimestamp": now()},
                            "data": {"ca.crt": base64.b64encode(CA_PEM.encode()).decode()}})
    reconciled, failed = [], {}
    for role in (spec.get("managed") or {}).get("roles") or []:
        if role.get("ensure") == "absent":
            continue
        secret = store.objects.get(_path(namespace, "secrets", role["passwordSecret"]["name"], group=""))
        if secret is None or "password" not in (secret.get("data") or {}):
            failed[role["name"]] = [f"password secret {role['passwordSecret']['name']} not found"]
        else:
            reconciled.append(role["name"])
    live["status"] = {"phase": "Cluster in healthy state", "instances": spec["instances"],
                      "readyInstances": spec["instances"], "currentPrimary": f"{name}-1",
                      "managedRolesStatus": {"byStatus": {"reconciled": sorted(reconciled)},
                                             **({"cannotReconcile": failed} if failed else {})}}
    for other, obj in store.objects.items():  # Databases that waited for a role
        if obj.get("kind") == "Database" and obj["metadata"]["namespace"] == namespace:
            store.work.put(("Database", other))


def _database(store: Store, live: dict[str, Any]) -> None:
    meta, spec = live["metadata"], live["spec"]
    cluster = store.objects.get(_path(meta["namespace"], "clusters", spec["cluster"]["name"])) or {}
    roles = ((cluster.get("status") or {}).get("managedRolesStatus") or {}).get("byStatus", {}).get("reconciled", [])
    status: dict[str, Any] = {"observedGeneration": meta["generation"], "applied": spec["owner"] in roles}
    if not status["applied"]:
        status["message"] = f'role "{spec["owner"]}" does not exist'
    live["status"] = status
