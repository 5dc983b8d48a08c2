"""The Kubernetes objects of releases modelled on tests/apps: values compared, and every object validated
against the published schemas of three Kubernetes minor versions (kubernetes-validate, offline)."""

import json
import math
import re

import kubernetes_validate
import pytest

from shipyard.errors import InvalidInput
from shipyard.proc import free_port
from shipyard.runtime.kubernetes import Autoscale, Cluster, Hostname, KubeRelease, Peer, release_objects, render
from shipyard.runtime.kubernetes.names import process_name, tls_secret_name
from shipyard.runtime.kubernetes.probes import HTTP_CHECK
from shipyard.runtime.limits import SIZES
from shipyard.runtime.readiness import LivenessRules, ReadinessRules

# The three newest minor versions kubernetes-validate 1.37 bundles schemas for.
KUBE_VERSIONS = ("1.35", "1.36", "1.37")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?")

TODO_CONFIG = {"SECRET_KEY": "todo-secret-key-9f8e7d",
               "DATABASE_URL": "postgresql://todo:pw-5c4b3a@todo-db-rw.shipyard-db.svc:5432/todo",
               "PGPASSWORD": "pw-5c4b3a", "WEB_CONCURRENCY": "3"}


def flask_todo(**overrides) -> KubeRelease:
    """tests/apps/flask-todo: web, worker and a release command; a database; a custom domain."""
    values = dict(
        app="todo", version=7, image="registry.example.com/shipyard/runner:py3.12",
        slug_url="https://slugs.example.com/todo/v7.tar.gz", slug_token="slug-token-1a2b3c",
        process_types={"web": "gunicorn app:app", "worker": "python worker.py", "release": "flask db upgrade"},
        hostnames=(Hostname("todo.apps.example.com", "todo-apps-tls"), Hostname("todo.example.org", "todo-org-tls"),
                   Hostname("www.todo.example.org", "todo-org-tls")),
        formation={"web": 2, "worker": 1}, size=SIZES["medium"], config=TODO_CONFIG, health_path="/healthz",
        boot_timeout=60, database=Peer("shipyard-db", {"cnpg.io/cluster": "todo-db"}, 5432))
    values.update(overrides)
    return KubeRelease(**values)


def django_static(**overrides) -> KubeRelease:
    """tests/apps/django-static: no Procfile (the buildpack's command), a migrate setting, autoscaled from 0
    on a cluster without KEDA."""
    values = dict(
        app="django-static", version=2, image="registry.example.com/shipyard/runner:py3.12",
        slug_url="http://slugs.shipyard-system.svc:8080/django-static/v2", slug_token="tok-django",
        slug_sha256="0" * 64,
        process_types={"web": "gunicorn --bind 127.0.0.1:$PORT mysite.wsgi"},
        release_command="python manage.py migrate --noinput",
        config={"DJANGO_SECRET_KEY": "django-insecure-4e5f6a7b", "DEBUG": "0"},
        hostnames=(Hostname("django-static.apps.example.com"),),
        autoscale=Autoscale(min=0, max=4, target=10),
        cluster=Cluster(slug_server=Peer("shipyard-system", {"app.kubernetes.io/name": "shipyard"}, 8080),
                        ingress_class="nginx"))
    values.update(overrides)
    return KubeRelease(**values)


def fastapi_hello(**overrides) -> KubeRelease:
    """tests/apps/fastapi-hello: ASGI under gunicorn's uvicorn workers, scale to zero with KEDA."""
    values = dict(
        app="fastapi-hello", version=1, image="registry.example.com/shipyard/runner:py3.13",
        slug_url="https://slugs.example.com/fastapi-hello/v1.tar.gz", slug_token="tok-fastapi",
        process_types={"web": "gunicorn --bind 0.0.0.0:$PORT --worker-class uvicorn_worker.UvicornWorker main:app"},
        hostnames=(Hostname("fastapi-hello.apps.example.com", "wildcard-apps-tls"),),
        autoscale=Autoscale(min=0, max=10, target=2.5), cluster=Cluster(keda=True))
    values.update(overrides)
    return KubeRelease(**values)


SAMPLES = {"flask-todo": flask_todo, "django-static": django_static, "fastapi-hello": fastapi_hello}


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    found = [o for o in by_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name, [o["metadata"]["name"] for o in by_kind(objects, kind)])
    return found[0]


