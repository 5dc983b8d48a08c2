"""The store's schema through Alembic: new stores, stores of older Shipyards, newer ones, later revisions.

Every store here is a real SQLite file; the old ones are built from the CREATE statements earlier
Shipyard versions ran (git log -p src/shipyard/store/models.py)."""

from __future__ import annotations

import importlib
import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cryptography.fernet import Fernet
from sqlalchemy import create_engine

from shipyard.store.models import Base
from shipyard.store.schema import StoreTooNew, StoreUpgradeFailed, head_revision, upgrade_schema
from shipyard.store.secrets import Cipher
from shipyard.store.store import Store

MIGRATIONS = Path(__file__).resolve().parents[2] / "src" / "shipyard" / "store" / "migrations"
BASELINE = importlib.import_module("shipyard.store.migrations.versions.0001_baseline")

_BUILDS = """CREATE TABLE builds (
    id INTEGER NOT NULL, app_id INTEGER NOT NULL, "commit" VARCHAR(64) NOT NULL, slug_path TEXT NOT NULL,
    manifest TEXT NOT NULL, created_at DATETIME NOT NULL, PRIMARY KEY (id),
    FOREIGN KEY(app_id) REFERENCES apps (id) ON DELETE CASCADE)"""
_RELEASES = """CREATE TABLE releases (
    id INTEGER NOT NULL, app_id INTEGER NOT NULL, version INTEGER NOT NULL, build_id INTEGER NOT NULL,
    config BLOB NOT NULL, description TEXT NOT NULL, status VARCHAR(16) NOT NULL, created_at DATETIME NOT NULL,
    PRIMARY KEY (id), UNIQUE (app_id, version), FOREIGN KEY(app_id) REFERENCES apps (id) ON DELETE CASCADE,
    FOREIGN KEY(build_id) REFERENCES builds (id))"""

# The first Shipyard (2a7ea70): apps without start/build commands, port, formation, health path or size;
# config vars without build_time; no add-ons or deploys tables; ids could be reused (no AUTOINCREMENT).
FIRST = [
    """CREATE TABLE apps (
        id INTEGER NOT NULL, name VARCHAR(63) NOT NULL, branch VARCHAR(255) NOT NULL,
        boot_timeout INTEGER NOT NULL, current_release INTEGER, created_at DATETIME NOT NULL,
        PRIMARY KEY (id), UNIQUE (name))""",
    _BUILDS, _RELEASES,
    """CREATE TABLE config_vars (
        id INTEGER NOT NULL, app_id INTEGER NOT NULL, "key" VARCHAR(255) NOT NULL, value BLOB NOT NULL,
        PRIMARY KEY (id), UNIQUE (app_id, "key"), FOREIGN KEY(app_id) REFERENCES apps (id) ON DELETE CASCADE)""",
]
# The last one before per-app uids (c6ef5bd): every column but apps.size, still no AUTOINCREMENT.
BEFORE_SIZE = [
    """CREATE TABLE apps (
        id INTEGER NOT NULL, name VARCHAR(63) NOT NULL, branch VARCHAR(255) NOT NULL,
        boot_timeout INTEGER NOT NULL, start_command TEXT NOT NULL, build_command TEXT NOT NULL, port INTEGER,
        formation TEXT NOT NULL, health_path TEXT NOT NULL, current_release INTEGER,
        created_at DATETIME NOT NULL, PRIMARY KEY (id), UNIQUE (name))""",
    _BUILDS, _RELEASES,
    """CREATE TABLE deploys (
        id INTEGER NOT NULL, app_id INTEGER NOT NULL, description TEXT NOT NULL, release INTEGER,
        status VARCHAR(16) NOT NULL, started_at DATETIME NOT NULL, finished_at DATETIME, steps TEXT NOT NULL,
        PRIMARY KEY (id), FOREIGN KEY(app_id) REFERENCES apps (id) ON DELETE CASCADE)""",
    """CREATE TABLE addons (
        id INTEGER NOT NULL, app_id INTEGER NOT NULL, kind VARCHAR(32) NOT NULL, credentials BLOB NOT NULL,
        PRIMARY KEY (id), UNIQUE (app_id, kind), FOREIGN KEY(app_id) REFERENCES apps (id) ON DELETE CASCADE)""",
    """CREATE TABLE config_vars (
        id INTEGER NOT NULL, app_id INTEGER NOT NULL, "key" VARCHAR(255) NOT NULL, value BLOB NOT NULL,
        build_time BOOLEAN NOT NULL, PRIMARY KEY (id), UNIQUE (app_id, "key"),
        FOREIGN KEY(app_id) REFERENCES apps (id) ON DELETE CASCADE)""",
]
# What 0f2a531's in-place ALTER made of such a store: size added, the apps table still without AUTOINCREMENT.
SIZE_ADDED = [*BEFORE_SIZE, "ALTER TABLE apps ADD COLUMN size VARCHAR(16) NOT NULL DEFAULT 'small'"]
WHEN = "2026-11-22 10:00:00.000000"


