"""The fake Kubernetes cluster's controllers and kubelet (tests/e2e/fake_kube.py), on a thread of their own.

A Deployment applied gets pods of its pod template (replacing those of an earlier template) and a rolled-out
status; a Job gets one pod, which logs `fake ran: <command>` and succeeds (or exits N for `exit N`). Before any
pod of a pod template runs, the template's init container is run as kubelet would run it: its command (the
real fetch script) with its environment, values resolved from the Secrets the platform applied, into a
temporary directory, so the slug really is downloaded and unpacked. A fetch that fails leaves the pod's init
container crash-looping (a Job's pod failed) with its output as its log.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.runtime.kubernetes.slug import FETCH_SCRIPT

from . import fake_cnpg
from .fake_kube_store import Store, now

SUFFIX = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of Kubernetes' generated name suffixes


def unliteral(text: str) -> str:
    """What kubelet makes of a command or env value: `$$` is `$` (pods.literal's escaping undone)."""
    return re.sub(r"\$\$", "$", text)


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


class Kubelet:
    """The controllers and kubelet: they act on the Deployments and Jobs of `store.work` (and CloudNativePG on
    its Clusters and Databases), until None."""

    def __init__(self, store: Store, workdir: Path, errors: list[str]) -> None:
        self.store = store
        self.workdir = workdir
        self.errors = errors  # shared with the cluster: the fake's own failures
        self.fetches: list[Fetch] = []
        self._fetched: dict[tuple[str, str, str, str], Fetch] = {}
        # A fault a test turns on: the next fetches run with a wrong SLUG_SHA256 (the script must refuse the slug).
        self.tamper_checksum = False

    def run(self) -> None:
        while True:
            item = self.store.work.get()
            if item is None:
                return
            kind, path = item
            try:
                if kind == "Deployment":
                    self._roll_out(path)
                elif kind == "Job":
                    self._run_job(path)
                else:
                    fake_cnpg.reconcile(self.store, kind, path)
            except Exception:  # noqa: BLE001 - kept for the test: the fake's own bug
                with self.store.lock:
                    self.errors.append(f"{kind} {path}: {traceback.format_exc()}")

    def stop(self) -> None:
        """Tell `run` to return (once it is done with what it was told before)."""
        self.store.work.put(None)

    def _roll_out(self, path: str) -> None:
        store = self.store
        with store.lock:
            deployment = copy.deepcopy(store.objects.get(path))
        if deployment is None:
            return
        generation = deployment["metadata"]["generation"]
        namespace, name = deployment["metadata"]["namespace"], deployment["metadata"]["name"]
        template = deployment["spec"]["template"]
        replicas = int(deployment["spec"].get("replicas", 1))
        template_hash = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        fetched = self._fetch(namespace, template) if replicas > 0 else None
        with store.lock:
            live = store.objects.get(path)
            if live is None or live["metadata"]["generation"] != generation:
                return  # changed meanwhile: its own turn comes
            mine = {p: o for p, o in store.objects.items() if store.owner.get(p) == path}
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
                    store.remove(pod)
            for pod in current[replicas:]:
                store.remove(pod)
            for _ in range(replicas - len(current)):
                self._new_pod(path, namespace, f"{name}-{template_hash}", template, template_hash, fetched)
            live["status"] = _counts(generation, replicas, replicas, replicas, replicas) | {"conditions": [
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                 "lastTransitionTime": now(), "lastUpdateTime": now()},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                 "message": f'ReplicaSet "{name}-{template_hash}" has successfully progressed.',
                 "lastTransitionTime": now(), "lastUpdateTime": now()}]}

    def _run_job(self, path: str) -> None:
        with self.store.lock:
            job = copy.deepcopy(self.store.objects.get(path))
        if job is None or job.get("status"):
            return
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        template = job["spec"]["template"]
        fetched = self._fetch(namespace, template)
        with self.store.lock:
            live = self.store.objects.get(path)
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
        logs = self.store.logs
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
            logs[(namespace, name, init[0]["name"] if init else main)] = output
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
                logs[(namespace, name, main)] = lines
            else:
                statuses = [status_of(main, {"running": {"startedAt": started}}, True)]
                phase = "Running"
                conditions += [{"type": "Initialized", "status": "True", "lastTransitionTime": started},
                               {"type": "ContainersReady", "status": "True", "lastTransitionTime": started},
                               {"type": "Ready", "status": "True", "lastTransitionTime": started}]
                logs[(namespace, name, main)] = [f"fake pod {name} runs: {command}"]
            if init:
                logs[(namespace, name, init[0]["name"])] = []
        self.store.version += 1
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": namespace, "uid": f"{secrets.token_hex(4)}-pod",
                            "resourceVersion": str(self.store.version), "creationTimestamp": started,
                            "labels": labels,
                            "annotations": dict(template.get("metadata", {}).get("annotations", {}))},
               "spec": spec,
               "status": {"phase": phase, "hostIP": "10.0.0.2", "podIP": f"10.244.0.{secrets.randbelow(250) + 2}",
                          "startTime": started, "qosClass": "Guaranteed", "conditions": conditions,
                          "initContainerStatuses": init_statuses, "containerStatuses": statuses}}
        path = f"/api/v1/namespaces/{namespace}/pods/{name}"
        self.store.put(path, pod)
        self.store.owner[path] = owner
        return path

    def _fetch(self, namespace: str, template: dict[str, Any]) -> Fetch:
        """The pod template's init container, as kubelet runs it: its command, its env (Secrets resolved)."""
        spec = template["spec"]
        init = next((c for c in spec.get("initContainers", []) if c["name"] == "fetch-slug"), None)
        assert init is not None, f"a pod template without the fetch-slug init container: {spec}"
        env: dict[str, str] = {}
        missing = ""
        with self.store.lock:
            for item in init.get("env", []):
                if "value" in item:
                    env[item["name"]] = unliteral(item["value"])
                    continue
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                assert ref, f"an env source the fake does not know: {item}"
                secret = self.store.objects.get(f"/api/v1/namespaces/{namespace}/secrets/{ref['name']}")
                data = (secret or {}).get("data", {})
                if ref["key"] in data:
                    env[item["name"]] = base64.b64decode(data[ref["key"]]).decode()
                elif not ref.get("optional"):
                    missing = f"secret \"{ref['name']}\" (key {ref['key']}) not found"
        command = [unliteral(part) for part in init.get("command", [])]
        url, sha = env.get("SLUG_URL", ""), env.get("SLUG_SHA256", "")
        key = (namespace, url, sha, env.get("SLUG_TOKEN", ""))
        with self.store.lock:
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
        with self.store.lock:
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
