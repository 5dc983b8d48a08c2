"""The Kubernetes backend's side effects: applying a release's objects to a real cluster and reading it back.

Everything that decides lives in status.py (is it live, why did it fail, does it need applying) and
objects.py (what to apply); this module only makes the calls, through lightkube:

- server-side apply is one call with a field manager (PATCH `application/apply-patch+yaml`), where the
  official `kubernetes` client needs its dynamic client and a content type of its own;
- it is asyncio-native on httpx, as the control plane is (FastAPI, the local supervisor): following a pod's
  log or polling a rollout takes no thread, where the official client is synchronous (urllib3) and its async
  twin (kubernetes_asyncio) is a separate generated package;
- it is small and pure Python (lightkube, its models, httpx2, msgspec, PyYAML) against the official client's
  google-auth, requests-oauthlib, websocket-client and urllib3;
- its models are typed, yet the renderer's dicts are sent as they are, and every rendered object decodes into
  lightkube's models and back unchanged, so what the API returns is read as the same dicts.

Its limits: no port-forward or proxy subresources (tests use `kubectl port-forward` or the Ingress), no
`auth-provider` kubeconfig users (tokens, client certificates and `exec` plugins work), and of a KUBECONFIG
listing several files only the first that exists is read.

lightkube is the optional `kubernetes` extra (`pip install 'shipyard[kubernetes]'`): this module imports
without it, and `connect` says how to install it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import (Conflict, DeployError, InvalidInput, NotFound, PlatformError, ReleasePhaseFailed,
                             ShipyardError, Unauthorized)
from shipyard.runtime.kubernetes.model import KubeObject, KubeRelease
from shipyard.runtime.kubernetes.names import app_labels
from shipyard.runtime.kubernetes.diff import needs_apply
from shipyard.runtime.kubernetes.status import (FAILED, LIVE, SUCCEEDED, WAITING, InstanceState, Verdict,
                                                instance_states, job_verdict, progress_mark, rollout_verdict)

try:
    import httpx2
    from lightkube import ApiError, AsyncClient, ConfigError, KubeConfig
    from lightkube.core.exceptions import LoadResourceError
    from lightkube.core.resource_registry import resource_registry
    from lightkube.generic_resource import create_namespaced_resource
    from lightkube.types import PatchType
except ImportError as missing:  # the `kubernetes` extra is not installed: connect() says so
    _MISSING: ImportError | None = missing
else:
    _MISSING = None

FIELD_MANAGER = "shipyard"
POLL = 2.0  # seconds between reads of a rollout or Job: a pod's state changes no faster than kubelet reports it
LOG_LINES = 20
# Custom resources the renderer may produce, with their plural names (the API path).
CUSTOM_KINDS = {("keda.sh/v1alpha1", "ScaledObject"): "scaledobjects",
                ("postgresql.cnpg.io/v1", "Cluster"): "clusters", ("postgresql.cnpg.io/v1", "Database"): "databases"}

Say = Callable[[str], Awaitable[None]]  # a line for the deploy log, as rollout.py's `log`


async def quiet(line: str) -> None:
    return None


def _api_failure(exc: ApiError, doing: str) -> ShipyardError:
    status = exc.status
    code, message = status.code or exc.response.status_code, status.message or str(exc)
    if code == 409:
        return Conflict(f"{doing}: fields Shipyard sets are managed by someone else: {message}",
                        hint="Something other than Shipyard (kubectl edit, a controller) changed them. Shipyard does "
                             "not take them over unasked: undo that change, or apply with force=True to take them.")
    if code == 401:
        return Unauthorized(f"{doing}: the cluster did not accept the credentials: {message}",
                            hint="Refresh the credentials in KUBECONFIG (an expired token or certificate).")
    if code == 403:
        return PlatformError(f"{doing}: the cluster refused: {message}",
                             hint="KUBECONFIG's user needs rights (RBAC) on namespaces and on the objects in them.")
    if code == 404:
        return NotFound(f"{doing}: {message}")
    if code in (400, 422):
        return InvalidInput(f"{doing}: the cluster rejected it: {message}",
                            hint="A field that cannot change (a Job's template, an immutable Secret) must be "
                                 "deleted and created again; otherwise the message names the field.")
    return PlatformError(f"{doing}: the Kubernetes API answered {code}: {message}")


@contextlib.contextmanager
def _calling(doing: str) -> Iterator[None]:
    """Turn the client's exceptions into Shipyard's, whose messages the CLI shows as they are."""
    try:
        yield
    except ApiError as exc:
        raise _api_failure(exc, doing) from exc
    except httpx2.HTTPError as exc:
        raise PlatformError(f"{doing}: the Kubernetes API server did not answer ({exc}).",
                            hint="Check that the cluster in KUBECONFIG is up and reachable from here.") from exc


def _kubeconfig_path(explicit: str | None) -> Path | None:
    listed = explicit or os.environ.get("KUBECONFIG", "")
    paths = [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
    return next((p for p in paths if p.is_file()), paths[0] if paths else None)


def connect(kubeconfig: str | None = None, context: str | None = None) -> AsyncClient:
    """A client for the cluster of `kubeconfig` (else KUBECONFIG, else the pod's own service account when
    Shipyard runs inside the cluster, else ~/.kube/config)."""
    if _MISSING is not None:
        raise PlatformError(f"The Kubernetes backend needs the lightkube client ({_MISSING}).",
                            hint="Install Shipyard's `kubernetes` extra: pip install 'shipyard[kubernetes]'.")
    path = _kubeconfig_path(kubeconfig)
    try:
        config = KubeConfig.from_file(path) if path else KubeConfig.from_env()
        return AsyncClient(config.get(context), field_manager=FIELD_MANAGER)
    except (ConfigError, KeyError, OSError) as exc:
        where = path or "the in-cluster service account or ~/.kube/config"
        raise PlatformError(f"Cannot use the Kubernetes configuration from {where}: {exc}",
                            hint="Point KUBECONFIG at a kubeconfig file with a current context.") from exc


def server_of(client: AsyncClient) -> str:
    return str(client.config.cluster.server)


async def reachable(client: AsyncClient) -> None:
    """Raise PlatformError unless the API server answers; a refusal (403) is an answer too."""
    with _calling(f"Reaching {server_of(client)}"), contextlib.suppress(ApiError):
        await client.get(resource_registry.load("v1", "Namespace"), "default")


def resource_type(obj: KubeObject) -> Any:
    """lightkube's class for an object's apiVersion and kind (a generic one for custom resources)."""
    key = (obj["apiVersion"], obj["kind"])
    if key in CUSTOM_KINDS:
        group, version = key[0].split("/")
        # Registers the class in lightkube's registry; the same arguments give the same class every time.
        return create_namespaced_resource(group, version, key[1], CUSTOM_KINDS[key])
    try:
        return resource_registry.load(*key)
    except LoadResourceError as exc:
        raise PlatformError(f"Shipyard cannot apply a {key[1]} ({key[0]}): {exc}") from exc


def describe(obj: KubeObject) -> str:
    meta = obj.get("metadata") or {}
    where = f" in {meta['namespace']}" if meta.get("namespace") else ""
    return f"{obj['kind']} {meta.get('name')}{where}"


async def read(client: AsyncClient, obj: KubeObject) -> KubeObject | None:
    """The live object of that kind, name and namespace; None if there is none."""
    meta = obj["metadata"]
    try:
        with _calling(f"Reading {describe(obj)}"):
            live = await client.get(resource_type(obj), meta["name"], namespace=meta.get("namespace"))
    except NotFound:
        return None
    return dict(live.to_dict())


def autoscaler_held_replicas(message: str) -> bool:
    """Whether an apply's conflict is only the HorizontalPodAutoscaler's hold on a Deployment's count: the
    HPA controller (in kube-controller-manager) owns `.spec.replicas` once it has scaled, and keeps it after
    its HPA is deleted, so the first apply that sets a count again conflicts with it. Anyone else's change
    is reported, never overridden."""
    managers = set(re.findall(r'conflicts? with "([^"]+)"', message))
    fields = set(re.findall(r"(?::\s*|^-\s*)(\.[A-Za-z][\w.\[\]=\"-]*)", message, re.MULTILINE))
    return managers == {"kube-controller-manager"} and fields == {".spec.replicas"}


@dataclass(frozen=True)
class Applied:
    """An object after `apply`: live as the server returned it, and whether the apply changed anything."""

    live: KubeObject
    changed: bool

    @property
    def generation(self) -> int:
        return int((self.live.get("metadata") or {}).get("generation") or 0)


async def apply_one(client: AsyncClient, desired: KubeObject, field_manager: str = FIELD_MANAGER,
                    force: bool = False) -> Applied:
    """Server-side apply, skipped when the live object already is what `desired` says (status.needs_apply)."""
    live = await read(client, desired)
    if live is not None and not needs_apply(desired, live, field_manager):
        return Applied(live, False)
    meta = desired["metadata"]
    try:
        with _calling(f"Applying {describe(desired)}"):
            result = await client.patch(resource_type(desired), meta["name"], desired,
                                        namespace=meta.get("namespace"), patch_type=PatchType.APPLY,
                                        field_manager=field_manager, force=force)
    except Conflict as exc:
        if force or desired["kind"] != "Deployment" or not autoscaler_held_replicas(exc.message):
            raise
        # Autoscaling was switched off: the count is Shipyard's again (as `kubectl apply --force-conflicts`).
        with _calling(f"Applying {describe(desired)}"):
            result = await client.patch(resource_type(desired), meta["name"], desired,
                                        namespace=meta.get("namespace"), patch_type=PatchType.APPLY,
                                        field_manager=field_manager, force=True)
    return Applied(dict(result.to_dict()), True)


async def apply(client: AsyncClient, objects: Sequence[KubeObject], field_manager: str = FIELD_MANAGER,
                force: bool = False) -> list[Applied]:
    """Apply in order (the namespace before what is in it); a conflict with another manager stops it."""
    return [await apply_one(client, obj, field_manager, force) for obj in objects]


async def list_objects(client: AsyncClient, api_version: str, kind: str, namespace: str,
                       labels: dict[str, str]) -> list[KubeObject]:
    """Objects of one kind in a namespace with those labels; none when the kind is not installed (KEDA)."""
    try:
        with _calling(f"Listing {kind}s in {namespace}"):
            found = client.list(resource_type({"apiVersion": api_version, "kind": kind}), namespace=namespace,
                                labels=labels)
            return [dict(o.to_dict()) async for o in found]
    except NotFound:
        return []


async def served(client: AsyncClient, api_version: str, kind: str, namespace: str) -> bool:
    """Whether the cluster has that kind at all (an operator's custom resource is installed)."""
    try:
        with _calling(f"Listing {kind}s in {namespace}"):
            async for _ in client.list(resource_type({"apiVersion": api_version, "kind": kind}),
                                       namespace=namespace, chunk_size=1):
                break
    except NotFound:
        return False
    return True


async def pods(client: AsyncClient, namespace: str, labels: dict[str, str]) -> list[KubeObject]:
    return await list_objects(client, "v1", "Pod", namespace, labels)


async def instances(client: AsyncClient, release: KubeRelease) -> list[InstanceState]:
    """What `shipyard ps` shows for the app's pods."""
    return instance_states(await pods(client, release.namespace, app_labels(release.app)))


async def tail(client: AsyncClient, namespace: str, pod: str, container: str | None = None,
               lines: int = LOG_LINES) -> list[str]:
    """A pod's last log lines; none when it has not started or is gone (the caller shows what it has)."""
    try:
        with _calling(f"Reading pod {pod}'s log"):
            return [line async for line in client.log(pod, namespace=namespace, container=container,
                                                      tail_lines=lines, newlines=False)]
    except ShipyardError:
        return []


async def stream_logs(client: AsyncClient, namespace: str, pod: str, container: str | None = None,
                      follow: bool = True, since: int | None = None) -> AsyncIterator[str]:
    """A pod's log lines as they come (`shipyard logs -f`), until the pod's container stops."""
    with _calling(f"Following pod {pod}'s log"):
        async for line in client.log(pod, namespace=namespace, container=container, follow=follow, since=since,
                                     newlines=False):
            yield line


async def wait_job(client: AsyncClient, job: KubeObject, timeout: float, poll: float = POLL,
                   say: Say = quiet) -> Verdict:
    """Wait for the release-phase Job to succeed; raises ReleasePhaseFailed when it fails or outlives `timeout`."""
    meta = job["metadata"]
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        live = await read(client, job)
        if live is None:
            raise ReleasePhaseFailed(f"The release Job {meta['name']} disappeared before it finished.",
                                     hint="Something deleted it; deploy again.")
        found = await pods(client, meta["namespace"], {"job-name": meta["name"]})
        verdict = job_verdict(live, found)
        if verdict.state == FAILED and found:
            newest = max(found, key=lambda p: p["metadata"].get("creationTimestamp") or "")["metadata"]["name"]
            pod = verdict.trouble.pod if verdict.trouble else newest
            container = verdict.trouble.container if verdict.trouble else None
            verdict = job_verdict(live, found, await tail(client, meta["namespace"], pod, container))
        if verdict.state == SUCCEEDED:
            return verdict
        if verdict.state == FAILED:
            raise ReleasePhaseFailed(verdict.cause, hint=verdict.hint)
        if time.monotonic() > deadline:
            raise ReleasePhaseFailed(f"The release command did not finish within {timeout:g} s.",
                                     hint="Nothing changed: the previous release keeps serving.")
        if verdict.progress != last:
            last = verdict.progress
            await say(f"       {last}")
        await asyncio.sleep(poll)


async def wait_rollout(client: AsyncClient, applied: Applied, deadline: float, poll: float = POLL,
                       say: Say = quiet) -> Verdict:
    """Wait until a Deployment's applied generation is live or has failed (the verdict says which)."""
    meta = applied.live["metadata"]
    selector = applied.live["spec"]["selector"]["matchLabels"]
    started, mark, last = time.monotonic(), None, ""
    while True:
        live = await read(client, applied.live)
        if live is None:
            return Verdict(FAILED, f"Deployment {meta['name']} was deleted during its rollout.")
        if progress_mark(live) != mark:
            started, mark = time.monotonic(), progress_mark(live)
        found = await pods(client, meta["namespace"], selector)
        verdict = rollout_verdict(live, applied.generation, found, now=time.monotonic(), started=started,
                                  deadline=deadline)
        if verdict.state == FAILED and (trouble := verdict.trouble) is not None:
            logs = {trouble.pod: await tail(client, meta["namespace"], trouble.pod, trouble.container)}
            verdict = rollout_verdict(live, applied.generation, found, now=time.monotonic(), started=started,
                                      deadline=deadline, logs=logs)
        if verdict.state != WAITING:
            return verdict
        if verdict.progress != last:
            last = verdict.progress
            await say(f"       {last}")
        await asyncio.sleep(poll)


async def wait_rollouts(client: AsyncClient, applied: Sequence[Applied], deadline: float, poll: float = POLL,
                        say: Say = quiet) -> None:
    """Every Deployment at once (web and workers boot together, as locally); the first failure raises."""
    waits = [asyncio.ensure_future(wait_rollout(client, a, deadline, poll, say))
             for a in applied if a.live.get("kind") == "Deployment"]
    try:
        for next_done in asyncio.as_completed(waits):
            verdict = await next_done
            if verdict.state != LIVE:
                raise DeployError(verdict.cause, hint=verdict.hint)
    finally:
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


async def delete(client: AsyncClient, obj: KubeObject) -> None:
    meta = obj["metadata"]
    with contextlib.suppress(NotFound), _calling(f"Deleting {describe(obj)}"):
        await client.delete(resource_type(obj), meta["name"], namespace=meta.get("namespace"))


async def delete_namespace(client: AsyncClient, namespace: str, timeout: float = 300.0,
                           poll: float = POLL) -> None:
    """Delete an app's namespace and everything in it, and wait until it is gone."""
    obj: KubeObject = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
    await delete(client, obj)
    deadline = time.monotonic() + timeout
    while await read(client, obj) is not None:
        if time.monotonic() > deadline:
            raise PlatformError(f"Namespace {namespace} is still being deleted after {timeout:g} s.",
                                hint=f"`kubectl get all -n {namespace}` and its finalizers show what holds it.")
        await asyncio.sleep(poll)
