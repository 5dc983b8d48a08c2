"""The fake Kubernetes API server's objects (tests/e2e/fake_kube.py): what it stores and how it changes them.

`Store` holds the live objects and each field manager's last apply, and implements server-side apply (the
managers' configurations merged, managedFields per manager, generations, a Secret's stringData as `data`,
defaults and canonical quantities, conflicts, immutable fields, schema validation) and DELETE (a Namespace
lingers as Terminating for a moment, the pods of a Deployment or Job go with it). The rest of this module are
the plain helpers for that: paths taken apart, maps merged, quantities made canonical.
"""

from __future__ import annotations

import base64
import copy
import json
import queue
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

try:
    import kubernetes_validate
except ImportError:  # the fake then accepts any object (the unit tests check the schemas)
    kubernetes_validate = None

KUBE_VERSION = "1.37"
KINDS = {"namespaces": "Namespace", "pods": "Pod", "secrets": "Secret", "serviceaccounts": "ServiceAccount",
         "services": "Service", "deployments": "Deployment", "jobs": "Job", "ingresses": "Ingress",
         "networkpolicies": "NetworkPolicy", "poddisruptionbudgets": "PodDisruptionBudget",
         "horizontalpodautoscalers": "HorizontalPodAutoscaler", "replicasets": "ReplicaSet",
         "configmaps": "ConfigMap", "events": "Event", "clusters": "Cluster", "databases": "Database"}
CONTROLLED = ("Deployment", "Job", "Cluster", "Database")  # the kinds a controller of the fake acts on
NAMESPACE_GONE_AFTER = 1.0  # seconds a deleted namespace stays Terminating (the platform polls until it is gone)


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def merged(base: Any, extra: Any) -> Any:
    """`extra` over `base`: maps merged key by key, anything else (lists included) replaced."""
    if not isinstance(base, dict) or not isinstance(extra, dict):
        return copy.deepcopy(extra)
    out = copy.deepcopy(base)
    for key, value in extra.items():
        out[key] = merged(out[key], value) if key in out else copy.deepcopy(value)
    return out


