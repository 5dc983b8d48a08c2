"""`shipyard up --backend kubernetes` end to end, against a fake API server (tests/e2e/fake_kube.py) that acts
as the cluster's controllers and kubelet: the real CLI, a real `git push` and build, the platform's own
lightkube client over HTTP, and each release's slug really downloaded from the platform's TLS slug server by
the init container's script, with the token and CA from the Secret the platform applied.

The tests share one platform and one app, in order: deploy, scale and run; what `ps` and the push show; a
second push, a restart, a config change, autoscaling and a rollback; a failing release command and slugs that
cannot be fetched; which release command a config change runs; the pod watcher after a refused read; doctor
and destroy. What no fake can show (pods serving, the Ingress, zero downtime under load) is
tests/e2e/test_kubernetes.py's, against a real cluster.
"""

from __future__ import annotations

import base64
import re
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import Shipyard, free_port

try:
    import lightkube  # noqa: F401
except ImportError:
    pytest.skip("the `kubernetes` extra (lightkube) is not installed: pip install -e '.[kubernetes]'",
                allow_module_level=True)

from shipyard.runtime.kubernetes.names import app_labels
from shipyard.runtime.kubernetes.slug import FETCH_SCRIPT
from shipyard.runtime.kubernetes.slug_tokens import slug_token

from .fake_kube import FakeCluster, Fetch, fake_cluster
from .fake_pod import host_python, serve_once

pytestmark = pytest.mark.e2e

APP = "kubehello"
NAMESPACE = f"shipyard-{APP}"
RELEASE_COMMAND = "echo migrated"
WATCH_EVERY = 3  # seconds between the backend's reads of the pods (kube_backend.WATCH_EVERY)
WATCH = 20  # seconds to wait for the watcher to show a change


class Kube:
    """The platform, the fake cluster it runs apps on, and what the tests before left."""

    def __init__(self, platform: Shipyard, fake: FakeCluster) -> None:
        self.platform, self.fake = platform, fake
        self.work: Path | None = None
        self.first_push = ""

    def needs_app(self) -> Path:
        if self.work is None:
            pytest.skip("needs the first test's deploy")
        return self.work

    def deployment(self, name: str = "web") -> dict[str, Any]:
        found = self.fake.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}")
        assert found is not None, f"no Deployment {name}; namespaces: {self.fake.namespaces()}"
        return found

    def release_of_web(self) -> str:
        return self.deployment()["spec"]["template"]["metadata"]["annotations"]["shipyard.internal/release"]

    def secret(self, name: str) -> dict[str, Any] | None:
        return self.fake.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{name}")

    def web_pods(self) -> list[dict[str, Any]]:
        return self.fake.pods(NAMESPACE, {"app.kubernetes.io/component": "web"})

    def fetches_of(self, version: int) -> list[Fetch]:
        return [f for f in self.fake.fetches if f.url.endswith(f"/slugs/{APP}/v{version}.tar.gz")]

    def token(self, version: int) -> str:
        return slug_token((self.platform.data_dir / "slug-signing.key").read_bytes().strip(), APP, version)

    def ps_rows(self, one_offs: bool = False) -> list[tuple[str, str, str]]:
        """`shipyard ps` as (process type, state, release) rows."""
        out = self.platform.cli("ps", APP).out
        rows = re.findall(r"^([\w-]+)\.[a-z0-9]+: (\w+).*?  (v\d+)  ", out, re.MULTILINE)
        return [r for r in rows if one_offs or r[0] != "one-off"]

    def ps_shows(self, rows: list[tuple[str, str, str]]) -> None:
        """Wait until `shipyard ps` lists these rows, in any order (finished one-off pods aside: see
        test_ps_does_not_list_a_finished_one_off_process)."""
        last: list[tuple[str, str, str]] = []

        def matches() -> bool:
            nonlocal last
            last = self.ps_rows()
            return sorted(last) == sorted(rows)
        try:
            self.platform.wait_for(matches, timeout=WATCH, interval=0.5)
        except AssertionError:
            raise AssertionError(f"`shipyard ps {APP}` showed {last}, not {rows}") from None


