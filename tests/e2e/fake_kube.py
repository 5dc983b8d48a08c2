"""A fake Kubernetes API server on loopback, for driving `shipyard up --backend kubernetes` end to end where no
cluster is reachable.

It is a real HTTP server (plain HTTP on 127.0.0.1, a bearer token), so the platform talks to it through its
own lightkube client, from its own process, exactly as to a cluster. It implements what cluster.py calls:

- GET of an object, and LIST of a namespaced collection with an equality `labelSelector`;
- server-side apply (PATCH application/apply-patch+yaml with a fieldManager): each manager's last applied
  configuration is kept, the live object is their merge (so a partial apply by `shipyard-restart` adds to what
  `shipyard` applied, and a field a manager stops applying goes away), with managedFields per manager, a
  generation bumped when anything but metadata changes, a Secret's stringData stored as base64 `data`, the
  server's usual defaults and canonical quantities, conflicts between managers (409), immutable Secrets and Job
  templates (422), objects checked against the Kubernetes schema (422, with kubernetes-validate), and no
  object in a namespace that does not exist (404) or is being deleted (403);
- DELETE (a Deployment takes its pods along; a Namespace takes everything in it and is gone a moment later);
- a pod's log (`tailLines`; `follow` returns what there is and ends), refused for a container that never ran;
  a container's termination message is empty unless its terminationMessagePolicy says FallbackToLogsOnError,
  so what a failed container printed reaches the platform only through its log, as on a cluster;
- 404 (and 401 without the token) as Status objects, as the API writes them.

And it stands in for the controllers and kubelet, on a thread of its own: a Deployment applied gets pods of
its pod template (replacing those of an earlier template) and a rolled-out status; a Job gets one pod, which
logs `fake ran: <command>` and succeeds. Before any pod of a pod template runs, the template's init container
is run as kubelet would run it: its command (the real fetch script) with its environment, values resolved from
the Secrets the platform applied, into a temporary directory: the slug really is downloaded from the
platform's TLS slug server and unpacked. A fetch that fails leaves the pod's init container crash-looping
with its output, as on a cluster, so the platform's rollout fails with the real reason.

Everything is recorded (`requests`, `fetches`) for the test's assertions; `fake_cluster` starts it, writes a
kubeconfig and stops it again, its threads joined and its port closed.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import http.server
import json
import os
import queue
import re
import secrets
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from shipyard.runtime.kubernetes.slug import FETCH_SCRIPT

try:
    import kubernetes_validate
except ImportError:  # the fake then accepts any object (the unit tests check the schemas)
    kubernetes_validate = None

KUBE_VERSION = "1.37"
TOKEN = "fake-cluster-token"
# Groups whose kinds this "cluster" has; others (keda.sh: KEDA is not installed) answer 404, as on a cluster.
GROUPS = {"", "apps", "batch", "networking.k8s.io", "policy", "autoscaling"}
KINDS = {"namespaces": "Namespace", "pods": "Pod", "secrets": "Secret", "serviceaccounts": "ServiceAccount",
         "services": "Service", "deployments": "Deployment", "jobs": "Job", "ingresses": "Ingress",
         "networkpolicies": "NetworkPolicy", "poddisruptionbudgets": "PodDisruptionBudget",
         "horizontalpodautoscalers": "HorizontalPodAutoscaler", "replicasets": "ReplicaSet",
         "configmaps": "ConfigMap", "events": "Event"}
NAMESPACE_GONE_AFTER = 1.0  # seconds a deleted namespace stays Terminating (the platform polls until it is gone)
SUFFIX = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of Kubernetes' generated name suffixes


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


def unliteral(text: str) -> str:
    """What kubelet makes of a command or env value: `$$` is `$` (pods.literal's escaping undone)."""
    return re.sub(r"\$\$", "$", text)


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


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    content_type: str
    status: int = 0
    body: Any = None

    @property
    def manager(self) -> str:
        return self.query.get("fieldManager", "")


@dataclass
class Fetch:
    """One run of a pod template's init container: what it was given and what it left."""

    namespace: str
    url: str
    sha256: str  # SLUG_SHA256 as given ("" if none)
    token: str  # SLUG_TOKEN, from the Secret
    ca: str  # SLUG_CA, from the Secret ("" if none)
    script_is_fetch_script: bool  # the command ran the platform's FETCH_SCRIPT, unchanged
    slug_root: str  # the path the pod mounts the slug at (the command's last argument)
    root: Path  # where it was unpacked here
    returncode: int
    stdout: str
    stderr: str
    unpacked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and {"app", "venv"} <= set(self.unpacked)

    @property
    def verified(self) -> bool:
        """Fetched over HTTPS, the certificate checked against the CA from the Secret, the checksum checked."""
        return self.ok and self.url.startswith("https://") and bool(self.ca) and len(self.sha256) == 64


class ApiFailure(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


def status_object(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


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


def parse(path: str) -> Where | None:
    parts = path.strip("/").split("/")
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if rest[:1] == ["namespaces"] and len(rest) >= 3:
        return Where(group, version, rest[1], rest[2], rest[3] if len(rest) > 3 else "",
                     rest[4] if len(rest) > 4 else "")
    if rest and len(rest) <= 2:
        return Where(group, version, "", rest[0], rest[1] if len(rest) > 1 else "", "")
    return None


def object_path(where: Where) -> str:
    base = f"/api/{where.version}" if not where.group else f"/apis/{where.group}/{where.version}"
    if where.namespace:
        return f"{base}/namespaces/{where.namespace}/{where.plural}/{where.name}"
    return f"{base}/{where.plural}/{where.name}"


def namespace_path(name: str) -> str:
    return f"/api/v1/namespaces/{name}"


def in_namespace(path: str, namespace: str) -> bool:
    return f"/namespaces/{namespace}/" in path


class FakeCluster:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.objects: dict[str, dict[str, Any]] = {}  # path → live object
        self.applied: dict[str, dict[str, dict[str, Any]]] = {}  # path → field manager → its last apply
        self.owner: dict[str, str] = {}  # pod path → the Deployment's or Job's path
        self.logs: dict[tuple[str, str, str], list[str]] = {}  # (namespace, pod, container) → lines
        self.requests: list[Request] = []
        self.fetches: list[Fetch] = []
        self.errors: list[str] = []  # the fake's own failures (a bug in the fake, not in the platform)
        self._fetched: dict[tuple[str, str, str, str], Fetch] = {}
        self._refusals: list[dict[str, Any]] = []
        # Faults a test turns on: the next fetches run with a wrong SLUG_SHA256 (the script must refuse the slug).
        self.tamper_checksum = False
        self._gone_at: dict[str, float] = {}  # namespace path → when its deletion finishes
        self._version = 1000
        self._work: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self.kubeconfig = workdir / "kubeconfig"
        self.port = 0
        self._store(namespace_path("default"), self._namespace_object("default"))

    # Lifecycle

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        fake = self

        class Handler(_Handler):
            cluster = fake

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = False  # every request's thread is joined by server_close
        server.block_on_close = True
        self._server, self.port = server, server.server_address[1]
        self._threads = [threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                          name="fake-kube-api"),
                         threading.Thread(target=self._controllers, name="fake-kube-kubelet")]
        for thread in self._threads:
            thread.start()
        self.kubeconfig.write_text(json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            "users": [{"name": "fake", "user": {"token": TOKEN}}]}))

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()  # joins the request threads
            self._server = None
        self._work.put(None)
        for thread in self._threads:
            thread.join(timeout=60)
        alive = [t.name for t in self._threads if t.is_alive()]
        self._threads = []
        assert not alive, f"the fake cluster's threads did not stop: {alive}"

    # What tests read

    def get(self, path: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.objects.get(path)
            return copy.deepcopy(found) if found is not None else None

    def find(self, kind: str, namespace: str = "", **labels: str) -> list[dict[str, Any]]:
        """Live objects of a kind (in a namespace) with those labels (keys with dots: pass `**{...}`)."""
        with self.lock:
            return [copy.deepcopy(o) for p, o in sorted(self.objects.items())
                    if o.get("kind") == kind and (not namespace or o["metadata"].get("namespace") == namespace)
                    and all(o["metadata"].get("labels", {}).get(k) == v for k, v in labels.items())]

    def pods(self, namespace: str, selector: dict[str, str] | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(o) for p, o in sorted(self.objects.items())
                    if o.get("kind") == "Pod" and o["metadata"].get("namespace") == namespace
                    and all(o["metadata"].get("labels", {}).get(k) == v for k, v in (selector or {}).items())]

    def namespaces(self) -> list[str]:
        with self.lock:
            return sorted(o["metadata"]["name"] for o in self.objects.values() if o.get("kind") == "Namespace")

    def refuse(self, method: str, path_end: str, selector: dict[str, str], code: int = 401, times: int = 1) -> None:
        """Answer the next `times` requests of `method` to a path ending in `path_end` with that label
        selector with `code`, as an API server whose credentials check or admission fails for a while."""
        reasons = {401: "Unauthorized", 403: "Forbidden", 429: "TooManyRequests", 500: "InternalError"}
        with self.lock:
            self._refusals.append({"method": method, "path_end": path_end, "selector": dict(selector),
                                   "code": code, "reason": reasons.get(code, "Failure"), "left": times})

    @property
    def refusals_left(self) -> int:
        with self.lock:
            return sum(r["left"] for r in self._refusals)

    def reads(self, path_end: str, selector: dict[str, str]) -> list[Request]:
        """The LISTs of a collection (path ending in `path_end`) with exactly that label selector."""
        with self.lock:
            return [r for r in self.requests if r.method == "GET" and r.path.endswith(path_end)
                    and dict(t.split("=", 1) for t in r.query.get("labelSelector", "").split(",") if "=" in t)
                    == selector]

    def calls(self, method: str = "", contains: str = "") -> list[Request]:
        with self.lock:
            return [r for r in self.requests if (not method or r.method == method) and contains in r.path]

    # The API

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        split = urlsplit(raw_path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        record = Request(method, split.path, query, headers.get("content-type", ""))
        with self.lock:
            self.requests.append(record)
        try:
            if headers.get("authorization") != f"Bearer {TOKEN}":
                raise ApiFailure(401, "Unauthorized", "Unauthorized")
            self._refused(method, split.path, query)
            code, content_type, payload = self._route(method, split.path, query, record, body)
        except ApiFailure as failure:
            code, content_type = failure.code, "application/json"
            payload = json.dumps(status_object(failure.code, failure.reason, failure.message)).encode()
        except Exception:  # noqa: BLE001 - the fake's own bug: said to the client as a 500, kept for the test
            text = traceback.format_exc()
            with self.lock:
                self.errors.append(f"{method} {raw_path}: {text}")
            code, content_type = 500, "application/json"
            payload = json.dumps(status_object(500, "InternalError", text.splitlines()[-1])).encode()
        record.status = code
        return code, content_type, payload

    def _refused(self, method: str, path: str, query: dict[str, str]) -> None:
        with self.lock:
            selector = dict(term.split("=", 1) for term in query.get("labelSelector", "").split(",") if "=" in term)
            for refusal in self._refusals:
                if refusal["left"] > 0 and refusal["method"] == method and path.endswith(refusal["path_end"]) \
                        and refusal["selector"] == selector:
                    refusal["left"] -= 1
                    raise ApiFailure(refusal["code"], refusal["reason"], f"refused by the test ({refusal['code']})")

    def _route(self, method: str, path: str, query: dict[str, str], record: Request,
               body: bytes) -> tuple[int, str, bytes]:
        where = parse(path)
        if where is None or where.group not in GROUPS or not where.kind:
            raise ApiFailure(404, "NotFound", "the server could not find the requested resource")
        with self.lock:
            self._finish_deletions()
            if method == "GET" and where.sub == "log" and where.plural == "pods":
                return 200, "text/plain", self._log(where, query).encode()
            if where.sub:
                raise ApiFailure(404, "NotFound", "the server could not find the requested resource")
            if method == "GET" and not where.name:
                return 200, "application/json", json.dumps(self._list(where, query)).encode()
            if method == "GET":
                return 200, "application/json", json.dumps(self._get(where)).encode()
            if method == "PATCH":
                if record.content_type.split(";")[0].strip() != "application/apply-patch+yaml":
                    raise ApiFailure(415, "UnsupportedMediaType",
                                     f"the fake supports server-side apply only, not {record.content_type}")
                text = body.decode()
                try:
                    applied = json.loads(text)  # what lightkube sends (JSON is YAML too)
                except ValueError:
                    import yaml  # lightkube's own dependency
                    applied = yaml.safe_load(text)
                record.body = applied
                code, live = self._apply(where, applied, query)
                return code, "application/json", json.dumps(live).encode()
            if method == "DELETE" and where.name:
                return 200, "application/json", json.dumps(self._delete(where)).encode()
        raise ApiFailure(405, "MethodNotAllowed", f"the fake does not implement {method} {path}")

    def _get(self, where: Where) -> dict[str, Any]:
        live = self.objects.get(object_path(where))
        if live is None:
            raise ApiFailure(404, "NotFound", f'{where.plural} "{where.name}" not found')
        return live

    def _list(self, where: Where, query: dict[str, str]) -> dict[str, Any]:
        if not where.namespace:
            raise ApiFailure(405, "MethodNotAllowed", "the fake lists namespaced collections only")
        selector: dict[str, str] = {}
        for term in filter(None, query.get("labelSelector", "").split(",")):
            key, equals, value = term.partition("=")
            if not equals or key.endswith("!"):
                raise ApiFailure(400, "BadRequest", f"the fake supports equality selectors only: {term}")
            selector[key.strip()] = value.lstrip("=").strip()
        prefix = object_path(Where(where.group, where.version, where.namespace, where.plural, "", ""))
        items = []
        for path, obj in sorted(self.objects.items()):
            if path.rsplit("/", 1)[0] + "/" == prefix and \
                    all(obj["metadata"].get("labels", {}).get(k) == v for k, v in selector.items()):
                items.append({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")})
        return {"kind": f"{where.kind}List", "apiVersion": where.api_version,
                "metadata": {"resourceVersion": str(self._version)}, "items": items}

    def _log(self, where: Where, query: dict[str, str]) -> str:
        pod = self._get(Where("", "v1", where.namespace, "pods", where.name, ""))
        containers = [c["name"] for c in pod["spec"].get("containers", [])]
        inits = [c["name"] for c in pod["spec"].get("initContainers", [])]
        container = query.get("container") or ""
        if not container:
            if len(containers) != 1:
                raise ApiFailure(400, "BadRequest", f"a container name must be specified for pod {where.name}, "
                                 f"choose one of: {containers} or one of the init containers: {inits}")
            container = containers[0]
        if container not in containers + inits:
            raise ApiFailure(400, "BadRequest", f"container {container} is not valid for pod {where.name}")
        statuses = [*pod.get("status", {}).get("initContainerStatuses", []),
                    *pod.get("status", {}).get("containerStatuses", [])]
        status = next((s for s in statuses if s["name"] == container), {})
        state = status.get("state", {})
        if "waiting" in state and "terminated" not in status.get("lastState", {}):  # it never ran yet
            raise ApiFailure(400, "BadRequest", f'container "{container}" in pod "{where.name}" is waiting to '
                             f"start: {state['waiting'].get('reason', 'ContainerCreating')}")
        lines = self.logs.get((where.namespace, where.name, container), [])
        tail = query.get("tailLines", "")
        if tail.isdigit():
            lines = lines[-int(tail):] if int(tail) else []
        # `follow`: what there is, then the end (as a container that has stopped writing and exited).
        return "".join(f"{line}\n" for line in lines)

    def _delete(self, where: Where) -> dict[str, Any]:
        path = object_path(where)
        live = self._get(where)
        if where.kind == "Namespace":
            if path not in self._gone_at:
                for inside in [p for p in self.objects if in_namespace(p, where.name)]:
                    self._remove(inside)
                live["metadata"]["deletionTimestamp"] = now()
                live["status"] = {"phase": "Terminating"}
                self._gone_at[path] = time.monotonic() + NAMESPACE_GONE_AFTER
            return live
        self._remove(path)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": where.name, "kind": where.plural}}

    def _remove(self, path: str) -> None:
        self.objects.pop(path, None)
        self.applied.pop(path, None)
        self.owner.pop(path, None)
        for pod in [p for p, o in self.owner.items() if o == path]:  # the garbage collector's part
            self._remove(pod)

    def _finish_deletions(self) -> None:
        for path, at in list(self._gone_at.items()):
            if time.monotonic() >= at:
                del self._gone_at[path]
                self._remove(path)

    # Server-side apply

    def _apply(self, where: Where, body: Any, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
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
            if namespace_path(where.namespace) in self._gone_at:
                raise ApiFailure(403, "Forbidden", f'{where.plural} "{where.name}" is forbidden: unable to create '
                                 f"new content in namespace {where.namespace} because it is being terminated")
        path = object_path(where)
        old = self.objects.get(path)
        if where.kind == "Namespace" and path in self._gone_at:
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
        self._validate(result)
        if old is not None:
            self._check_immutable(where, old, result)
        old_meta = (old or {}).get("metadata", {})
        uid = old_meta.get("uid") or f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-fake"
        result = self._defaulted(where, result, old, uid)
        old_spec = {k: v for k, v in (old or {}).items() if k not in ("apiVersion", "kind", "metadata", "status")}
        new_spec = {k: v for k, v in result.items() if k not in ("apiVersion", "kind", "metadata", "status")}
        generation = int(old_meta.get("generation", 0))
        if old is None or _without_defaults(old_spec) != _without_defaults(new_spec):
            generation += 1
        self._version += 1
        result["metadata"] = {**result["metadata"], "uid": uid,
                              "resourceVersion": str(self._version),
                              "creationTimestamp": old_meta.get("creationTimestamp") or now(),
                              "generation": generation,
                              "managedFields": self._managed_fields(configs, where.kind)}
        if old is not None and "status" in old:
            result["status"] = old["status"]
        if where.kind == "Namespace":
            result["status"] = {"phase": "Active"}
        self.applied[path] = configs
        self._store(path, result)
        if where.kind in ("Deployment", "Job") and (old is None or generation != int(old_meta.get("generation", 0))):
            self._work.put((where.kind, path))
        return (201 if old is None else 200), result

    def _validate(self, obj: dict[str, Any]) -> None:
        if kubernetes_validate is None:
            return
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            name = obj.get("metadata", {}).get("name")
            raise ApiFailure(422, "Invalid", f'{obj.get("kind")} "{name}" is invalid: {exc.message}') from None

    def _check_immutable(self, where: Where, old: dict[str, Any], new: dict[str, Any]) -> None:
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

    def _defaulted(self, where: Where, obj: dict[str, Any], old: dict[str, Any] | None,
                   uid: str) -> dict[str, Any]:
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

    def _managed_fields(self, configs: dict[str, dict[str, Any]], kind: str) -> list[dict[str, Any]]:
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

    def _store(self, path: str, obj: dict[str, Any]) -> None:
        with self.lock:
            self.objects[path] = obj

    @staticmethod
    def _namespace_object(name: str) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "uid": f"{name}-uid", "resourceVersion": "1", "creationTimestamp": now(),
                             "labels": {"kubernetes.io/metadata.name": name}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}

    # The controllers and kubelet

    def _controllers(self) -> None:
        while True:
            item = self._work.get()
            if item is None:
                return
            kind, path = item
            try:
                if kind == "Deployment":
                    self._roll_out(path)
                else:
                    self._run_job(path)
            except Exception:  # noqa: BLE001 - kept for the test: the fake's own bug
                with self.lock:
                    self.errors.append(f"{kind} {path}: {traceback.format_exc()}")

    def _roll_out(self, path: str) -> None:
        with self.lock:
            deployment = copy.deepcopy(self.objects.get(path))
        if deployment is None:
            return
        generation = deployment["metadata"]["generation"]
        namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        template = deployment["spec"]["template"]
        replicas = int(deployment["spec"].get("replicas", 1))
        template_hash = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        fetched = self._fetch(namespace, template) if replicas > 0 else None
        with self.lock:
            live = self.objects.get(path)
            if live is None or live["metadata"]["generation"] != generation:
                return  # changed meanwhile: its own turn comes
            mine = {p: o for p, o in self.objects.items() if self.owner.get(p) == path}
            current = [p for p, o in mine.items() if o["metadata"]["labels"].get("pod-template-hash") == template_hash]
            if fetched is not None and not fetched.ok:
                # The new pod's init container fails; the old pods keep serving (maxUnavailable 0).
                if not current:
                    self._new_pod(path, namespace, f"{name}-{template_hash}", template, template_hash, fetched)
                total = len(mine) + (0 if current else 1)
                old_ready = len(mine) - len(current)
                live["status"] = _counts(generation, total, 0, old_ready, old_ready) | {"conditions": [
                    {"type": "Available", "status": "True" if old_ready else "False",
                     "reason": "MinimumReplicasAvailable"},
                    {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]}
                return
            for pod in mine:
                if pod not in current:
                    self._remove(pod)
            for pod in current[replicas:]:
                self._remove(pod)
            for _ in range(replicas - len(current)):
                self._new_pod(path, namespace, f"{name}-{template_hash}", template, template_hash, fetched)
            live["status"] = _counts(generation, replicas, replicas, replicas, replicas) | {"conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                 "lastTransitionTime": now(), "lastUpdateTime": now()},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": f'ReplicaSet "{name}-{template_hash}" has successfully progressed.',
                 "lastTransitionTime": now(), "lastUpdateTime": now()}]}

    def _run_job(self, path: str) -> None:
        with self.lock:
            job = copy.deepcopy(self.objects.get(path))
        if job is None or job.get("status"):
            return
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        template = job["spec"]["template"]
        fetched = self._fetch(namespace, template)
        with self.lock:
            live = self.objects.get(path)
            if live is None:
                return
            self._new_pod(path, namespace, name, template, "", fetched, job=name)
            if fetched.ok and not exit_code(template):
                live["status"] = {"succeeded": 1, "ready": 0, "terminating": 0, "startTime": now(),
                                  "completionTime": now(), "conditions": [
                                      {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": now()},
                                      {"type": "Complete", "status": "True", "lastTransitionTime": now()}]}
            else:
                live["status"] = {"failed": 1, "startTime": now(), "conditions": [
                    {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                     "message": "Job has reached the specified backoff limit", "lastTransitionTime": now()}]}

    def _new_pod(self, owner: str, namespace: str, prefix: str, template: dict[str, Any], template_hash: str,
                 fetched: Fetch | None, job: str = "") -> str:
        name = f"{prefix}-{''.join(secrets.choice(SUFFIX) for _ in range(5))}"
        labels = dict(template.get("metadata", {}).get("labels", {}))
        if template_hash:
            labels["pod-template-hash"] = template_hash
        if job:
            labels |= {"job-name": job, "batch.kubernetes.io/job-name": job}
        spec = copy.deepcopy(template["spec"])
        spec["nodeName"] = "fake-node"
        image = spec["containers"][0].get("image", "")
        started = now()

        def status_of(container: str, state: dict[str, Any], ready: bool, restarts: int = 0,
                      last: dict[str, Any] | None = None) -> dict[str, Any]:
            found = {"name": container, "image": image, "imageID": f"docker.io/library/{image}@sha256:{'0' * 64}",
                     "containerID": f"containerd://{secrets.token_hex(16)}", "ready": ready,
                     "restartCount": restarts, "started": "running" in state, "state": state}
            if last:
                found["lastState"] = {"terminated": last}
            return found

        init = spec.get("initContainers", [])
        main = spec["containers"][0]["name"]
        command = unliteral(spec["containers"][0].get("command", [""])[-1])
        conditions = [{"type": "PodScheduled", "status": "True", "lastTransitionTime": started}]
        if fetched is not None and not fetched.ok:
            output = (fetched.stderr + fetched.stdout).splitlines()
            ended = {"exitCode": fetched.returncode or 1, "reason": "Error", "startedAt": started,
                     "finishedAt": now(), **termination_message(init[0] if init else {}, output)}
            if job:  # restartPolicy Never: the init container ended once, and so did the pod
                init_statuses = [status_of(c["name"], {"terminated": ended}, False) for c in init]
            else:  # kubelet restarts it, backing off
                init_statuses = [status_of(c["name"], {"waiting": {"reason": "CrashLoopBackOff", "message":
                                                                   f"back-off 10s restarting failed container="
                                                                   f"{c['name']} pod={name}"}}, False, 1, ended)
                                 for c in init]
            statuses = [status_of(main, {"waiting": {"reason": "PodInitializing"}}, False)]
            phase = "Failed" if job else "Pending"
            conditions += [{"type": "Initialized", "status": "False", "lastTransitionTime": started},
                           {"type": "Ready", "status": "False", "lastTransitionTime": started}]
            self.logs[(namespace, name, init[0]["name"] if init else main)] = output
        else:
            done = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": now()}}
            init_statuses = [status_of(c["name"], done, True) for c in init]
            if job:
                code = exit_code(template)
                lines = [f"fake ran: {command}"]
                ended = {"exitCode": code, "reason": "Error" if code else "Completed", "startedAt": started,
                         "finishedAt": now(), **(termination_message(spec["containers"][0], lines) if code else {})}
                statuses = [status_of(main, {"terminated": ended}, False)]
                phase = "Failed" if code else "Succeeded"
                conditions += [{"type": "Initialized", "status": "True", "lastTransitionTime": started},
                               {"type": "Ready", "status": "False", "reason": "PodCompleted",
                                "lastTransitionTime": now()}]
                self.logs[(namespace, name, main)] = lines
            else:
                statuses = [status_of(main, {"running": {"startedAt": started}}, True)]
                phase = "Running"
                conditions += [{"type": "Initialized", "status": "True", "lastTransitionTime": started},
                               {"type": "ContainersReady", "status": "True", "lastTransitionTime": started},
                               {"type": "Ready", "status": "True", "lastTransitionTime": started}]
                self.logs[(namespace, name, main)] = [f"fake pod {name} runs: {command}"]
            if init:
                self.logs[(namespace, name, init[0]["name"])] = []
        self._version += 1
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": namespace, "uid": f"{secrets.token_hex(4)}-pod",
                            "resourceVersion": str(self._version), "creationTimestamp": started, "labels": labels,
                            "annotations": dict(template.get("metadata", {}).get("annotations", {}))},
               "spec": spec,
               "status": {"phase": phase, "hostIP": "10.0.0.2", "podIP": f"10.244.0.{secrets.randbelow(250) + 2}",
                          "startTime": started, "qosClass": "Guaranteed", "conditions": conditions,
                          "initContainerStatuses": init_statuses, "containerStatuses": statuses}}
        path = f"/api/v1/namespaces/{namespace}/pods/{name}"
        self._store(path, pod)
        self.owner[path] = owner
        return path

    def _fetch(self, namespace: str, template: dict[str, Any]) -> Fetch:
        """The pod template's init container, as kubelet runs it: its command, its env (Secrets resolved)."""
        spec = template["spec"]
        init = next((c for c in spec.get("initContainers", []) if c["name"] == "fetch-slug"), None)
        assert init is not None, f"a pod template without the fetch-slug init container: {spec}"
        env: dict[str, str] = {}
        missing = ""
        with self.lock:
            for item in init.get("env", []):
                if "value" in item:
                    env[item["name"]] = unliteral(item["value"])
                    continue
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                assert ref, f"an env source the fake does not know: {item}"
                secret = self.objects.get(f"/api/v1/namespaces/{namespace}/secrets/{ref['name']}")
                data = (secret or {}).get("data", {})
                if ref["key"] in data:
                    env[item["name"]] = base64.b64decode(data[ref["key"]]).decode()
                elif not ref.get("optional"):
                    missing = f"secret \"{ref['name']}\" (key {ref['key']}) not found"
        command = [unliteral(part) for part in init.get("command", [])]
        url, sha = env.get("SLUG_URL", ""), env.get("SLUG_SHA256", "")
        key = (namespace, url, sha, env.get("SLUG_TOKEN", ""))
        with self.lock:
            if key in self._fetched and self._fetched[key].ok:
                return self._fetched[key]
            root = self.workdir / "kubelet" / f"{namespace}-{len(self.fetches) + 1}"
        root.mkdir(parents=True)
        if self.tamper_checksum:
            sha = env["SLUG_SHA256"] = "0" * 64
        if missing:
            done = subprocess.CompletedProcess(command, 1, "", f"CreateContainerConfigError: {missing}")
        else:
            assert command[:2] == ["python3", "-c"] and len(command) == 4, f"an unexpected fetch command: {command}"
            done = subprocess.run([sys.executable, "-c", command[2], str(root)],
                                  env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
                                  capture_output=True, text=True, timeout=180, check=False)
        fetched = Fetch(namespace=namespace, url=url, sha256=sha, token=env.get("SLUG_TOKEN", ""),
                        ca=env.get("SLUG_CA", ""), script_is_fetch_script=len(command) > 2 and
                        command[2] == FETCH_SCRIPT, slug_root=command[-1] if command else "", root=root,
                        returncode=done.returncode, stdout=done.stdout, stderr=done.stderr,
                        unpacked=sorted(p.name for p in root.iterdir()))
        with self.lock:
            self.fetches.append(fetched)
            self._fetched[key] = fetched
        return fetched


def termination_message(container: dict[str, Any], output: list[str]) -> dict[str, str]:
    """A terminated container's `message`: with the default terminationMessagePolicy (File) what the process
    wrote to /dev/termination-log (these write nothing), with FallbackToLogsOnError its log's last lines."""
    if container.get("terminationMessagePolicy") == "FallbackToLogsOnError":
        return {"message": "\n".join(output[-80:])}
    return {}


def exit_code(template: dict[str, Any]) -> int:
    """What a Job's command exits with here: N for `exit N`, else 0."""
    command = unliteral(template["spec"]["containers"][0].get("command", [""])[-1]).strip()
    found = re.fullmatch(r"exit (\d+)", command)
    return int(found[1]) if found else 0


def _counts(generation: int, total: int, updated: int, ready: int, available: int) -> dict[str, Any]:
    """A DeploymentStatus: the API omits counts that are zero."""
    status = {"observedGeneration": generation, "replicas": total, "updatedReplicas": updated,
              "readyReplicas": ready, "availableReplicas": available,
              "unavailableReplicas": max(0, total - available)}
    return {k: v for k, v in status.items() if v or k == "observedGeneration"}


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


class _Handler(http.server.BaseHTTPRequestHandler):
    cluster: FakeCluster
    timeout = 30  # a connection that sends nothing does not hold the server's stop up for long
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers when the server stops

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        code, content_type, payload = self.cluster.handle(self.command, self.path, headers, body)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_PATCH = do_DELETE = do_POST = do_PUT = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass  # every request is in cluster.requests


@contextmanager
def fake_cluster(tmp_path: Path) -> Iterator[FakeCluster]:
    """A fake cluster on a free loopback port, with a kubeconfig for it at `.kubeconfig`; stopped at the end."""
    cluster = FakeCluster(tmp_path / "fake-kube")
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
