from pathlib import Path

from shipyard.release.plan import (ReleaseTarget, builds_to_prune, instance_specs, migration_check_spec, runtime_env,
                                   unapplied_migrations)


def target(**overrides):
    values = dict(app="todo", version=3, slug_path=Path("/slugs/todo/1"),
                  process_types={"web": "gunicorn app:app", "worker": "python w.py", "release": "flask db upgrade"},
                  config={"GREETING": "hi", "EXTERNAL_URL": "http://evil/"}, hostname="todo.localhost",
                  external_url="http://todo.localhost:8480/", boot_timeout=30.0, web_concurrency=2)
    values.update(overrides)
    return ReleaseTarget(**values)


def test_env_contract_and_platform_values_win():
    env = runtime_env(target())
    assert env["GREETING"] == "hi"
    assert env["EXTERNAL_URL"] == "http://todo.localhost:8480/"
    assert env["EXTERNAL_HOSTNAME"] == "todo.localhost"
    assert env["WEB_CONCURRENCY"] == "2"
    assert env["FORWARDED_ALLOW_IPS"] == "127.0.0.1"
    assert env["PATH"].startswith("/slugs/todo/1/venv/bin:")


def test_user_web_concurrency_wins():
    assert runtime_env(target(config={"WEB_CONCURRENCY": "5"}))["WEB_CONCURRENCY"] == "5"


def test_one_web_instance_by_default_other_types_at_zero_and_no_release_instance():
    specs = instance_specs(target())
    assert [(s.name, s.command) for s in specs] == [("web.1", "gunicorn app:app")]
    assert specs[0].cwd == Path("/slugs/todo/1/app")
    assert specs[0].boot_timeout == 30.0
    scaled = instance_specs(target(formation={"worker": 1}))
    assert [(s.name, s.command) for s in scaled] == [("web.1", "gunicorn app:app"), ("worker.1", "python w.py")]


def test_formation_scales():
    specs = instance_specs(target(formation={"web": 2, "worker": 1}))
    assert [s.name for s in specs] == ["web.1", "web.2", "worker.1"]


def test_builds_to_prune_keeps_the_newest_releases_and_the_live_one():
    releases = [(1, 10), (2, 11), (3, 11), (4, 12), (5, 13)]
    assert builds_to_prune(releases, current=5, keep=2) == {10, 11}
    assert builds_to_prune(releases, current=1, keep=2) == {11}
    assert builds_to_prune(releases, current=5, keep=20) == set()


def test_renders_hostname_names_the_app_for_every_app_and_config_wins():
    env = runtime_env(target())
    assert env["RENDER_EXTERNAL_HOSTNAME"] == "todo.localhost"
    assert env["RENDER_EXTERNAL_URL"] == "http://todo.localhost:8480/"
    assert "RENDER" not in env  # Render's identity only for a repo with render.yaml (buildpack/compat.py)
    assert runtime_env(target(config={"RENDER_EXTERNAL_HOSTNAME": "x"}))["RENDER_EXTERNAL_HOSTNAME"] == "x"


def test_uv_run_uses_the_built_venv_without_syncing_it():
    env = runtime_env(target(uv=Path("/opt/shipyard/bin/uv")))
    assert env["PATH"].startswith("/slugs/todo/1/venv/bin:") and env["PATH"].endswith(":/opt/shipyard/bin")
    assert env["UV_PROJECT_ENVIRONMENT"] == "/slugs/todo/1/venv"
    assert env["UV_NO_SYNC"] == "1" and env["UV_PYTHON_DOWNLOADS"] == "never"
    assert "UV_NO_SYNC" not in runtime_env(target())


def test_the_migration_check_is_for_django_apps_with_a_database():
    assert migration_check_spec(target()) is None
    assert migration_check_spec(target(framework="django")) is None  # no DATABASE_URL
    spec = migration_check_spec(target(framework="django", config={"DATABASE_URL": "postgresql://x"}))
    assert spec is not None and spec.command == "python manage.py migrate --plan --noinput"
    assert spec.cwd == Path("/slugs/todo/1/app") and spec.name == "check.1"


def test_unapplied_migrations_are_the_unindented_names_of_migrate_plan():
    planned = ["Planned operations:", "auth.0012_alter_user_first_name_max_length", "    Alter field first_name",
               "notes.0001_initial", "    Create model Note"]
    assert unapplied_migrations(planned) == ["auth.0012_alter_user_first_name_max_length", "notes.0001_initial"]
    assert unapplied_migrations(["Planned operations:", "  No planned migration operations."]) == []
    assert unapplied_migrations(["Traceback (most recent call last):",
                                 "django.db.utils.OperationalError: connection refused"]) == []