@pytest.fixture(scope="module")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kube]:
    root = tmp_path_factory.mktemp("kube-fake-cluster")
    with fake_cluster(root) as fake:
        platform = Shipyard(root / "platform")
        slugs = free_port()
        for name in [k for k in platform.env if k.startswith("SHIPYARD_KUBE_")]:
            platform.env.pop(name)  # a developer's real-cluster settings (test_kubernetes.py) do not apply
        platform.env |= {"SHIPYARD_BACKEND": "kubernetes", "KUBECONFIG": str(fake.kubeconfig),
                         "SHIPYARD_KUBE_SLUG_LISTEN": f"127.0.0.1:{slugs}",
                         "SHIPYARD_KUBE_SLUG_URL": f"https://127.0.0.1:{slugs}"}
        platform.start(timeout=90)
        try:
            assert f"Slugs for the cluster's pods: https://127.0.0.1:{slugs}" in platform.up_log()
            yield Kube(platform, fake)
        finally:
            platform.kill_all()
            # For a failure's post-mortem: every request the platform made, in order.
            (root / "fake-kube-requests.txt").write_text("".join(
                f"{r.status} {r.method} {r.path} {r.manager or r.query.get('labelSelector', '')}\n"
                for r in fake.requests))
        assert not fake.errors, "the fake cluster failed:\n" + "\n".join(fake.errors)
    with pytest.raises(ConnectionRefusedError):  # the fake's port is closed again
        socket.create_connection(("127.0.0.1", fake.port), timeout=5).close()


