"""A release as the local backend runs it, with what only a cluster has, as its Kubernetes objects are made from."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate

from shipyard.release.kube_release import kube_release
from shipyard.release.plan import ReleaseTarget
from shipyard.runtime.kubernetes import release_objects
from shipyard.runtime.limits import SIZES
from shipyard.store.records import AutoscaleBounds


def todo_target() -> ReleaseTarget:
    """tests/apps/flask-todo's release: web, worker and a Procfile release command, two web instances."""
    return ReleaseTarget(app="todo", version=7, slug_path=Path("/slugs/todo/7"),
                         process_types={"web": "gunicorn app:app", "worker": "python worker.py",
                                        "release": "flask db upgrade"},
                         config={"DATABASE_URL": "postgresql://todo@db/todo", "GREETING": "hi"},
                         hostname="todo.example.org", external_url="https://todo.example.org", boot_timeout=60.0,
                         web_concurrency=2, formation={"web": 2, "worker": 1}, health_path="/healthz",
                         size=SIZES["medium"])


def test_the_release_keeps_its_processes_config_and_limits_and_gains_the_clusters_parts() -> None:
    release = kube_release(todo_target(), image="registry.example.org/shipyard/runner:py3.13",
                           slug_url="https://shipyard.example.org/slugs/todo/7.tar.gz", slug_token="t0ken",
                           domains=["todo.example.org", "www.todo.org"], release_command="flask db upgrade --sql",
                           autoscale=AutoscaleBounds(min=1, max=4, target=20),
                           tls_secrets={"www.todo.org": "tls-www-todo-org"})
    assert (release.app, release.version, release.size.name, release.health_path) == ("todo", 7, "medium", "/healthz")
    assert release.count("web") == 2 and release.count("worker") == 1
    assert release.config["GREETING"] == "hi" and release.boot_timeout == 60.0
    # The app's own hostname first, a domain given twice once; only the one with a certificate has TLS.
    assert [(h.name, h.tls_secret) for h in release.hostnames] == [("todo.example.org", None),
                                                                     ("www.todo.org", "tls-www-todo-org")]
    assert release.release_phase_command == "flask db upgrade --sql"  # the setting wins over the Procfile
    assert release.autoscale is not None and (release.autoscale.min, release.autoscale.max) == (1, 4)


def test_its_objects_render_and_validate() -> None:
    release = kube_release(todo_target(), image="runner:py3.13", slug_url="https://s.example.org/7.tgz",
                           slug_token="t0ken")
    objects = release_objects(release)
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "Secret", "Job", "Deployment", "Service", "Ingress"} <= kinds
    for obj in objects:
        assert kubernetes_validate.validate(obj, "1.37", strict=True) == "1.37"


def test_a_web_command_bound_to_loopback_listens_on_the_pods_own_addresses() -> None:
    """Locally the edge connects over loopback; a pod is reached at its own address (Service, probes)."""
    from shipyard.release.kube_release import pod_commands
    commands = {"web": "gunicorn --bind 127.0.0.1:$PORT app:app", "worker": "celery -A app worker -b 127.0.0.1:1",
                "release": "flask db upgrade"}
    assert pod_commands(commands) == {**commands, "web": "gunicorn --bind 0.0.0.0:$PORT app:app"}
    for written, served in (("uvicorn main:app --host 127.0.0.1 --port $PORT", "--host 0.0.0.0 "),
                            ("gunicorn -b localhost:$PORT x:app", "-b 0.0.0.0:"),
                            ("gunicorn --bind=127.0.0.1:8000 x:app", "--bind=0.0.0.0:8000"),
                            ("hypercorn -b 127.0.0.1:$PORT x:app", "-b 0.0.0.0:")):
        assert served in pod_commands({"web": written})["web"]
    # Not loopback, or already every address: as written.
    for kept in ("gunicorn --bind 127.0.0.10:$PORT x:app", "gunicorn --bind 0.0.0.0:$PORT x:app", "gunicorn x:app"):
        assert pod_commands({"web": kept})["web"] == kept
