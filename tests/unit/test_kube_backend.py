"""The Kubernetes backend between the control plane and a (fake) API server: a release from the store rolled out
with its slug packed and signed for the pods, scaled, restarted, a one-off run as a Job, `ps` from the pods."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from shipyard.buildpack.manifest import Manifest
from shipyard.control.deploys import DeployRecord
from shipyard.control.kube_backend import KubernetesBackend
from shipyard.release.plan import ReleaseTarget
from shipyard.runtime.kubernetes.slug_tokens import token_matches
from shipyard.settings import KubeSettings, Settings
from shipyard.store import records
from shipyard.store.secrets import Cipher
from shipyard.store.store import Store
from tests.unit.test_kube_status import fake  # noqa: F401 - the fixture

NS = "/apis/apps/v1/namespaces/shipyard-todo"
SECRET = b"k" * 32
CA = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


class Logs:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def app_log(self, name: str) -> Logs:
        return self

    def write(self, source: str, text: str) -> None:
        self.lines.append((source, text))


def make_slug(root: Path) -> Path:
    """A slug as a build leaves it: the app, and a venv whose interpreter is this machine's."""
    slug = root / "slugs" / "todo" / "1700000000000-abcdef123456"
    (slug / "app").mkdir(parents=True)
    (slug / "app" / "app.py").write_text("app = None\n")
    (slug / "venv" / "bin").mkdir(parents=True)
    (slug / "venv" / "pyvenv.cfg").write_text("home = /opt/python/bin\nversion_info = 3.13.0\n")
    os.symlink("/opt/python/bin/python3.13", slug / "venv" / "bin" / "python")
    return slug


class World:
    def __init__(self, tmp: Path, api: Any) -> None:
        self.store = Store(tmp / "shipyard.db", Cipher(Fernet.generate_key()), tmp / "backups")
        self.slug = make_slug(tmp)
        self.store.create_app("todo")
        manifest = Manifest({"web": "gunicorn --bind 127.0.0.1:$PORT app:app", "worker": "python worker.py"},
                            "Procfile", "3.13.0", "venv")
        build = self.store.add_build("todo", "abc", str(self.slug), manifest.to_json())
        self.release = self.store.add_release("todo", build.id, {"GREETING": "hi"}, "Deploy abc")
        self.logs = Logs()
        settings = Settings(data_dir=tmp, backend="kubernetes",
                            kube=KubeSettings(slug_url="https://shipyard.example.org:8471/"))
        self.pg_ca = tmp / "pg-ca.crt"
        self.pg_ca.write_text(CA)
        self.backend = KubernetesBackend(settings, self.store, self.logs, self.target,  # type: ignore[arg-type]
                                         SECRET, CA, lambda: (self.pg_ca,))
        self.backend._client = api.client
        self.said: list[str] = []

    def target(self, release: records.Release) -> ReleaseTarget:
        app = self.store.get_app(release.app)
        return ReleaseTarget(app="todo", version=release.version, slug_path=Path(release.build.slug_path),
                             process_types=Manifest.from_json(release.build.manifest).process_types,
                             config=release.config, hostname="todo.apps.example.org",
                             external_url="http://todo.apps.example.org/", boot_timeout=60, web_concurrency=2,
                             formation=app.formation)

    async def say(self, line: str) -> None:
        self.said.append(line)

    def app(self) -> records.App:
        return self.store.get_app("todo")


def web(api: Any) -> dict:
    return api.objects[f"{NS}/deployments/web"]


