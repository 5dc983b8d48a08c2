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

This module is the HTTP side and what the tests read; the objects and server-side apply are
fake_kube_store.py's (`Store`), the controllers and kubelet fake_kubelet.py's (`Kubelet`).
"""

from __future__ import annotations

import copy
import http.server
import json
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import fake_cnpg
from .fake_kube_store import ApiFailure, Store, Where, object_path
from .fake_kubelet import Fetch, Kubelet

__all__ = ["FakeCluster", "Fetch", "Request", "fake_cluster"]

TOKEN = "fake-cluster-token"
# Groups whose kinds this "cluster" has; others (keda.sh: KEDA is not installed) answer 404, as on a cluster.
GROUPS = {"", "apps", "batch", "networking.k8s.io", "policy", "autoscaling"}


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


def status_object(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


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


class FakeCluster:
    def __init__(self, workdir: Path, cloudnative_pg: bool = False) -> None:
        self.workdir = workdir
        # CloudNativePG's kinds are served (and its operator acts on them: fake_cnpg.py) only where "installed".
        self.groups = GROUPS | ({fake_cnpg.GROUP} if cloudnative_pg else set())
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.store = Store()
        self.errors: list[str] = []  # the fake's own failures (a bug in the fake, not in the platform)
        self.kubelet = Kubelet(self.store, workdir, self.errors)
        # The store's state, by the names the fake has always had (the same objects, not copies).
        self.lock = self.store.lock
        self.objects = self.store.objects  # path → live object
        self.applied = self.store.applied  # path → field manager → its last apply
        self.owner = self.store.owner  # pod path → the Deployment's or Job's path
        self.logs = self.store.logs  # (namespace, pod, container) → lines
        self.requests: list[Request] = []
        self.fetches: list[Fetch] = self.kubelet.fetches
        self._refusals: list[dict[str, Any]] = []
        self._server: http.server.ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self.kubeconfig = workdir / "kubeconfig"
        self.port = 0

    @property
    def tamper_checksum(self) -> bool:
        """A fault a test turns on: the next fetches run with a wrong SLUG_SHA256 (the script must refuse it)."""
        return self.kubelet.tamper_checksum

    @tamper_checksum.setter
    def tamper_checksum(self, value: bool) -> None:
        self.kubelet.tamper_checksum = value

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
                         threading.Thread(target=self.kubelet.run, name="fake-kube-kubelet")]
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
        self.kubelet.stop()
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
        if where is None or where.group not in self.groups or not where.kind:
            raise ApiFailure(404, "NotFound", "the server could not find the requested resource")
        with self.lock:
            self.store.finish_deletions()
            if method == "GET" and where.sub == "log" and where.plural == "pods":
                return 200, "text/plain", self._log(where, query).encode()
            if where.sub:
                raise ApiFailure(404, "NotFound", "the server could not find the requested resource")
            if method == "GET" and not where.name:
                return 200, "application/json", json.dumps(self._list(where, query)).encode()
            if method == "GET":
                return 200, "application/json", json.dumps(self.store.get(where)).encode()
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
                code, live = self.store.apply(where, applied, query)
                return code, "application/json", json.dumps(live).encode()
            if method == "DELETE" and where.name:
                return 200, "application/json", json.dumps(self.store.delete(where)).encode()
        raise ApiFailure(405, "MethodNotAllowed", f"the fake does not implement {method} {path}")

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
                "metadata": {"resourceVersion": str(self.store.version)}, "items": items}

    def _log(self, where: Where, query: dict[str, str]) -> str:
        pod = self.store.get(Where("", "v1", where.namespace, "pods", where.name, ""))
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
def fake_cluster(tmp_path: Path, cloudnative_pg: bool = False) -> Iterator[FakeCluster]:
    """A fake cluster on a free loopback port, with a kubeconfig for it at `.kubeconfig`; stopped at the end."""
    cluster = FakeCluster(tmp_path / "fake-kube", cloudnative_pg)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
