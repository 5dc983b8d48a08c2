"""The PostgreSQL add-on on the Kubernetes backend, through CloudNativePG, against the fake API server with its
fake operator (tests/e2e/fake_cnpg.py): the real `shipyard up --backend kubernetes`, CLI and `git push`; and
HTTPS through a cert-manager ClusterIssuer.

What the fake cannot show (a pod connecting to the server with verify-full, CloudNativePG really making the
role) is for a real cluster: tests/e2e/test_kubernetes.py.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .harness import Shipyard, free_port

try:
    import lightkube  # noqa: F401
except ImportError:
    pytest.skip("the `kubernetes` extra (lightkube) is not installed: pip install -e '.[kubernetes]'",
                allow_module_level=True)

from .fake_kube import FakeCluster, fake_cluster

pytestmark = pytest.mark.e2e

FIRST, SECOND = "kubedb", "kubedb-two"
PG = "shipyard-postgres"  # the Cluster's namespace (SHIPYARD_KUBE_POSTGRES_NAMESPACE's default)
CLUSTER = f"/apis/postgresql.cnpg.io/v1/namespaces/{PG}/clusters/shipyard"


@dataclass
class Cloud:
    platform: Shipyard
    fake: FakeCluster

    def cluster(self) -> dict[str, Any]:
        found = self.fake.get(CLUSTER)
        assert found is not None, f"no Cluster; requests: {[r.path for r in self.fake.calls('PATCH')]}"
        return found

    def roles(self) -> dict[str, dict[str, Any]]:
        return {r["name"]: r for r in self.cluster()["spec"].get("managed", {}).get("roles", [])}

    def database(self, app: str) -> dict[str, Any] | None:
        return self.fake.get(f"/apis/postgresql.cnpg.io/v1/namespaces/{PG}/databases/app-{app}")

    def config(self, app: str) -> dict[str, str]:
        return self.platform.api("GET", f"/apps/{app}/config", params={"reveal": "true"}).json()["config"]

    def deploy(self, app: str) -> str:
        self.platform.cli("apps", "create", app)
        return self.platform.push(self.platform.checkout("flask-hello", app)).text


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    root = tmp_path_factory.mktemp("kube-cnpg")
    with fake_cluster(root, cloudnative_pg=True) as fake:
        platform = Shipyard(root / "platform")
        slugs = free_port()
        for name in [k for k in platform.env if k.startswith("SHIPYARD_KUBE_") or k == "SHIPYARD_POSTGRES_ADMIN_URL"]:
            platform.env.pop(name)
        platform.env |= {"SHIPYARD_BACKEND": "kubernetes", "KUBECONFIG": str(fake.kubeconfig),
                         "SHIPYARD_KUBE_SLUG_LISTEN": f"127.0.0.1:{slugs}",
                         "SHIPYARD_KUBE_SLUG_URL": f"https://127.0.0.1:{slugs}",
                         "SHIPYARD_KUBE_CERT_ISSUER": "letsencrypt"}
        platform.start(timeout=90)
        try:
            yield Cloud(platform, fake)
        finally:
            platform.kill_all()
        assert not fake.errors, "the fake cluster failed:\n" + "\n".join(fake.errors)


def test_a_database_is_made_by_cloudnative_pg_and_reaches_the_apps_pods(cloud: Cloud) -> None:
    platform, fake = cloud.platform, cloud.fake
    # On Kubernetes the platform's own server is not started: no pod could reach it.
    assert not (platform.data_dir / "postgres").exists()
    assert "PostgreSQL add-on is unavailable" not in platform.up_log(), platform.up_log()
    pushed = cloud.deploy(FIRST)
    # With a cert-manager ClusterIssuer named, the app is served over HTTPS: its Ingress asks for a certificate.
    assert f"v1 is live at https://{FIRST}.localhost/" in pushed, pushed
    ingress = fake.get(f"/apis/networking.k8s.io/v1/namespaces/shipyard-{FIRST}/ingresses/web")
    assert ingress is not None
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    assert ingress["spec"]["tls"] == [{"hosts": [f"{FIRST}.localhost"], "secretName": f"tls-{FIRST}.localhost"}]
    assert f"https://{FIRST}.localhost/" in platform.cli("apps", "info", FIRST).out

    created = platform.cli("addons", "create", FIRST, "postgres")
    assert "DATABASE_URL" in created.text, created.text

    # One Cluster for every app; the app's role as the embedded server makes it, its password in a Secret
    # CloudNativePG reloads; a Database owned by it, dropped with its object.
    spec = cloud.cluster()["spec"]
    assert spec["postgresql"]["pg_hba"] == ["hostssl sameuser all all scram-sha-256", "host all all all reject"]
    assert spec["enableSuperuserAccess"] is False
    role = cloud.roles()["app_kubedb"]
    assert role["login"] is True and role["connectionLimit"] == 20 and role["ensure"] == "present"
    assert not any(role[k] for k in ("superuser", "createdb", "createrole", "replication", "bypassrls"))
    password_secret = fake.get(f"/api/v1/namespaces/{PG}/secrets/{role['passwordSecret']['name']}")
    assert password_secret is not None and password_secret["type"] == "kubernetes.io/basic-auth"
    assert password_secret["metadata"]["labels"]["cnpg.io/reload"] == "true"
    database = cloud.database(FIRST)
    assert database is not None and database["status"]["applied"] is True
    assert database["spec"] == {"name": "app_kubedb", "owner": "app_kubedb", "cluster": {"name": "shipyard"},
                                "ensure": "present", "databaseReclaimPolicy": "delete"}

    # The same contract as locally: DATABASE_URL and PG*, verified TLS against the Cluster's own CA.
    config = cloud.config(FIRST)
    password = base64.b64decode(password_secret["data"]["password"]).decode()
    host = f"shipyard-rw.{PG}.svc"
    assert config["DATABASE_URL"] == f"postgresql://app_kubedb:{password}@{host}:5432/app_kubedb"
    assert (config["PGHOST"], config["PGPORT"], config["PGUSER"], config["PGDATABASE"]) == \
        (host, "5432", "app_kubedb", "app_kubedb")
    assert config["PGSSLMODE"] == "verify-full"
    ca_file = platform.data_dir / "kube" / "postgres-ca.crt"
    assert config["PGSSLROOTCERT"] == str(ca_file)
    ca = fake.get(f"/api/v1/namespaces/{PG}/secrets/shipyard-ca")
    assert ca is not None and ca_file.read_bytes() == base64.b64decode(ca["data"]["ca.crt"])

    # The release with the database: its pods find the CA at that path, and may connect to the Cluster's
    # instances on 5432 (and to no other private address).
    namespace = f"shipyard-{FIRST}"
    files = fake.get(f"/api/v1/namespaces/{namespace}/secrets/files-v2")
    assert files is not None, [s["metadata"]["name"] for s in fake.find("Secret", namespace)]
    assert ca_file.read_bytes() in [base64.b64decode(v) for v in files["data"].values()]
    egress = fake.get(f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies/egress")
    assert egress is not None
    assert {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": PG}},
                    "podSelector": {"matchLabels": {"cnpg.io/cluster": "shipyard"}}}],
            "ports": [{"protocol": "TCP", "port": 5432}]} in egress["spec"]["egress"]

    doctor = platform.cli("doctor", check=False).text
    assert "CloudNativePG: Cluster shipyard in namespace shipyard-postgres" in doctor, doctor


def test_a_second_app_gets_its_own_role_and_destroying_the_add_on_drops_only_its_own(cloud: Cloud) -> None:
    platform = cloud.platform
    if cloud.database(FIRST) is None:
        pytest.skip("needs the first test's database")
    cloud.deploy(SECOND)
    platform.cli("addons", "create", SECOND, "postgres")
    assert {"app_kubedb", "app_kubedb_two"} <= set(cloud.roles())
    first_password = cloud.config(FIRST)["PGPASSWORD"]
    assert cloud.config(SECOND)["PGPASSWORD"] != first_password

    again = platform.cli("addons", "create", SECOND, "postgres", check=False)
    assert again.code != 0 and "already has a PostgreSQL database" in again.text, again.text

    # Backups are CloudNativePG's there: said, not failed obscurely.
    backup = platform.cli("db", "backup", SECOND, check=False)
    assert backup.code != 0 and "ScheduledBackup" in backup.text, backup.text

    platform.cli("addons", "destroy", SECOND, "postgres", "--confirm", SECOND)
    assert cloud.database(SECOND) is None
    roles = cloud.roles()
    assert roles["app_kubedb_two"] == {"name": "app_kubedb_two", "ensure": "absent"}
    assert roles["app_kubedb"]["ensure"] == "present"
    assert cloud.fake.get(f"/api/v1/namespaces/{PG}/secrets/app-kubedb-two-password") is None
    assert "DATABASE_URL" not in cloud.config(SECOND)
    assert cloud.config(FIRST)["PGPASSWORD"] == first_password and cloud.database(FIRST) is not None


def test_destroying_an_app_drops_its_database_and_a_restart_keeps_the_others(cloud: Cloud) -> None:
    platform = cloud.platform
    if cloud.database(FIRST) is None:
        pytest.skip("needs the first test's database")
    platform.cli("addons", "create", SECOND, "postgres")
    platform.cli("apps", "destroy", SECOND, "--confirm", SECOND)
    assert cloud.database(SECOND) is None and cloud.roles()["app_kubedb_two"]["ensure"] == "absent"
    config = cloud.config(FIRST)
    platform.stop()
    (platform.data_dir / "kube" / "postgres-ca.crt").unlink()
    platform.start(timeout=90)
    # The CA is copied again at start (CloudNativePG renews it before it expires); the app keeps its database.
    assert (platform.data_dir / "kube" / "postgres-ca.crt").is_file()
    assert cloud.config(FIRST) == config and cloud.database(FIRST) is not None

    platform.cli("apps", "destroy", FIRST, "--confirm", FIRST)
    assert cloud.database(FIRST) is None
    assert cloud.roles()["app_kubedb"]["ensure"] == "absent"