def container(pod_owner: dict) -> dict:
    [main] = pod_owner["spec"]["template"]["spec"]["containers"]
    return main


def env_of(c: dict) -> dict[str, str]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_every_object_validates_against_three_kubernetes_versions(sample):
    objects = release_objects(SAMPLES[sample]())
    validated = 0
    for obj in objects:
        if obj["apiVersion"].startswith("keda.sh/"):
            continue  # a CRD: no bundled schema; test_keda_scaled_object checks its structure by value
        for version in KUBE_VERSIONS:
            # strict: unknown fields (a misspelt key) fail too. The schema used must be that version's own,
            # not an older one kubernetes-validate would fall back to.
            assert kubernetes_validate.validate(obj, version, strict=True) == version
            validated += 1
    assert validated >= 3 * 8
    json.dumps(objects)  # plain values only, as `kubectl apply -f` takes them


def test_kinds_and_apply_order():
    rendered = render(flask_todo())
    kinds = [o["kind"] for o in rendered.foundation]
    assert kinds == ["Namespace", "ServiceAccount", "NetworkPolicy", "NetworkPolicy", "NetworkPolicy", "Secret",
                     "Secret"]
    assert rendered.release_job["kind"] == "Job"
    assert [o["kind"] for o in rendered.runtime] == ["Deployment", "Deployment", "Service", "Ingress",
                                                     "PodDisruptionBudget"]
    flat = release_objects(flask_todo())
    assert flat == [*rendered.foundation, rendered.release_job, *rendered.runtime]
    assert flat[0] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shipyard-todo", "labels": {
        "app.kubernetes.io/name": "todo", "app.kubernetes.io/managed-by": "shipyard", "shipyard.internal/app": "todo",
        "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/warn": "restricted"}}}
    assert all(o["metadata"]["namespace"] == "shipyard-todo" for o in flat[1:])
    assert render(flask_todo()) == rendered  # deterministic


def test_names_and_labels_are_valid():
    odd = flask_todo(process_types={"web": "gunicorn app:app", "my_worker": "python w.py", "Clock": "python c.py",
                                    "queue-2": "python q.py", "release": "flask db upgrade"},
                     formation={"web": 1})
    for sample in [*SAMPLES.values(), lambda: odd]:
        for obj in release_objects(sample()):
            meta = obj["metadata"]
            assert DNS_SUBDOMAIN.fullmatch(meta["name"]) and len(meta["name"]) <= 63, meta["name"]
            labels = dict(meta.get("labels", {}))
            if "template" in obj.get("spec", {}):
                labels.update(obj["spec"]["template"]["metadata"]["labels"])
                for c in obj["spec"]["template"]["spec"]["containers"]:
                    assert DNS_LABEL.fullmatch(c["name"]), c["name"]
            for value in labels.values():
                assert len(value) <= 63 and LABEL_VALUE.fullmatch(value), value
    names = sorted(o["metadata"]["name"] for o in by_kind(release_objects(odd), "Deployment"))
    assert names == sorted(["web", process_name("my_worker"), process_name("Clock"), "queue-2"])
    assert process_name("my_worker").startswith("my-worker-") and process_name("Clock").startswith("clock-")
    worker = one(release_objects(odd), "Deployment", process_name("my_worker"))
    assert worker["spec"]["template"]["metadata"]["annotations"]["shipyard.internal/process-type"] == "my_worker"


def test_process_names_are_deterministic_distinct_dns_labels():
    types = ["web", "worker", "my_worker", "My_Worker", "my-worker", "MY-WORKER", "_", "-x-", "9lives",
             "a" * 60, "a" * 61, "Ünïcode", "under_score_and_a_very_long_name_indeed"]
    mapped = [process_name(t) for t in types]
    assert mapped == [process_name(t) for t in types]
    assert len(set(mapped)) == len(types)
    for name in mapped:
        assert DNS_LABEL.fullmatch(name) and len(name) <= 24, name
    assert process_name("web") == "web" and process_name("worker") == "worker"


def test_process_types_mapping_to_one_name_are_refused():
    clash = process_name("My_Worker")
    with pytest.raises(InvalidInput, match="same Kubernetes name"):
        flask_todo(process_types={"web": "a", "My_Worker": "b", clash: "c"})