@pytest.fixture
def cipher() -> Cipher:
    return Cipher(Fernet.generate_key())


def old_store(path: Path, schema: list[str], cipher: Cipher) -> Path:
    """Two apps (ids 1 and 2), a build and a release of `todo` with its config, and its config vars."""
    with closing(sqlite3.connect(path)) as db:
        for statement in schema:
            db.execute(statement)
        apps = {c[1] for c in db.execute("PRAGMA table_info(apps)")}
        for app_id, name in ((1, "todo"), (2, "blog")):
            extra = {"start_command": "", "build_command": "", "formation": '{"web": 2}', "health_path": "/up"}
            extra = {k: v for k, v in extra.items() if k in apps}
            columns = ["id", "name", "branch", "boot_timeout", "current_release", "created_at", *extra]
            values = [app_id, name, "main", 60, 1 if name == "todo" else None, WHEN, *extra.values()]
            db.execute(f"INSERT INTO apps ({', '.join(columns)}) VALUES ({', '.join('?' * len(values))})", values)
        db.execute('INSERT INTO builds (id, app_id, "commit", slug_path, manifest, created_at) VALUES '
                   "(1, 1, 'abc1234', '/slugs/todo/1', '{}', ?)", (WHEN,))
        db.execute("INSERT INTO releases (app_id, version, build_id, config, description, status, created_at) "
                   "VALUES (1, 1, 1, ?, 'Deploy abc1234', 'succeeded', ?)",
                   (cipher.encrypt(json.dumps({"GREETING": "hi"})), WHEN))
        build_time = "build_time" in {c[1] for c in db.execute("PRAGMA table_info(config_vars)")}
        db.execute(f'INSERT INTO config_vars (app_id, "key", value{", build_time" if build_time else ""}) '
                   f"VALUES (1, 'GREETING', ?{', 1' if build_time else ''})", (cipher.encrypt("hi"),))
        db.commit()
    return path


def schema_differences(path: Path) -> list[object]:
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()


def revision(path: Path) -> str | None:
    with closing(sqlite3.connect(path)) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return db.execute("SELECT version_num FROM alembic_version").fetchone()[0] if "alembic_version" in tables else None


def columns(path: Path, table: str) -> list[str]:
    with closing(sqlite3.connect(path)) as db:
        return [c[1] for c in db.execute(f"PRAGMA table_info({table})")]


def execute(path: Path, sql: str) -> None:
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(sql)
        conn.commit()


def open_store(path: Path, cipher: Cipher) -> Store:
    return Store(path, cipher, path.parent / "backups" / "store")


HEAD = "0006"  # the newest revision: a new one is added here too, on purpose


def test_a_new_store_is_at_the_head_revision_and_matches_the_models(tmp_path: Path, cipher: Cipher) -> None:
    db = tmp_path / "shipyard.db"
    store = open_store(db, cipher)
    store.create_app("todo")
    store.close()
    assert revision(db) == head_revision() == HEAD
    assert schema_differences(db) == []  # a model changed without a revision fails here
    open_store(db, cipher).close()  # opening again at the head changes nothing
    assert revision(db) == HEAD


