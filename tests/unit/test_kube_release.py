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