def test_a_release_rolls_out_with_its_slug_packed_signed_and_verified_by_the_pods(fake: Any,  # noqa: F811
                                                                                  tmp_path: Path) -> None:
    world = World(tmp_path, fake)
    record = DeployRecord(world.store, "todo", "Deploy abc", world.say)
    asyncio.run(world.backend.roll_out(world.app(), world.release, record))
    assert world.app().current_release == 1
    assert any("v1 is live at http://todo.apps.example.org/" in line for line in world.said)
    assert ("shipyard[api]", "Release v1 is live (Deploy abc)") in world.logs.lines
    pod = web(fake)["spec"]["template"]["spec"]
    app, fetch = pod["containers"][0], pod["initContainers"][0]
    assert app["image"] == fetch["image"] == "python:3.13-slim"  # the slug's Python, no image to build
    assert app["command"][-1] == "gunicorn --bind 0.0.0.0:$PORT app:app"  # reached at the pod's address
    env = {e["name"]: e for e in fetch["env"]}
    assert env["SLUG_URL"]["value"] == "https://shipyard.example.org:8471/slugs/todo/v1.tar.gz"
    archive = world.backend.archive_path("todo", 1)
    assert archive is not None and archive.is_file()
    import hashlib
    assert env["SLUG_SHA256"]["value"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert env["SLUG_CA"]["valueFrom"]["secretKeyRef"]["key"] == "ca.crt"
    secret = fake.objects["/api/v1/namespaces/shipyard-todo/secrets/slug-v1"]
    import base64
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["ca.crt"] == CA and token_matches(SECRET, "todo", 1, data["token"])
    assert not token_matches(SECRET, "todo", 2, data["token"])  # one release's token fetches no other's
    # The file PGSSLROOTCERT names is at its path in the pods, as the local sandbox binds it in.
    files = fake.objects["/api/v1/namespaces/shipyard-todo/secrets/files-v1"]
    assert base64.b64decode(files["data"]["f0"]).decode() == CA
    assert {"name": "files", "mountPath": str(world.pg_ca), "subPath": "f0", "readOnly": True} in app["volumeMounts"]
    assert world.backend.archive_path("todo", 9) is None and world.backend.archive_path("other", 1) is None


def test_scaling_restarting_and_ps_go_through_the_cluster(fake: Any, tmp_path: Path) -> None:  # noqa: F811
    world = World(tmp_path, fake)
    asyncio.run(world.backend.roll_out(world.app(), world.release, DeployRecord(world.store, "todo", "d", world.say)))
    world.store.update_app("todo", formation={"web": 3, "worker": 1})
    asyncio.run(world.backend.converge(world.app(), replace=set()))
    assert web(fake)["spec"]["replicas"] == 3
    assert fake.objects[f"{NS}/deployments/worker"]["spec"]["replicas"] == 1
    asyncio.run(world.backend.converge(world.app(), replace={"web"}))
    annotations = web(fake)["spec"]["template"]["metadata"]["annotations"]
    assert "shipyard.dev/restarted-at" in annotations and "v1" in json.dumps(annotations)  # the release's stay
    assert web(fake)["spec"]["replicas"] == 3  # the restart changed nothing else
    assert world.backend.app_state(world.app()) == "down"  # no pod read yet


def test_a_one_off_runs_as_a_job_whose_log_and_exit_code_come_back(fake: Any, tmp_path: Path) -> None:  # noqa: F811
    world = World(tmp_path, fake)
    asyncio.run(world.backend.roll_out(world.app(), world.release, DeployRecord(world.store, "todo", "d", world.say)))
    applied = fake._apply

    def apply_and_run(path: str, body: dict, params: Any) -> Any:
        answer = applied(path, body, params)
        if body["kind"] == "Job" and body["metadata"]["name"].startswith("run-"):
            name = body["metadata"]["name"]
            pod = f"{name}-x7k2p"
            fake.objects[f"/api/v1/namespaces/shipyard-todo/pods/{pod}"] = {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod, "namespace": "shipyard-todo", "labels": {"job-name": name}},
                "status": {"phase": "Failed", "containerStatuses": [
                    {"name": "one-off", "image": "python:3.13-slim", "imageID": "", "ready": False,
                     "restartCount": 0, "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}]}}
            fake.logs[pod] = ["Traceback (most recent call last):", "SystemExit: 3"]
        return answer
    fake._apply = apply_and_run
    echoed: list[str] = []

    async def echo(line: str) -> None:
        echoed.append(line)
    code = asyncio.run(world.backend.run(world.app(), "python manage.py check", echo))
    assert code == 3 and echoed == ["Traceback (most recent call last):", "SystemExit: 3"]
    job = next(o for p, o in fake.objects.items() if "/jobs/run-v1-" in p)
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "python manage.py check"
    assert job["spec"]["backoffLimit"] == 0
    assert ("app[run.1]", "SystemExit: 3") in world.logs.lines
    assert any(text == "Process exited with status 3" for _, text in world.logs.lines)


def test_the_backend_needs_the_url_its_pods_fetch_slugs_from(tmp_path: Path) -> None:
    from shipyard.errors import PlatformError
    backend = KubernetesBackend(Settings(data_dir=tmp_path, backend="kubernetes", kube=KubeSettings(slug_url="")),
                                None, None, None, SECRET, CA)  # type: ignore[arg-type]
    with pytest.raises(PlatformError, match="SHIPYARD_KUBE_SLUG_URL"):
        asyncio.run(backend.start())
    assert not backend.status().healthy


def test_an_unknown_backend_is_refused_with_the_choices(tmp_path: Path) -> None:
    from shipyard.errors import PlatformError
    with pytest.raises(PlatformError) as refused:
        Settings(data_dir=tmp_path, backend="nomad")
    assert "local, kubernetes" in (refused.value.hint or "")


def test_a_pods_log_is_followed_again_after_its_container_restarted(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """kubelet restarted a crashed container (or the API server closed the stream): the pod's log goes on
    reaching the app's log, from where the last stream ended."""
    from shipyard.runtime.kubernetes import cluster
    streams: list[int | None] = []

    async def stream_logs(client: Any, namespace: str, pod: str, container: str | None = None,
                          follow: bool = True, since: int | None = None) -> Any:
        streams.append(since)
        yield f"line {len(streams)}"
    monkeypatch.setattr(cluster, "stream_logs", stream_logs)
    logs = Logs()
    backend = KubernetesBackend(Settings(data_dir=tmp_path, backend="kubernetes"), None, logs,  # type: ignore[arg-type]
                                None, SECRET, CA)  # type: ignore[arg-type]
    pod = {"metadata": {"name": "web-5d8c7b9f4-x2x9z", "labels": {"app.kubernetes.io/component": "web"}},
           "status": {"containerStatuses": [{"name": "web", "state": {"running": {"startedAt": "2026-11-30T04:00:00Z"}}}]}}

    async def watch_twice() -> None:
        backend._follow("todo", "shipyard-todo", pod)
        backend._follow("todo", "shipyard-todo", pod)  # still following: nothing more
        await asyncio.gather(*backend._following.values())
        backend._follow("todo", "shipyard-todo", pod)  # the stream ended, the pod runs on
        await asyncio.gather(*backend._following.values())
    asyncio.run(watch_twice())
    assert streams[0] is None and len(streams) == 2 and streams[1] is not None and streams[1] >= 1
    assert logs.lines == [("app[web.x2x9z]", "line 1"), ("app[web.x2x9z]", "line 2")]