@pytest.mark.parametrize("schema", [FIRST, BEFORE_SIZE, SIZE_ADDED], ids=["first", "before-size", "size-added"])
def test_a_store_of_an_older_shipyard_is_upgraded_in_place_losing_nothing(tmp_path: Path, cipher: Cipher,
                                                                          schema: list[str]) -> None:
    db = old_store(tmp_path / "shipyard.db", schema, cipher)
    store = open_store(db, cipher)
    try:
        assert [a.name for a in store.list_apps()] == ["blog", "todo"]
        todo = store.get_app("todo")
        assert (todo.id, todo.branch, todo.boot_timeout, todo.current_release, todo.size) == (1, "main", 60, 1, "small")
        assert todo.formation == ({"web": 2} if "formation" in schema[0] else {})
        assert todo.damage is None
        assert store.get_config("todo") == {"GREETING": "hi"}
        release = store.get_release("todo", 1)
        assert (release.config, release.status, release.build.slug_path) == ({"GREETING": "hi"}, "succeeded",
                                                                              "/slugs/todo/1")
        # The tables the old store lacked work, and an app's id is never reused (its uids derive from it).
        store.add_deploy("todo", "Deploy abc1234")
        store.add_addon("blog", "postgres", {"password": "x"})
        store.delete_app("blog")
        assert store.create_app("shop").id == 3
    finally:
        store.close()
    assert revision(db) == HEAD
    assert schema_differences(db) == []