@pytest.mark.parametrize("overrides", [dict(app="Todo"), dict(app="1todo"), dict(hostnames=()),
                                       dict(autoscale=Autoscale(3, 2, 10)), dict(autoscale=Autoscale(0, 0, 10)),
                                       dict(autoscale=Autoscale(1, 2, 0)), dict(version=0),
                                       dict(cluster=Cluster(namespace_prefix="x" * 60 + "-"))])
def test_invalid_releases_are_refused(overrides):
    with pytest.raises(InvalidInput):
        flask_todo(**overrides)


def test_replicas_follow_the_formation():
    objects = release_objects(flask_todo())
    assert one(objects, "Deployment", "web")["spec"]["replicas"] == 2
    assert one(objects, "Deployment", "worker")["spec"]["replicas"] == 1
    defaults = release_objects(flask_todo(formation={}))
    # As on Heroku: one web, other types at 0 until scaled; the release type is never a Deployment.
    assert one(defaults, "Deployment", "web")["spec"]["replicas"] == 1
    assert one(defaults, "Deployment", "worker")["spec"]["replicas"] == 0
    assert {o["metadata"]["name"] for o in by_kind(defaults, "Deployment")} == {"web", "worker"}


def test_resources_come_from_the_size():
    for size, cpu in (("small", "1"), ("medium", "1500m"), ("large", "2")):
        objects = release_objects(flask_todo(size=SIZES[size]))
        memory = f"{SIZES[size].memory_mb}Mi"
        for owner in [*by_kind(objects, "Deployment"), one(objects, "Job")]:
            pod = owner["spec"]["template"]["spec"]
            for c in [*pod["initContainers"], *pod["containers"]]:
                assert c["resources"] == {"requests": {"cpu": cpu, "memory": memory},
                                          "limits": {"cpu": cpu, "memory": memory}}