def test_a_push_runs_on_the_cluster_with_its_slug_fetched_over_tls(kube: Kube) -> None:
    platform, fake = kube.platform, kube.fake
    assert fake.calls("GET", "/api/v1/namespaces/default"), "the backend did not check the API server at start"
    platform.cli("apps", "create", APP)
    platform.cli("apps", "set", APP, "--release-command", RELEASE_COMMAND)
    work = platform.checkout("flask-hello", APP)
    pushed = kube.first_push = platform.push(work).text
    kube.work = work
    assert f"Running release command: {RELEASE_COMMAND}" in pushed, pushed
    assert "Release command succeeded" in pushed, pushed
    assert re.search(r"v1 is live at https?://", pushed), pushed

    # Applied in stages, each by server-side apply as Shipyard's field manager: the namespace first, the
    # release command's Job before any Deployment.
    patches = fake.calls("PATCH", f"/{NAMESPACE}")
    assert patches and all(p.manager == "shipyard" and p.status in (200, 201) for p in patches)
    order = [p.path.rsplit("/", 2)[-2] for p in patches]
    assert order[0] == "namespaces" and order.index("jobs") < order.index("deployments"), order
    job = fake.get(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/release-v1")
    assert job is not None and job["status"]["succeeded"] == 1
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][-1] == RELEASE_COMMAND

    # The pods' slug: fetched by the real script, over TLS verified with the platform's CA, its checksum
    # checked, with release v1's own token, unpacked into app/ and venv/.
    fetched = kube.fetches_of(1)
    assert fetched, [f.url for f in fake.fetches]
    first = fetched[0]
    assert first.ok, f"the slug fetch failed ({first.returncode}): {first.stderr}"
    assert first.verified and first.script_is_fetch_script and first.slug_root == "/slug"
    assert first.url == f"{platform.env['SHIPYARD_KUBE_SLUG_URL']}/slugs/{APP}/v1.tar.gz"
    assert first.ca == (platform.data_dir / "ca" / "ca.crt").read_text()
    assert first.token == kube.token(1)
    assert first.unpacked == ["app", "venv"]
    assert (first.root / "app" / "app.py").is_file()
    secret = kube.secret("slug-v1")
    assert secret is not None and "stringData" not in secret and secret["immutable"] is True
    assert base64.b64decode(secret["data"]["token"]).decode() == first.token
    assert base64.b64decode(secret["data"]["ca.crt"]).decode() == first.ca

    # The pod template: the runner image for the slug's Python, the web command bound to every address.
    web = kube.deployment()
    pod = web["spec"]["template"]["spec"]
    container, init = pod["containers"][0], pod["initContainers"][0]
    cfg = (first.root / "venv" / "pyvenv.cfg").read_text()
    minor = re.search(r"^version(?:_info)?\s*=\s*3\.(\d+)", cfg, re.MULTILINE)
    assert minor, cfg
    assert container["image"] == init["image"] == f"python:3.{minor[1]}-slim"
    command = container["command"][-1]
    assert "0.0.0.0:$PORT" in command and "127.0.0.1" not in command, command
    assert init["command"][:2] == ["python3", "-c"] and init["command"][2] == FETCH_SCRIPT
    assert all("valueFrom" in e for e in init["env"] if e["name"] in ("SLUG_TOKEN", "SLUG_CA"))
    assert first.token not in str(web)  # the token is in the Secret only
    assert web["status"]["observedGeneration"] == web["metadata"]["generation"]
    pods = kube.web_pods()
    assert len(pods) == 1 and pods[0]["metadata"]["labels"]["app.kubernetes.io/version"] == "v1"

    # `shipyard ps` shows the cluster's pods, and `shipyard logs` what they print.
    kube.ps_shows([("web", "up", "v1")])
    name = pods[0]["metadata"]["name"]
    platform.wait_for(lambda: f"fake pod {name} runs: " in platform.cli("logs", APP).out, timeout=WATCH)

    # Scaling: the Deployment's replicas, two pods, a disruption budget once there are two.
    scaled = platform.cli("scale", APP, "web=2").text
    assert f"Scaled {APP}: web=2" in scaled, scaled
    assert kube.deployment()["spec"]["replicas"] == 2
    assert len(kube.web_pods()) == 2
    assert fake.get(f"/apis/policy/v1/namespaces/{NAMESPACE}/poddisruptionbudgets/web") is not None
    kube.ps_shows([("web", "up", "v1"), ("web", "up", "v1")])

    # A one-off process: a Job of the current release, its log and exit code passed through.
    ran = platform.cli("run", APP, "--", "echo", "hi", check=False)
    assert ran.code == 0, ran.text
    assert "fake ran: echo hi" in ran.out, ran.text
    jobs = fake.find("Job", NAMESPACE, **{"app.kubernetes.io/component": "one-off"})
    assert [j["metadata"]["name"].startswith("run-v1-") for j in jobs] == [True], jobs
    assert jobs[0]["spec"]["template"]["spec"]["containers"][0]["name"] == "one-off"
    assert jobs[0]["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "echo hi"
    assert "app[run.1]: fake ran: echo hi" in platform.cli("logs", APP).out
    failing = platform.cli("run", APP, "--", "exit", "3", check=False)
    assert failing.code == 3 and "fake ran: exit 3" in failing.out, failing.text


def test_the_fetched_slug_serves_as_the_runner_image_would_run_it(kube: Kube, tmp_path: Path) -> None:
    """The container's own command, environment, uid and readiness probe, over the slug the init container
    fetched, in python:3.X-slim's layout (fake_pod.py): the venv packed for /slug and /usr/local's Python runs."""
    kube.needs_app()
    fetched = kube.fetches_of(1)[0]
    cfg = (fetched.root / "venv" / "pyvenv.cfg").read_text()
    minor = re.search(r"^version(?:_info)?\s*=\s*(3\.\d+)", cfg, re.MULTILINE)
    assert minor, cfg
    python = host_python(minor[1])
    if python is None:
        pytest.skip(f"the slug is for Python {minor[1]}, which this machine has in no pyenv-like install")
    slug = tmp_path / "slug"
    shutil.copytree(fetched.root, slug, symlinks=True)
    template = kube.deployment()["spec"]["template"]
    assert template["metadata"]["annotations"]["shipyard.internal/release"] == "v1"
    served = serve_once(kube.fake.objects, NAMESPACE, template, slug, python)
    assert served.returncode == 0, served.output
    status, _, body = served.answer.partition("\n")
    assert status == "200" and "Hello" in body, served.answer


def test_ps_does_not_list_a_finished_one_off_process(kube: Kube) -> None:
    """As on the local backend, where a one-off process is never an instance. Fails while status.py's
    instance_states lists one-off pods: a finished `shipyard run` shows in `ps` as `one-off.xxxxx: stopped`,
    with `last restart: exited with status 0`, for the Job's hour (ttlSecondsAfterFinished)."""
    kube.needs_app()
    fake = kube.fake
    assert fake.find("Pod", NAMESPACE, **{"app.kubernetes.io/component": "one-off"}), "no one-off pod"
    seen = len(fake.reads("/pods", app_labels(APP)))  # the watcher's reads: wait for one after the run ended
    kube.platform.wait_for(lambda: len(fake.reads("/pods", app_labels(APP))) >= seen + 2, timeout=WATCH)
    out = kube.platform.cli("ps", APP).out
    assert "one-off" not in out, out


def test_the_release_commands_output_shows_as_on_the_local_backend(kube: Kube) -> None:
    """Locally the release command's output is in the push's output and the app's log (rollout.py runs it
    with run_once). Fails while the Kubernetes backend shows it only when the command fails."""
    kube.needs_app()
    assert "fake ran: echo migrated" in kube.first_push, kube.first_push
    assert "fake ran: echo migrated" in kube.platform.cli("logs", APP).out


def test_a_second_push_a_restart_a_config_change_and_a_rollback(kube: Kube) -> None:
    platform, fake = kube.platform, kube.fake
    work = kube.needs_app()
    before = {p["metadata"]["name"] for p in kube.web_pods()}
    app_py = work / "app.py"
    app_py.write_text(app_py.read_text().replace('VERSION = "1"', 'VERSION = "2"'))
    platform.commit(work, "v2")
    pushed = platform.push(work).text
    assert re.search(r"v2 is live at https?://", pushed), pushed

    second = kube.fetches_of(2)
    assert second and second[0].verified, [(f.url, f.stderr) for f in fake.fetches]
    assert second[0].token == kube.token(2) != kube.token(1)
    assert second[0].sha256 != kube.fetches_of(1)[0].sha256  # a new build, a new slug
    assert 'VERSION = "2"' in (second[0].root / "app" / "app.py").read_text()
    # v1's pods are replaced by v2's, at the scale the app had; v1's Secrets are pruned.
    pods = kube.web_pods()
    assert len(pods) == 2 and {p["metadata"]["labels"]["app.kubernetes.io/version"] for p in pods} == {"v2"}
    assert not before & {p["metadata"]["name"] for p in pods}
    assert kube.secret("slug-v1") is None and kube.secret("config-v1") is None
    assert kube.secret("slug-v2") is not None
    kube.ps_shows([("web", "up", "v2"), ("web", "up", "v2")])

    # A restart: a pod template annotation applied by a field manager of its own; new pods, same release.
    before = {p["metadata"]["name"] for p in kube.web_pods()}
    assert "Restarted" in platform.cli("restart", APP).out
    restarts = fake.calls("PATCH", f"/{NAMESPACE}/deployments/web")
    assert restarts[-1].manager == "shipyard-restart", [(r.manager, r.status) for r in restarts]
    web = kube.deployment()
    assert "shipyard.dev/restarted-at" in web["spec"]["template"]["metadata"]["annotations"]
    assert {e["manager"] for e in web["metadata"]["managedFields"]} >= {"shipyard", "shipyard-restart"}
    pods = kube.web_pods()
    assert len(pods) == 2 and not before & {p["metadata"]["name"] for p in pods}
    assert {p["metadata"]["labels"]["app.kubernetes.io/version"] for p in pods} == {"v2"}

    # A config change: a new release (v3) with the same slug and a Secret of its own for the config.
    changed = platform.cli("config", "set", APP, "GREETING=Ahoy")
    assert changed.code == 0, changed.text
    assert kube.release_of_web() == "v3"
    config = kube.secret("config-v3")
    assert config is not None and base64.b64decode(config["data"]["GREETING"]).decode() == "Ahoy"
    env_from = kube.deployment()["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    assert env_from == [{"secretRef": {"name": "config-v3"}}]
    assert "Ahoy" not in str(kube.deployment())  # config only in the Secret
    assert kube.fetches_of(3)[0].sha256 == second[0].sha256

    # A rollback: a new release (v4) with v1's slug and config, fetched again with v4's own token.
    rolled = platform.cli("rollback", APP, "v1").text
    assert f"Rolled {APP} back to v1: now live as v4." in rolled, rolled
    fourth = kube.fetches_of(4)
    assert fourth and fourth[0].verified and fourth[0].token == kube.token(4), [(f.url, f.stderr)
                                                                                  for f in fake.fetches]
    assert fourth[0].sha256 == kube.fetches_of(1)[0].sha256  # the same slug, the same archive
    assert 'VERSION = "1"' in (fourth[0].root / "app" / "app.py").read_text()
    assert {p["metadata"]["labels"]["app.kubernetes.io/version"] for p in kube.web_pods()} == {"v4"}
    assert kube.release_of_web() == "v4"
    assert "GREETING" not in (kube.secret("config-v4") or {}).get("data", {})
    kube.ps_shows([("web", "up", "v4"), ("web", "up", "v4")])

    # Autoscaling: a HorizontalPodAutoscaler owns the web count (KEDA is not installed: min 1); off again,
    # the Deployment has the count the app had.
    scaled = platform.cli("scale", APP, "web", "--min", "1", "--max", "3").text
    assert "now scales between 1 and 3" in scaled, scaled
    hpa = fake.get(f"/apis/autoscaling/v2/namespaces/{NAMESPACE}/horizontalpodautoscalers/web")
    assert hpa is not None and (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 3), hpa
    assert "replicas" not in kube.deployment()["spec"]
    off = platform.cli("scale", APP, "web", "--off").text
    assert "no longer autoscaled" in off, off
    assert fake.get(f"/apis/autoscaling/v2/namespaces/{NAMESPACE}/horizontalpodautoscalers/web") is None
    assert kube.deployment()["spec"].get("replicas") == 2, kube.deployment()["spec"]
    kube.ps_shows([("web", "up", "v4"), ("web", "up", "v4")])


def test_a_failing_release_command_changes_nothing_serving(kube: Kube) -> None:
    platform, fake = kube.platform, kube.fake
    work = kube.needs_app()
    live = kube.release_of_web()
    pods = {p["metadata"]["name"] for p in kube.web_pods()}
    patched = len(fake.calls("PATCH", "/deployments/"))
    platform.cli("apps", "set", APP, "--release-command", "exit 1")
    try:
        (work / "NOTES").write_text("a change\n")
        platform.commit(work, "a release command that fails")
        pushed = platform.push(work, check=False).text
    finally:
        platform.cli("apps", "set", APP, "--release-command", RELEASE_COMMAND)
    assert "the release command `exit 1` exited with code 1" in pushed, pushed
    assert "fake ran: exit 1" in pushed, pushed  # its last lines, read from its pod's log
    assert kube.release_of_web() == live
    assert {p["metadata"]["name"] for p in kube.web_pods()} == pods
    assert len(fake.calls("PATCH", "/deployments/")) == patched  # no Deployment was applied


def test_a_slug_that_cannot_be_fetched_changes_nothing_serving(kube: Kube) -> None:
    platform, fake = kube.platform, kube.fake
    kube.needs_app()
    live = kube.release_of_web()
    pods = {p["metadata"]["name"] for p in kube.web_pods()}
    fake.tamper_checksum = True  # the pods are told a wrong SLUG_SHA256: the fetch script must refuse the slug
    try:
        # With a release command, its Job's pod fails first, and nothing else is applied.
        failed = platform.cli("config", "set", APP, "GREETING=Hoi", check=False)
        assert failed.code != 0, failed.text
        assert "could not fetch the release's slug" in failed.text and "slug checksum mismatch" in failed.text, \
            failed.text
        job = fake.find("Job", NAMESPACE, **{"app.kubernetes.io/component": "release"})[-1]
        assert job["status"].get("failed") == 1, job["status"]
        assert kube.release_of_web() == live
        # Without one, the Deployment's new pod cannot start, and the previous release is put back.
        patched = len(fake.calls("PATCH", "/deployments/web"))
        failed = platform.cli("rollback", APP, "v2", "--skip-release-phase", check=False)
        assert failed.code != 0, failed.text
        assert "could not fetch the release's slug" in failed.text and "slug checksum mismatch" in failed.text, \
            failed.text
        assert len(fake.calls("PATCH", "/deployments/web")) == patched + 2  # the new release's, then the old one
    finally:
        fake.tamper_checksum = False
    assert kube.release_of_web() == live
    assert {p["metadata"]["name"] for p in kube.web_pods()} == pods  # the serving pods were never touched
    tampered = [f for f in fake.fetches if f.sha256 == "0" * 64]
    assert len(tampered) == 2 and all(f.returncode != 0 and "checksum mismatch" in f.stderr and f.unpacked == []
                                      for f in tampered), tampered
    kube.ps_shows([("web", "up", live), ("web", "up", live)])


def test_a_config_change_runs_the_release_command_its_build_was_pushed_with(kube: Kube) -> None:
    """The release command setting applies from the next push: it is kept with the build (releases.py's
    release_command_of), so a config change or a rollback "never runs another release's migrations", as on
    the local backend. Fails while kube_backend.kube_release passes the app's current setting
    (`release_command=app.release_command`), which KubeRelease prefers to the build's own command."""
    platform, fake = kube.platform, kube.fake
    kube.needs_app()
    platform.cli("apps", "set", APP, "--release-command", "echo not-pushed-yet")
    changed = platform.cli("config", "set", APP, "COLOUR=blue", check=False)
    job = fake.find("Job", NAMESPACE, **{"app.kubernetes.io/component": "release"})[-1]
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][-1] == RELEASE_COMMAND, changed.text
    assert changed.code == 0, changed.text


def test_the_pod_watcher_goes_on_after_the_api_refuses_a_read(kube: Kube) -> None:
    """One refused read of the app's pods (401: a token being rotated) must not stop `shipyard ps` from
    following the cluster. Fails while kube_backend._watch catches only PlatformError: Unauthorized (and any
    other error) ends the watcher for good, and `ps` shows the last read until the platform restarts."""
    platform, fake = kube.platform, kube.fake
    kube.needs_app()
    live = kube.release_of_web()
    fake.refuse("GET", "/pods", app_labels(APP), code=401)
    platform.wait_for(lambda: fake.refusals_left == 0, timeout=WATCH)
    refused = len(fake.reads("/pods", app_labels(APP)))
    try:
        platform.wait_for(lambda: len(fake.reads("/pods", app_labels(APP))) > refused, timeout=4 * WATCH_EVERY)
    except AssertionError:
        raise AssertionError("the backend's pod watcher stopped reading the app's pods after one 401") from None
    assert f"Scaled {APP}: web=1" in platform.cli("scale", APP, "web=1").out
    assert len(kube.web_pods()) == 1
    kube.ps_shows([("web", "up", live)])


def test_without_cloudnative_pg_the_database_add_on_says_what_to_do(kube: Kube) -> None:
    """The platform's own server is not started (it listens on this machine's loopback, which no pod reaches);
    with no CloudNativePG on the cluster and no SHIPYARD_POSTGRES_ADMIN_URL, the add-on says what to install."""
    kube.needs_app()
    assert not (kube.platform.data_dir / "postgres").exists()
    refused = kube.platform.cli("addons", "create", APP, "postgres", check=False)
    assert refused.code != 0 and "CloudNativePG is not installed" in refused.text, refused.text
    assert "SHIPYARD_POSTGRES_ADMIN_URL" in refused.text and "Debian" not in refused.text, refused.text
    assert "DATABASE_URL" not in kube.platform.cli("config", APP).out


def test_doctor_names_the_cluster_and_destroying_the_app_deletes_its_namespace(kube: Kube) -> None:
    platform, fake = kube.platform, kube.fake
    kube.needs_app()
    # `shipyard doctor` names the backend and the cluster (other layers may be degraded on this machine).
    doctor = platform.cli("doctor", check=False).text
    assert "kubernetes" in doctor and fake.url in doctor, doctor
    assert "pods: each app in a namespace of its own" in doctor and "edge:" not in doctor, doctor

    destroyed = platform.cli("apps", "destroy", APP, "--confirm", APP).text
    assert f"Destroyed {APP}." in destroyed, destroyed
    assert fake.calls("DELETE", f"/api/v1/namespaces/{NAMESPACE}")
    assert NAMESPACE not in fake.namespaces()
    assert not fake.find("Pod", NAMESPACE) and not fake.find("Deployment", NAMESPACE)
    listed = platform.cli("apps").out
    assert APP not in listed, listed