def baseline_only(tmp_path: Path) -> str:
    """The package's migrations up to the baseline: what the first Shipyard with Alembic shipped."""
    scripts = tmp_path / "baseline"
    shutil.copytree(MIGRATIONS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    for later in (scripts / "versions").glob("*.py"):
        if later.name not in ("__init__.py", "0001_baseline.py"):
            later.unlink()
    return str(scripts)


def test_a_store_made_just_before_migrations_is_only_stamped(tmp_path: Path, cipher: Cipher) -> None:
    db = tmp_path / "shipyard.db"
    engine = create_engine(f"sqlite:///{db}")
    for table in BASELINE.TABLES:  # what Shipyard did before Alembic: the models of then
        table.create(engine)
    engine.dispose()
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("INSERT INTO apps (name, branch, boot_timeout, start_command, build_command, formation, "
                     "health_path, size, created_at) VALUES ('todo', 'main', 240, '', '', '{}', '', 'large', ?)",
                     (WHEN,))
        conn.commit()
        before = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'apps'").fetchone()
    upgrade_schema(db, baseline_only(tmp_path))
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT sql FROM sqlite_master WHERE name = 'apps'").fetchone() == before
    assert revision(db) == "0001"
    store = open_store(db, cipher)  # and on to the head
    assert store.get_app("todo").size == "large"
    store.close()
    assert revision(db) == HEAD


def test_a_store_of_a_newer_shipyard_is_refused_and_left_alone(tmp_path: Path, cipher: Cipher) -> None:
    db = tmp_path / "shipyard.db"
    open_store(db, cipher).close()
    execute(db, "UPDATE alembic_version SET version_num = '9999_from_the_future'")
    with pytest.raises(StoreTooNew) as raised:
        open_store(db, cipher)
    assert "newer Shipyard" in raised.value.message and "9999_from_the_future" in raised.value.message
    assert str(db) in raised.value.message and "Upgrade Shipyard" in (raised.value.hint or "")
    assert revision(db) == "9999_from_the_future"


def test_a_column_no_shipyard_made_stops_the_upgrade_before_it_drops_it(tmp_path: Path, cipher: Cipher) -> None:
    db = old_store(tmp_path / "shipyard.db", FIRST, cipher)
    execute(db, "ALTER TABLE apps ADD COLUMN notes TEXT")
    with pytest.raises(StoreUpgradeFailed) as raised:
        open_store(db, cipher)
    assert "notes" in raised.value.message and "nothing was changed" in raised.value.message
    assert revision(db) is None and "notes" in columns(db, "apps")


def later_revisions(tmp_path: Path, upgrade: str) -> str:
    """The package's migrations plus a revision 9000 after its head, with the given upgrade() body."""
    scripts = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    (scripts / "versions" / "9000_notes.py").write_text(
        '"""Apps get notes."""\nimport sqlalchemy as sa\nfrom alembic import op\n\n'
        f'revision = "9000"\ndown_revision = "{head_revision()}"\nbranch_labels = None\ndepends_on = None\n\n\n'
        f"def upgrade() -> None:\n{upgrade}\n")
    return str(scripts)


def test_later_revisions_apply_after_the_baseline(tmp_path: Path, cipher: Cipher) -> None:
    scripts = later_revisions(tmp_path, '    with op.batch_alter_table("apps") as batch:\n'
                                        '        batch.add_column(sa.Column("notes", sa.Text, nullable=True))')
    fresh, old = tmp_path / "fresh.db", old_store(tmp_path / "old.db", FIRST, cipher)
    open_store(fresh, cipher).close()  # at the head
    for db in (fresh, old):  # head -> 9000, and unversioned -> baseline -> … -> 9000 in one go
        upgrade_schema(db, scripts)
        assert revision(db) == "9000" and "notes" in columns(db, "apps")
    with closing(sqlite3.connect(old)) as conn:
        assert conn.execute("SELECT name FROM apps ORDER BY id").fetchall() == [("todo",), ("blog",)]
        assert conn.execute("SELECT count(*) FROM config_vars").fetchone() == (1,)  # the rebuild cascaded nothing


def test_a_failing_revision_leaves_the_store_as_it_was(tmp_path: Path, cipher: Cipher) -> None:
    scripts = later_revisions(tmp_path, '    op.add_column("apps", sa.Column("notes", sa.Text))\n'
                                        '    op.execute("INSERT INTO nowhere VALUES (1)")')
    db = old_store(tmp_path / "old.db", FIRST, cipher)
    with pytest.raises(StoreUpgradeFailed) as raised:
        upgrade_schema(db, scripts)
    assert "nowhere" in raised.value.message and "nothing was changed" in raised.value.message
    # Not even the baseline's rebuild of apps stayed: all revisions run in one transaction.
    assert revision(db) is None and columns(db, "apps") == ["id", "name", "branch", "boot_timeout",
                                                            "current_release", "created_at"]


def test_apps_that_run_background_types_keep_them_running_after_the_upgrade(tmp_path: Path, cipher: Cipher) -> None:
    """Other types than web used to start one instance each; now 0 until scaled. An app live at the upgrade
    keeps its workers: its formation gets them written down at 1 (an explicit count stays)."""
    db = old_store(tmp_path / "shipyard.db", BEFORE_SIZE, cipher)
    manifest = json.dumps({"process_types": {"web": "gunicorn app:app", "worker": "python w.py",
                                             "clock": "python c.py", "release": "flask db upgrade"}})
    execute(db, f"UPDATE builds SET manifest = '{manifest}' WHERE id = 1")
    execute(db, """UPDATE apps SET formation = '{"web": 2, "clock": 0}' WHERE name = 'todo'""")
    store = open_store(db, cipher)
    try:
        assert store.get_app("todo").formation == {"web": 2, "clock": 0, "worker": 1}
        assert store.get_app("blog").formation == {"web": 2}  # no live release: nothing ran, nothing to keep
        assert store.get_app("todo").release_command == ""
    finally:
        store.close()


def test_an_unreadable_formation_or_manifest_does_not_stop_the_upgrade(tmp_path: Path, cipher: Cipher) -> None:
    db = old_store(tmp_path / "shipyard.db", BEFORE_SIZE, cipher)
    execute(db, "UPDATE builds SET manifest = 'not json' WHERE id = 1")
    store = open_store(db, cipher)
    try:
        assert store.get_app("todo").formation == {"web": 2}
    finally:
        store.close()
    assert revision(db) == HEAD