def test_web_probes_express_the_local_rules():
    web = container(one(release_objects(flask_todo()), "Deployment", "web"))
    rules, liveness = ReadinessRules(), LivenessRules()
    # An exec of bash, not kubelet's httpGet: any status below 500 is healthy, as locally (the script is run
    # for real below).
    get = {"command": ["/bin/bash", "-c", HTTP_CHECK, "probe", "/healthz", "todo.apps.example.com"]}
    ready = web["readinessProbe"]
    assert ready["exec"] == get
    # 5xx answers: out of the Service after server_error_limit; no answers: each costs timeout + period.
    assert ready["periodSeconds"] * ready["failureThreshold"] == rules.server_error_limit
    assert ready["timeoutSeconds"] == rules.probe_timeout
    assert ready["failureThreshold"] * (ready["timeoutSeconds"] + ready["periodSeconds"]) == rules.no_answer_limit
    assert web["livenessProbe"] == {"exec": get, "periodSeconds": liveness.interval,
                                    "timeoutSeconds": liveness.timeout, "failureThreshold": liveness.failures,
                                    "successThreshold": 1}
    startup = web["startupProbe"]
    assert startup["exec"] == get
    assert startup["periodSeconds"] * startup["failureThreshold"] == 60  # the app's boot timeout
    assert web["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert web["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    slow = container(one(release_objects(flask_todo(boot_timeout=240.5, health_path="")), "Deployment", "web"))
    assert slow["startupProbe"]["failureThreshold"] == math.ceil(240.5)
    assert slow["readinessProbe"]["exec"]["command"][-2] == "/"
    worker = container(one(release_objects(flask_todo()), "Deployment", "worker"))
    assert not {"ports", "readinessProbe", "livenessProbe", "startupProbe", "lifecycle"} & worker.keys()


def test_rollouts_have_no_downtime_and_carry_the_release():
    objects = release_objects(flask_todo())
    web = one(objects, "Deployment", "web")
    assert web["spec"]["strategy"] == {"type": "RollingUpdate",
                                       "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    assert web["spec"]["minReadySeconds"] == 1
    assert web["spec"]["progressDeadlineSeconds"] > 60
    assert web["metadata"]["annotations"] == {"shipyard.internal/release": "v7",
                                              "shipyard.internal/process-type": "web",
                                              "kubernetes.io/change-cause": "shipyard release v7"}
    template = web["spec"]["template"]["metadata"]
    assert template["labels"] == {"app.kubernetes.io/name": "todo", "app.kubernetes.io/managed-by": "shipyard",
                                  "app.kubernetes.io/component": "web", "app.kubernetes.io/version": "v7"}
    assert template["annotations"] == {"shipyard.internal/release": "v7", "shipyard.internal/process-type": "web"}
    # The selector must not change between releases: no version in it.
    assert web["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "todo",
                                                       "app.kubernetes.io/component": "web"}}
    next_release = one(release_objects(flask_todo(version=8)), "Deployment", "web")
    assert next_release["spec"]["selector"] == web["spec"]["selector"]
    assert container(next_release)["envFrom"] == [{"secretRef": {"name": "config-v8"}}]


def test_config_and_slug_token_live_only_in_their_secrets():
    for sample in SAMPLES.values():
        release = sample()
        objects = release_objects(release)
        secrets = {o["metadata"]["name"]: o for o in by_kind(objects, "Secret")}
        config, slug = secrets[f"config-v{release.version}"], secrets[f"slug-v{release.version}"]
        assert config["stringData"] == dict(release.config) and config["immutable"] is True
        assert slug["stringData"] == {"token": release.slug_token} and slug["immutable"] is True
        for obj in objects:
            text = json.dumps(obj)
            if obj is not config:
                for value in release.config.values():
                    if len(value) >= 8:  # distinctive enough to find (WEB_CONCURRENCY's "3" is not)
                        assert value not in text, (obj["kind"], value)
            if obj is not slug:
                assert release.slug_token not in text, obj["kind"]
        for owner in [*by_kind(objects, "Deployment"), *by_kind(objects, "Job")]:
            pod = owner["spec"]["template"]["spec"]
            main = pod["containers"][0]
            assert main["envFrom"] == [{"secretRef": {"name": f"config-v{release.version}"}}]
            assert "SLUG_TOKEN" not in env_of(main)  # the app never sees the token
            [fetch] = pod["initContainers"]
            assert env_of(fetch)["SLUG_TOKEN"] == {"secretKeyRef": {"name": f"slug-v{release.version}",
                                                                    "key": "token"}}
            assert env_of(fetch)["SLUG_URL"] == release.slug_url
            assert "envFrom" not in fetch  # nor does the fetch see the config


def test_platform_environment():
    release = flask_todo(config={**TODO_CONFIG, "EXTERNAL_URL": "http://evil.example/", "LANG": "de_DE.UTF-8"})
    env = env_of(container(one(release_objects(release), "Deployment", "web")))
    # Platform-owned values are `env` entries, which win over the config Secret's envFrom.
    assert env["EXTERNAL_URL"] == "https://todo.apps.example.com/"
    assert env["EXTERNAL_HOSTNAME"] == "todo.apps.example.com"
    assert env["PORT"] == "8080"
    assert env["FORWARDED_ALLOW_IPS"] == "*"
    assert env["SHIPYARD_TRUST_PROXY_DEPTH"] == "1"
    assert env["PATH"].startswith("/slug/venv/bin:") and env["VIRTUAL_ENV"] == "/slug/venv"
    assert env["HOME"] == "/slug/app"
    assert env["SHIPYARD_RELEASE"] == "v7" and env["SHIPYARD_APP"] == "todo"
    assert env["SHIPYARD_PROCESS"] == "web.$(SHIPYARD_POD_NAME)"
    assert env["SHIPYARD_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    names = [e["name"] for e in container(one(release_objects(release), "Deployment", "web"))["env"]]
    assert names.index("SHIPYARD_POD_NAME") < names.index("SHIPYARD_PROCESS")  # kubelet expands in order
    # Defaults the user overrode in config are left to the config Secret.
    assert "WEB_CONCURRENCY" not in env and "LANG" not in env
    plain = env_of(container(one(release_objects(flask_todo(config={})), "Deployment", "web")))
    assert plain["WEB_CONCURRENCY"] == "4" and plain["LANG"] == "C.UTF-8"  # medium: 1024 MB / 256
    no_tls = env_of(container(one(release_objects(django_static()), "Deployment", "web")))
    assert no_tls["EXTERNAL_URL"] == "http://django-static.apps.example.com/"
    fixed = container(one(release_objects(flask_todo(fixed_port=8000)), "Deployment", "web"))
    assert env_of(fixed)["PORT"] == "8000" and fixed["ports"][0]["containerPort"] == 8000


def test_pods_are_confined_and_the_job_matches_web():
    objects = release_objects(flask_todo())
    web, worker, job = one(objects, "Deployment", "web"), one(objects, "Deployment", "worker"), one(objects, "Job")
    pod = web["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                      "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "app"
    assert pod["enableServiceLinks"] is False
    expected = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "allowPrivilegeEscalation": False,
                "privileged": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"}}
    assert all(c["securityContext"] == expected for c in [*pod["initContainers"], *pod["containers"]])
    assert pod["volumes"] == [{"name": "slug", "emptyDir": {"sizeLimit": "4Gi"}},
                              {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]
    assert container(web)["volumeMounts"] == [{"name": "slug", "mountPath": "/slug", "readOnly": True},
                                              {"name": "slug", "mountPath": "/slug/app", "subPath": "app"},
                                              {"name": "tmp", "mountPath": "/tmp"}]
    job_pod = job["spec"]["template"]["spec"]
    for key in ("securityContext", "automountServiceAccountToken", "serviceAccountName", "enableServiceLinks",
                "volumes", "initContainers"):
        assert job_pod[key] == pod[key] == worker["spec"]["template"]["spec"][key], key
    [job_main] = job_pod["containers"]
    assert job_main["securityContext"] == expected
    assert job_main["volumeMounts"] == container(web)["volumeMounts"]
    assert job_main["command"] == ["/bin/bash", "-c", "--", "flask db upgrade"]
    assert container(web)["command"] == ["/bin/bash", "-c", "--", "gunicorn app:app"]
    assert container(web)["workingDir"] == "/slug/app"
    assert job_pod["restartPolicy"] == "Never" and pod["restartPolicy"] == "Always"
    assert env_of(job_main)["SHIPYARD_PROCESS"] == "release.$(SHIPYARD_POD_NAME)"
    account = one(objects, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False


def test_release_phase_job():
    job = render(flask_todo()).release_job
    assert job["metadata"]["name"] == "release-v7"
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 3600
    assert job["spec"]["ttlSecondsAfterFinished"] > 0
    # The app's setting wins over the Procfile's release:, as release.plan.with_release_command.
    setting = render(flask_todo(release_command=" flask db upgrade --sql ")).release_job
    assert container(setting)["command"][-1] == "flask db upgrade --sql"
    assert render(django_static()).release_job["spec"]["template"]["spec"]["containers"][0]["command"][-1] == (
        "python manage.py migrate --noinput")
    assert render(fastapi_hello()).release_job is None
    assert not by_kind(release_objects(fastapi_hello()), "Job")


def test_service_and_ingress_route_every_hostname():
    objects = release_objects(flask_todo())
    svc = one(objects, "Service", "web")
    assert svc["spec"]["selector"] == {"app.kubernetes.io/name": "todo", "app.kubernetes.io/component": "web"}
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    ing = one(objects, "Ingress", "web")
    assert ing["apiVersion"] == "networking.k8s.io/v1"
    assert [r["host"] for r in ing["spec"]["rules"]] == ["todo.apps.example.com", "todo.example.org",
                                                         "www.todo.example.org"]
    backend = {"service": {"name": "web", "port": {"name": "http"}}}
    assert all(r["http"]["paths"] == [{"path": "/", "pathType": "Prefix", "backend": backend}]
               for r in ing["spec"]["rules"])
    assert ing["spec"]["tls"] == [{"hosts": ["todo.apps.example.com"], "secretName": "todo-apps-tls"},
                                  {"hosts": ["todo.example.org", "www.todo.example.org"], "secretName": "todo-org-tls"}]
    assert "ingressClassName" not in ing["spec"]  # the cluster's default class
    assert "annotations" not in ing["metadata"]  # no issuer named: the TLS Secrets are someone else's
    issued = one(release_objects(flask_todo(cluster=Cluster(cert_issuer="letsencrypt"))), "Ingress")
    assert issued["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert issued["spec"]["tls"] == ing["spec"]["tls"]
    no_tls = one(release_objects(django_static(cluster=Cluster(cert_issuer="letsencrypt"))), "Ingress")
    assert "annotations" not in no_tls["metadata"]  # nothing to certify
    assert tls_secret_name("WWW.Todo.example.org") == "tls-www.todo.example.org"
    longest = ".".join(["a" * 63] * 3 + ["b" * 61])  # 253 characters, as long as a hostname gets
    assert len(tls_secret_name(longest)) <= 253 and tls_secret_name(longest) != tls_secret_name(longest[:-1] + "c")
    plain = one(release_objects(django_static()), "Ingress")
    assert "tls" not in plain["spec"] and plain["spec"]["ingressClassName"] == "nginx"
    workers_only = release_objects(flask_todo(process_types={"worker": "python worker.py"}))
    assert not by_kind(workers_only, "Service") and not by_kind(workers_only, "Ingress")
    assert [p["metadata"]["name"] for p in by_kind(workers_only, "NetworkPolicy")] == ["default-deny", "egress"]


def test_pod_disruption_budget_only_from_two_web_pods():
    pdb = one(release_objects(flask_todo()), "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "todo",
                                                       "app.kubernetes.io/component": "web"}}
    assert not by_kind(release_objects(flask_todo(formation={"web": 1})), "PodDisruptionBudget")
    autoscaled = release_objects(flask_todo(autoscale=Autoscale(2, 6, 20)))
    assert one(autoscaled, "PodDisruptionBudget")
    assert not by_kind(release_objects(fastapi_hello()), "PodDisruptionBudget")


def test_autoscaling_with_a_horizontal_pod_autoscaler():
    objects = release_objects(flask_todo(autoscale=Autoscale(min=2, max=6, target=20)))
    hpa = one(objects, "HorizontalPodAutoscaler", "web")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["metrics"] == [{"type": "External", "external": {
        "metric": {"name": "shipyard_instance_in_flight_requests", "selector": {"matchLabels": {"app": "todo"}}},
        "target": {"type": "AverageValue", "averageValue": "20"}}}]
    # The autoscaler owns web's count: an apply naming one would reset it. Workers keep theirs.
    assert "replicas" not in one(objects, "Deployment", "web")["spec"]
    assert one(objects, "Deployment", "worker")["spec"]["replicas"] == 1
    assert render(flask_todo(autoscale=Autoscale(2, 6, 20))).notes == []


def test_scale_to_zero_without_keda_becomes_one_with_a_reason():
    rendered = render(django_static())
    hpa = one(rendered.runtime, "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4)
    assert any("needs KEDA" in note and "between 1 and 4" in note for note in rendered.notes)
    assert not [o for o in rendered.runtime if o["kind"] == "ScaledObject"]


def test_keda_scaled_object():
    # ScaledObject is KEDA's CRD: kubernetes-validate has no schema for it, so its structure is checked by value
    # against KEDA's documented ScaledObject spec (keda.sh/v1alpha1).
    rendered = render(fastapi_hello())
    assert not [o for o in rendered.runtime if o["kind"] == "HorizontalPodAutoscaler"]
    scaled = one(rendered.runtime, "ScaledObject", "web")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert set(scaled) == {"apiVersion", "kind", "metadata", "spec"}
    assert scaled["metadata"]["namespace"] == "shipyard-fastapi-hello"
    spec = scaled["spec"]
    assert set(spec) == {"scaleTargetRef", "minReplicaCount", "maxReplicaCount", "pollingInterval",
                         "cooldownPeriod", "advanced", "triggers"}
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 10)
    assert spec["cooldownPeriod"] == 1800  # the local backend's scale-to-zero delay
    assert all(isinstance(spec[k], int) for k in ("minReplicaCount", "maxReplicaCount", "pollingInterval",
                                                   "cooldownPeriod"))
    [trigger] = spec["triggers"]
    assert trigger == {"type": "prometheus", "metadata": {
        "serverAddress": "http://prometheus-operated.monitoring.svc:9090",
        "query": 'sum(shipyard_instance_in_flight_requests{app="fastapi-hello"})',
        "threshold": "2.5", "activationThreshold": "0"}}
    assert all(isinstance(v, str) for v in trigger["metadata"].values())  # KEDA's metadata is a string map
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    # The behavior block is the HPA's own type: validate it inside an HPA.
    probe_hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
                 "spec": {"scaleTargetRef": spec["scaleTargetRef"], "maxReplicas": 10, "behavior": behavior}}
    for version in KUBE_VERSIONS:
        kubernetes_validate.validate(probe_hpa, version, strict=True)
    assert "replicas" not in one(rendered.runtime, "Deployment", "web")["spec"]
    assert rendered.notes == []


def test_network_policies_isolate_the_namespace():
    objects = release_objects(flask_todo())
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind(objects, "NetworkPolicy")}
    ours = {"matchLabels": {"app.kubernetes.io/managed-by": "shipyard"}}
    assert policies["default-deny"] == {"podSelector": ours, "policyTypes": ["Ingress", "Egress"]}
    web = policies["web-from-ingress"]
    assert web["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "todo",
                                                  "app.kubernetes.io/component": "web"}}
    assert web["ingress"] == [{"from": [{"namespaceSelector": {"matchLabels": {
        "kubernetes.io/metadata.name": "ingress-nginx"}}}], "ports": [{"protocol": "TCP", "port": 8080}]}]
    egress = policies["egress"]["egress"]
    assert egress[0] == {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                 "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                         "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}
    assert egress[1] == {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "shipyard-db"}},
                                 "podSelector": {"matchLabels": {"cnpg.io/cluster": "todo-db"}}}],
                         "ports": [{"protocol": "TCP", "port": 5432}]}
    internet = egress[2]["to"]
    v4, v6 = internet[0]["ipBlock"], internet[1]["ipBlock"]
    assert v4["cidr"] == "0.0.0.0/0" and v6["cidr"] == "::/0"
    assert {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10"} <= set(v4["except"])
    assert {"fc00::/7", "fe80::/10"} <= set(v6["except"])
    # Nothing else is reachable: no rule names another namespace or selects all namespaces.
    assert len(egress) == 3
    in_cluster = release_objects(django_static())
    slug_rule = {p["metadata"]["name"]: p for p in by_kind(in_cluster, "NetworkPolicy")}["egress"]["spec"]["egress"][1]
    assert slug_rule["to"][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "shipyard-system"}}
    assert slug_rule["ports"] == [{"protocol": "TCP", "port": 8080}]