def leaves(obj: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Every path through maps to a value that is not a map (a list counts as one value)."""
    if not isinstance(obj, dict) or not obj:
        return {prefix: obj}
    found: dict[tuple[str, ...], Any] = {}
    for key, value in obj.items():
        found.update(leaves(value, (*prefix, key)))
    return found


def fields_v1(obj: dict[str, Any]) -> dict[str, Any]:
    """managedFields' fieldsV1 for what an apply configuration sets (list items keyed, as the API does)."""
    owned: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            owned[f"f:{key}"] = fields_v1(value)
        elif isinstance(value, list):
            owned[f"f:{key}"] = {f'k:{{"name":"{item.get("name", i)}"}}' if isinstance(item, dict) else
                                 f"v:{json.dumps(item)}": {".": {}} for i, item in enumerate(value)}
        else:
            owned[f"f:{key}"] = {}
    return owned


_QUANTITY = re.compile(r"(\d+)(m|Ki|Mi|Gi|Ti)?")


def canonical(quantity: Any) -> Any:
    """A quantity as the API server stores it: `1024Mi` → `1Gi`, `2000m` → `2`."""
    found = _QUANTITY.fullmatch(quantity) if isinstance(quantity, str) else None
    if not found:
        return quantity
    number, suffix = int(found[1]), found[2] or ""
    if suffix == "m" and number % 1000 == 0:
        return str(number // 1000)
    binary = ["Ki", "Mi", "Gi", "Ti"]
    if suffix in binary:
        at = binary.index(suffix)
        while at + 1 < len(binary) and number % 1024 == 0:
            number, at = number // 1024, at + 1
        return f"{number}{binary[at]}"
    return quantity


class ApiFailure(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


@dataclass(frozen=True)
class Where:
    """A request's path, taken apart: /api/v1/namespaces/NS/PLURAL/NAME/SUB or /apis/GROUP/VERSION/…"""

    group: str
    version: str
    namespace: str  # "" for a cluster-scoped path
    plural: str
    name: str
    sub: str

    @property
    def kind(self) -> str:
        return KINDS.get(self.plural, "")

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def object_path(where: Where) -> str:
    base = f"/api/{where.version}" if not where.group else f"/apis/{where.group}/{where.version}"
    if where.namespace:
        return f"{base}/namespaces/{where.namespace}/{where.plural}/{where.name}"
    return f"{base}/{where.plural}/{where.name}"


def namespace_path(name: str) -> str:
    return f"/api/v1/namespaces/{name}"


def in_namespace(path: str, namespace: str) -> bool:
    return f"/namespaces/{namespace}/" in path


class Store:
    """The live objects, each field manager's last apply, and what the controllers are told of."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.objects: dict[str, dict[str, Any]] = {}  # path → live object
        self.applied: dict[str, dict[str, dict[str, Any]]] = {}  # path → field manager → its last apply
        self.owner: dict[str, str] = {}  # pod path → the Deployment's or Job's path
        self.logs: dict[tuple[str, str, str], list[str]] = {}  # (namespace, pod, container) → lines
        self.gone_at: dict[str, float] = {}  # namespace path → when its deletion finishes
        self.version = 1000
        # The controllers' watch: (kind, path) of each object of a CONTROLLED kind applied anew; None ends it.
        self.work: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self.put(namespace_path("default"), namespace_object("default"))

    def put(self, path: str, obj: dict[str, Any]) -> None:
        with self.lock:
            self.objects[path] = obj

    def get(self, where: Where) -> dict[str, Any]:
        live = self.objects.get(object_path(where))
        if live is None:
            raise ApiFailure(404, "NotFound", f'{where.plural} "{where.name}" not found')
        return live

    def delete(self, where: Where) -> dict[str, Any]:
        path = object_path(where)
        live = self.get(where)
        if where.kind == "Namespace":
            if path not in self.gone_at:
                for inside in [p for p in self.objects if in_namespace(p, where.name)]:
                    self.remove(inside)
                live["metadata"]["deletionTimestamp"] = now()
                live["status"] = {"phase": "Terminating"}
                self.gone_at[path] = time.monotonic() + NAMESPACE_GONE_AFTER
            return live
        self.remove(path)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": where.name, "kind": where.plural}}

    def remove(self, path: str) -> None:
        self.objects.pop(path, None)
        self.applied.pop(path, None)
        self.owner.pop(path, None)
        for pod in [p for p, o in self.owner.items() if o == path]:  # the garbage collector's part
            self.remove(pod)

    def finish_deletions(self) -> None:
        for path, at in list(self.gone_at.items()):
            if time.monotonic() >= at:
                del self.gone_at[path]
                self.remove(path)

    def apply(self, where: Where, body: Any, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """Server-side apply of `body` by the query's fieldManager: (201 or 200, the live object)."""
        manager, force = query.get("fieldManager", ""), query.get("force") == "true"
        if not manager:
            raise ApiFailure(400, "BadRequest", "PATCH with application/apply-patch+yaml requires fieldManager")
        if not isinstance(body, dict):
            raise ApiFailure(400, "BadRequest", "the apply configuration is not an object")
        meta = body.get("metadata") or {}
        if (body.get("apiVersion"), body.get("kind")) != (where.api_version, where.kind):
            raise ApiFailure(400, "BadRequest", f"{body.get('apiVersion')} {body.get('kind')} applied to "
                             f"{where.api_version} {where.plural}")
        if meta.get("name") != where.name or (meta.get("namespace") or "") != where.namespace:
            raise ApiFailure(400, "BadRequest", "the name or namespace of the body does not match the URL")
        if where.namespace:
            space = self.objects.get(namespace_path(where.namespace))
            if space is None:
                raise ApiFailure(404, "NotFound", f'namespaces "{where.namespace}" not found')
            if namespace_path(where.namespace) in self.gone_at:
                raise ApiFailure(403, "Forbidden", f'{where.plural} "{where.name}" is forbidden: unable to create '
                                 f"new content in namespace {where.namespace} because it is being terminated")
        path = object_path(where)
        old = self.objects.get(path)
        if where.kind == "Namespace" and path in self.gone_at:
            raise ApiFailure(409, "Conflict", f"namespace {where.name} is being terminated")
        configs = dict(self.applied.get(path, {}))
        mine = leaves({k: v for k, v in body.items() if k not in ("apiVersion", "kind")})
        for other, config in configs.items():
            if other == manager or force:
                continue
            theirs = leaves({k: v for k, v in config.items() if k not in ("apiVersion", "kind")})
            clashes = [p for p, v in mine.items() if p in theirs and theirs[p] != v and p[:2] != ("metadata", "name")
                       and p[:2] != ("metadata", "namespace")]
            if clashes:
                field_list = ", ".join("." + ".".join(p) for p in clashes)
                raise ApiFailure(409, "Conflict", f'Apply failed with {len(clashes)} conflict(s): conflict with '
                                 f'"{other}": {field_list}')
        if force:
            for other, config in list(configs.items()):  # forced: the others lose the fields it takes
                if other != manager:
                    configs[other] = _without(config, set(mine))
        configs[manager] = body
        result: dict[str, Any] = {}
        for config in configs.values():
            result = merged(result, config)
        if where.kind == "Secret" and "stringData" in result:
            data = dict(result.get("data") or {})
            data.update({k: base64.b64encode(str(v).encode()).decode() for k, v in result.pop("stringData").items()})
            result["data"] = data
        validate(result)
        if old is not None:
            check_immutable(where, old, result)
        old_meta = (old or {}).get("metadata", {})
        uid = old_meta.get("uid") or f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-fake"
        result = defaulted(where, result, old, uid)
        old_spec = {k: v for k, v in (old or {}).items() if k not in ("apiVersion", "kind", "metadata", "status")}
        new_spec = {k: v for k, v in result.items() if k not in ("apiVersion", "kind", "metadata", "status")}
        generation = int(old_meta.get("generation", 0))
        if old is None or _without_defaults(old_spec) != _without_defaults(new_spec):
            generation += 1
        self.version += 1
        result["metadata"] = {**result["metadata"], "uid": uid,
                              "resourceVersion": str(self.version),
                              "creationTimestamp": old_meta.get("creationTimestamp") or now(),
                              "generation": generation,
                              "managedFields": managed_fields(configs, where.kind)}
        if old is not None and "status" in old:
            result["status"] = old["status"]
        if where.kind == "Namespace":
            result["status"] = {"phase": "Active"}
        self.applied[path] = configs
        self.put(path, result)
        if where.kind in CONTROLLED and (old is None or generation != int(old_meta.get("generation", 0))):
            self.work.put((where.kind, path))
        return (201 if old is None else 200), result


def validate(obj: dict[str, Any]) -> None:
    """422 for an object the Kubernetes schema refuses (a no-op without kubernetes-validate)."""
    if kubernetes_validate is None or obj.get("apiVersion", "").startswith("postgresql.cnpg.io/"):
        return  # a custom resource: its CRD's schema is not Kubernetes' own
    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        name = obj.get("metadata", {}).get("name")
        raise ApiFailure(422, "Invalid", f'{obj.get("kind")} "{name}" is invalid: {exc.message}') from None


def check_immutable(where: Where, old: dict[str, Any], new: dict[str, Any]) -> None:
    """422 for a change to an immutable Secret's or ConfigMap's data, or to a Job's pod template."""
    name = where.name
    if where.kind in ("Secret", "ConfigMap") and old.get("immutable") and \
            (old.get("data") != new.get("data") or not new.get("immutable")):
        raise ApiFailure(422, "Invalid", f'{where.kind} "{name}" is invalid: data: Forbidden: field is '
                         "immutable when `immutable` is set")
    if where.kind == "Job":
        before = _without_defaults(old["spec"].get("template"))
        after = _without_defaults(new["spec"].get("template"))
        for template in (before, after):  # what the API server adds itself
            for key in ("controller-uid", "batch.kubernetes.io/controller-uid", "job-name",
                        "batch.kubernetes.io/job-name"):
                template.get("metadata", {}).get("labels", {}).pop(key, None)
        if before != after:
            raise ApiFailure(422, "Invalid", f'Job.batch "{name}" is invalid: spec.template: Invalid value: '
                             "field is immutable")


def defaulted(where: Where, obj: dict[str, Any], old: dict[str, Any] | None, uid: str) -> dict[str, Any]:
    """What the API server adds: defaults, canonical quantities, a Job's selector labels."""
    obj = copy.deepcopy(obj)
    obj["metadata"].setdefault("labels", obj["metadata"].get("labels") or {})
    if not obj["metadata"]["labels"]:
        del obj["metadata"]["labels"]
    if where.kind == "Namespace":
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = where.name
        obj["spec"] = {"finalizers": ["kubernetes"]}
    if where.kind == "Service":
        address = (old or {}).get("spec", {}).get("clusterIP") or \
            f"10.96.{secrets.randbelow(250)}.{secrets.randbelow(250) + 2}"
        obj["spec"] = {**obj["spec"], "clusterIP": address, "clusterIPs": [address], "sessionAffinity": "None",
                       "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                       "internalTrafficPolicy": "Cluster"}
    template = obj.get("spec", {}).get("template")
    if isinstance(template, dict):
        spec = template.setdefault("spec", {})
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            container.setdefault("terminationMessagePath", "/dev/termination-log")
            container.setdefault("terminationMessagePolicy", "File")
            for bound in ("requests", "limits"):
                amounts = container.get("resources", {}).get(bound)
                if isinstance(amounts, dict):
                    container["resources"][bound] = {k: canonical(v) for k, v in amounts.items()}
        if where.kind == "Job":
            labels = {"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": where.name,
                      "controller-uid": uid, "job-name": where.name}
            template.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
            obj["spec"].setdefault("selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
            obj["spec"].setdefault("completions", 1)
            obj["spec"].setdefault("parallelism", 1)
    return obj


def managed_fields(configs: dict[str, dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """An object's managedFields: one Apply entry per field manager, and the controllers' status entry."""
    entries = []
    for manager, config in configs.items():
        owned = {k: v for k, v in config.items() if k not in ("apiVersion", "kind", "metadata")}
        owned["metadata"] = {k: v for k, v in (config.get("metadata") or {}).items()
                             if k in ("labels", "annotations")}
        entries.append({"manager": manager, "operation": "Apply", "apiVersion": config["apiVersion"],
                        "time": now(), "fieldsType": "FieldsV1", "fieldsV1": fields_v1(owned)})
    if kind in ("Deployment", "Job", "Pod", "Namespace"):
        entries.append({"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                        "time": now(), "fieldsType": "FieldsV1", "fieldsV1": {"f:status": {}},
                        "subresource": "status"})
    return entries


def namespace_object(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "uid": f"{name}-uid", "resourceVersion": "1", "creationTimestamp": now(),
                         "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def _without(config: dict[str, Any], taken: set[tuple[str, ...]]) -> dict[str, Any]:
    """An apply configuration less the fields another manager took by force."""
    kept: dict[str, Any] = {}
    for path, value in leaves(config).items():
        if path in taken and path[:2] not in (("metadata", "name"), ("metadata", "namespace")):
            continue
        at = kept
        for key in path[:-1]:
            at = at.setdefault(key, {})
        if path:
            at[path[-1]] = value
    return kept


def _without_defaults(obj: Any) -> Any:
    """For comparing specs: what the fake's defaulting adds is not a change."""
    obj = copy.deepcopy(obj) if obj is not None else {}
    template = obj.get("template") if isinstance(obj, dict) else None
    for spec in (obj, template.get("spec") if isinstance(template, dict) else None):
        if not isinstance(spec, dict):
            continue
        spec.pop("dnsPolicy", None)
        spec.pop("schedulerName", None)
        for container in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            container.pop("terminationMessagePath", None)
            container.pop("terminationMessagePolicy", None)
            for bound in ("requests", "limits"):
                amounts = container.get("resources", {}).get(bound)
                if isinstance(amounts, dict):
                    container["resources"][bound] = {k: canonical(v) for k, v in amounts.items()}
    return obj
