"""CloudNativePG's objects for the PostgreSQL add-on (runtime/kubernetes/postgres.py), compared as values."""

from shipyard.addons.postgres import CONNECTION_LIMIT
from shipyard.runtime.kubernetes import Peer
from shipyard.runtime.kubernetes import postgres as pg
from shipyard.runtime.kubernetes.postgres import PostgresCluster

WHERE = PostgresCluster()


def test_one_cluster_lists_a_role_per_app_with_the_embedded_servers_attributes():
    cluster = pg.cluster_object(WHERE, ["todo", "my-blog"], removed=["gone"])
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1" and cluster["kind"] == "Cluster"
    assert cluster["metadata"]["name"] == "shipyard" and cluster["metadata"]["namespace"] == "shipyard-postgres"
    spec = cluster["spec"]
    assert spec["instances"] == 1 and spec["storage"] == {"size": "10Gi"}
    assert spec["enableSuperuserAccess"] is False
    assert spec["postgresql"]["pg_hba"] == ["hostssl sameuser all all scram-sha-256", "host all all all reject"]
    assert spec["managed"]["roles"] == [
        {"name": "app_my_blog", "ensure": "present", "login": True, "superuser": False, "createdb": False,
         "createrole": False, "replication": False, "bypassrls": False, "inherit": True,
         "connectionLimit": CONNECTION_LIMIT, "passwordSecret": {"name": "app-my-blog-password"}},
        {"name": "app_todo", "ensure": "present", "login": True, "superuser": False, "createdb": False,
         "createrole": False, "replication": False, "bypassrls": False, "inherit": True,
         "connectionLimit": CONNECTION_LIMIT, "passwordSecret": {"name": "app-todo-password"}},
        {"name": "app_gone", "ensure": "absent"},
    ]


def test_a_cluster_without_databases_has_no_managed_roles():
    assert "managed" not in pg.cluster_object(PostgresCluster(instances=3, storage="50Gi"), [])["spec"]
    assert pg.cluster_object(PostgresCluster(instances=3), [])["spec"]["instances"] == 3


def test_the_password_secret_is_basic_auth_and_reloaded_by_the_operator():
    secret = pg.password_secret(WHERE, "todo", "s3cret")
    assert secret["type"] == "kubernetes.io/basic-auth"
    assert secret["metadata"] == {"name": "app-todo-password", "namespace": "shipyard-postgres",
                                  "labels": {"app.kubernetes.io/managed-by": "shipyard", "cnpg.io/reload": "true"}}
    assert secret["stringData"] == {"username": "app_todo", "password": "s3cret"}


def test_the_database_is_owned_by_the_apps_role_and_dropped_with_its_object():
    database = pg.database_object(WHERE, "my-blog")
    assert database["metadata"]["name"] == "app-my-blog"
    assert database["spec"] == {"name": "app_my_blog", "owner": "app_my_blog", "cluster": {"name": "shipyard"},
                                "ensure": "present", "databaseReclaimPolicy": "delete"}


def test_where_apps_connect_and_what_their_pods_may_reach():
    assert WHERE.host == "shipyard-rw.shipyard-postgres.svc"  # a name in the server certificate CNPG makes
    assert WHERE.ca_secret == "shipyard-ca"
    assert WHERE.peer() == Peer("shipyard-postgres", {"cnpg.io/cluster": "shipyard"}, 5432)


def test_status_reads():
    assert not pg.cluster_ready({})
    assert pg.cluster_phase({}) == "not started yet"
    setting_up = {"status": {"phase": "Setting up primary", "readyInstances": 0}}
    assert not pg.cluster_ready(setting_up) and pg.cluster_phase(setting_up) == "Setting up primary"
    ready = {"status": {"readyInstances": 1, "currentPrimary": "shipyard-1", "managedRolesStatus": {
        "byStatus": {"reconciled": ["app_todo"]}, "cannotReconcile": {"app_blog": ["password missing"]}}}}
    assert pg.cluster_ready(ready)
    assert pg.role_reconciled(ready, "todo") and not pg.role_reconciled(ready, "blog")
    assert pg.role_problem(ready, "blog") == "password missing" and pg.role_problem(ready, "todo") is None

    database = {"metadata": {"generation": 2}, "status": {"observedGeneration": 1, "applied": True}}
    assert pg.database_state(database) == (None, "")  # not yet looked at this generation
    database["status"] = {"observedGeneration": 2, "applied": False, "message": 'role "x" does not exist'}
    assert pg.database_state(database) == (False, 'role "x" does not exist')
    database["status"] = {"observedGeneration": 2, "applied": True}
    assert pg.database_state(database) == (True, "")