def test_loopback_start_commands_are_reported():
    # The buildpack's generated commands bind 127.0.0.1 (for the local edge): unreachable in a pod.
    assert any("loopback" in note for note in render(django_static()).notes)
    assert not any("loopback" in note for note in render(fastapi_hello()).notes)
    assert not any("loopback" in note for note in render(flask_todo()).notes)


def test_the_probe_script_counts_any_status_below_500_as_healthy_as_locally(tmp_path) -> None:
    """The exec probe's bash against a real HTTP server on loopback, with the app's hostname as Host."""
    import http.server
    import os
    import subprocess
    import threading

    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers["Host"])
            self.send_response({"/ok": 200, "/missing": 404, "/boom": 500}.get(self.path, 404))
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        def probe(path: str, port: int) -> int:
            return subprocess.run(["/bin/bash", "-c", HTTP_CHECK, "probe", path, "todo.apps.example.com"],
                                  env={**os.environ, "PORT": str(port)}, stderr=subprocess.DEVNULL,
                                  timeout=10).returncode
        port = server.server_port
        assert probe("/ok", port) == 0 and probe("/missing", port) == 0
        assert probe("/boom", port) != 0
        assert probe("/ok", free_port()) != 0  # nothing listens: no answer
        assert seen == ["todo.apps.example.com"] * 3
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_shared_files_are_at_their_paths_in_every_pod_read_only() -> None:
    """What the local sandbox binds in besides the slug (the CA certificate PGSSLROOTCERT names) is there in a
    pod too, from a per-release Secret, each file at the path the config names."""
    ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    objects = release_objects(flask_todo(files={"/etc/shipyard/pg-ca.crt": ca, "/srv/b.txt": "b"}))
    secret = one(objects, "Secret", "files-v7")
    assert secret["stringData"] == {"f0": ca, "f1": "b"} and secret["immutable"] is True
    for kind, name in (("Deployment", "web"), ("Deployment", "worker"), ("Job", None)):
        pod = one(objects, kind, name)["spec"]["template"]["spec"]
        assert {"name": "files", "secret": {"secretName": "files-v7", "defaultMode": 0o444}} in pod["volumes"]
        mounts = pod["containers"][0]["volumeMounts"]
        assert {"name": "files", "mountPath": "/etc/shipyard/pg-ca.crt", "subPath": "f0", "readOnly": True} in mounts
        assert {"name": "files", "mountPath": "/srv/b.txt", "subPath": "f1", "readOnly": True} in mounts
    for obj in objects:
        if not obj["apiVersion"].startswith("keda.sh/"):
            for version in KUBE_VERSIONS:
                assert kubernetes_validate.validate(obj, version, strict=True) == version
    assert not by_kind(release_objects(flask_todo()), "Secret")[2:]  # none without files: config and slug only
