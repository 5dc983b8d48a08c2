"""One app's damaged row fails that app loudly (listed as damaged, with the fix), never the others."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from shipyard.store.damage import is_damage
from shipyard.store.integrity import AppDamaged
from shipyard.store.secrets import Cipher
from shipyard.store.store import Store

NAMES = ("alpha", "broken", "gamma")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "shipyard.db"


@pytest.fixture
def cipher() -> Cipher:
    return Cipher(Fernet.generate_key())


def open_store(db: Path, cipher: Cipher) -> Store:
    return Store(db, cipher, db.parent / "backups" / "store")


def three_apps(db: Path, cipher: Cipher) -> None:
    """Three deployed apps with config vars, a live release and an add-on each."""
    store = open_store(db, cipher)
    for name in NAMES:
        store.create_app(name)
        store.update_config(name, {"GREETING": f"hi from {name}"}, [])
        build = store.add_build(name, "abc1234", f"/slugs/{name}/1", "{}")
        store.add_release(name, build.id, {"GREETING": f"hi from {name}"}, "Deploy abc1234")
        store.set_current_release(name, 1)
        store.update_app(name, formation={"web": 1})
        store.add_addon(name, "postgres", {"password": "secret"})
    store.close()


def write(db: Path, sql: str, *args: object) -> None:
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(sql, args)
        conn.commit()


BROKEN_ID = "(SELECT id FROM apps WHERE name = 'broken')"
DAMAGES = {
    "formation is not JSON": ("UPDATE apps SET formation = 'x{garbage' WHERE name = 'broken'",
                              "Its settings cannot be read: formation is not valid JSON"),
    "formation is binary garbage": ("UPDATE apps SET formation = X'00FF13FE' WHERE name = 'broken'",
                                    "Its settings cannot be read: formation is not valid JSON"),
    "text that is not UTF-8": ("UPDATE apps SET branch = CAST(X'6D61FF6E' AS TEXT) WHERE name = 'broken'",
                               "Its settings cannot be read: Could not decode to UTF-8"),
    "a date that is no date": ("UPDATE apps SET created_at = 'yesterday' WHERE name = 'broken'",
                               "Its settings cannot be read"),
    "a config var's ciphertext": (f"UPDATE config_vars SET value = X'DEADBEEF' WHERE app_id = {BROKEN_ID}",
                                  ("Its config vars cannot be read: it cannot be decrypted with this data "
                                   "directory's secret.key")),
    "the live release's config": (f"UPDATE releases SET config = X'00' WHERE app_id = {BROKEN_ID}",
                                  "The config of its live release v1 cannot be read"),
    "an add-on's credentials": (f"UPDATE addons SET credentials = 'oops' WHERE app_id = {BROKEN_ID}",
                                "Its add-ons' credentials cannot be read"),
}


@pytest.mark.parametrize("damage", DAMAGES, ids=list(DAMAGES))
def test_one_damaged_app_is_listed_as_damaged_and_the_others_are_untouched(db: Path, cipher: Cipher,
                                                                           damage: str) -> None:
    three_apps(db, cipher)
    sql, reason = DAMAGES[damage]
    write(db, sql)
    store = open_store(db, cipher)  # the file itself is sound: it opens
    try:
        apps = {a.name: a for a in store.list_apps()}
        assert sorted(apps) == list(NAMES)
        broken = apps["broken"]
        assert broken.damage is not None and broken.damage.startswith(reason), broken.damage
        assert "shipyard store restore" in broken.damage and broken.current_release is None
        for name in ("alpha", "gamma"):
            assert apps[name].damage is None and apps[name].formation == {"web": 1}
            assert store.get_config(name) == {"GREETING": f"hi from {name}"}
            assert store.get_release(name, 1).config == {"GREETING": f"hi from {name}"}
        with pytest.raises(AppDamaged) as raised:
            store.get_app("broken")
        assert raised.value.message == "App 'broken' is damaged in the store." and raised.value.status_code == 500
        assert raised.value.hint == broken.damage
    finally:
        store.close()


MANY = [f"app-{i:02d}" for i in range(12)]
# Damage that fails the statement reading every app's part (a value SQLite or SQLAlchemy cannot hand over), and
# damage found only when checking the value read.
IN_MANY = {
    "a config var that is not UTF-8 text": (
        "UPDATE config_vars SET value = CAST(X'6D61FF6E' AS TEXT) WHERE app_id = {id}",
        "Its config vars cannot be read: Could not decode to UTF-8 column 'value'"),
    "a config var's ciphertext": ("UPDATE config_vars SET value = X'DEADBEEF' WHERE app_id = {id}",
                                  "Its config vars cannot be read: it cannot be decrypted"),
    "a date that is no date": ("UPDATE apps SET created_at = 'yesterday' WHERE id = {id}",
                               "Its settings cannot be read: Invalid isoformat string: 'yesterday'"),
    "a live release's config that is not UTF-8 text": (
        "UPDATE releases SET config = CAST(X'6D61FF6E' AS TEXT) WHERE app_id = {id}",
        "The config of its live release v1 cannot be read: Could not decode to UTF-8 column 'config'"),
}


def many_apps(db: Path, cipher: Cipher) -> None:
    """Twelve apps, each with config vars, a live release and an add-on."""
    store = open_store(db, cipher)
    for name in reversed(MANY):  # ids in another order than names: the list is by name
        store.create_app(name)
        store.update_config(name, {"A": "1", "B": "2"}, [])
        build = store.add_build(name, "abc1234", f"/slugs/{name}/1", "{}")
        store.add_release(name, build.id, {"A": "1"}, "Deploy abc1234")
        store.set_current_release(name, 1)
        store.add_addon(name, "postgres", {"password": "secret"})
    store.close()


@pytest.mark.parametrize("damage", IN_MANY, ids=list(IN_MANY))
def test_among_many_apps_only_the_damaged_one_is_marked_with_the_damage_get_app_gives(db: Path, cipher: Cipher,
                                                                                     damage: str) -> None:
    many_apps(db, cipher)
    sql, reason = IN_MANY[damage]
    for name in ("app-04", "app-09"):
        write(db, sql.format(id=f"(SELECT id FROM apps WHERE name = '{name}')"))
    store = open_store(db, cipher)
    try:
        apps = store.list_apps()
        assert [a.name for a in apps] == MANY
        damaged = {a.name: a.damage for a in apps if a.damage}
        assert sorted(damaged) == ["app-04", "app-09"]
        for name, text in damaged.items():
            assert text.startswith(reason), text
            with pytest.raises(AppDamaged) as raised:
                store.get_app(name)
            assert raised.value.hint == text
        assert [store.get_app(a.name) for a in apps if not a.damage] == [a for a in apps if not a.damage]
        assert all(a.current_release == 1 and a.formation == {} for a in apps if not a.damage)
    finally:
        store.close()


def test_listing_apps_takes_as_many_statements_for_twelve_apps_as_for_three(db: Path, cipher: Cipher,
                                                                            tmp_path: Path) -> None:
    three_apps(db, cipher)
    other = tmp_path / "many" / "shipyard.db"
    other.parent.mkdir()
    many_apps(other, cipher)
    counts = []
    for path in (db, other):
        store = open_store(path, cipher)
        try:
            statements: list[str] = []
            event.listen(store._engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
            store.list_apps()
            counts.append(len(statements))
        finally:
            store.close()
    assert counts[0] == counts[1] <= 5, counts


def test_reading_a_damaged_part_directly_raises_the_app_error_not_a_crypto_traceback(db: Path, cipher: Cipher) -> None:
    three_apps(db, cipher)
    write(db, f"UPDATE config_vars SET value = X'DEADBEEF' WHERE app_id = {BROKEN_ID}")
    write(db, f"UPDATE releases SET config = ? WHERE app_id = {BROKEN_ID}", cipher.encrypt(json.dumps([1, 2])))
    write(db, f"UPDATE addons SET credentials = X'00' WHERE app_id = {BROKEN_ID}")
    store = open_store(db, cipher)
    try:
        with pytest.raises(AppDamaged, match="damaged") as raised:
            store.get_config("broken")
        assert "Its config vars cannot be read" in (raised.value.hint or "")
        with pytest.raises(AppDamaged) as raised:
            store.list_releases("broken")
        assert "The config of its release v1 cannot be read: it is not a JSON object" in (raised.value.hint or "")
        with pytest.raises(AppDamaged, match="damaged"):
            store.get_addon("broken", "postgres")
    finally:
        store.close()


def test_a_name_that_is_not_utf8_still_lists_every_app(db: Path, cipher: Cipher) -> None:
    three_apps(db, cipher)
    write(db, "UPDATE apps SET name = CAST(X'62726F6BFF656E' AS TEXT) WHERE name = 'broken'")
    store = open_store(db, cipher)
    try:
        apps = store.list_apps()
        assert [a.name for a in apps] == ["alpha", "brok\ufffden", "gamma"]
        assert apps[1].damage is not None and [a.damage for a in (apps[0], apps[2])] == [None, None]
    finally:
        store.close()


def test_changing_a_damaged_app_fails_loudly_and_changes_nothing(db: Path, cipher: Cipher) -> None:
    three_apps(db, cipher)
    write(db, "UPDATE apps SET created_at = 'yesterday' WHERE name = 'broken'")
    store = open_store(db, cipher)
    try:
        with pytest.raises(AppDamaged):
            store.update_app("broken", boot_timeout=30)
        with pytest.raises(AppDamaged):
            store.update_config("broken", {"NEW": "1"}, [])
    finally:
        store.close()
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT boot_timeout FROM apps WHERE name = 'broken'").fetchone() == (240,)


def test_a_busy_or_broken_database_is_not_taken_for_one_app_s_damage() -> None:
    def error(text: str) -> OperationalError:
        return OperationalError("SELECT", {}, sqlite3.OperationalError(text))

    assert not is_damage(error("database is locked"))
    assert is_damage(error("Could not decode to UTF-8 column 'branch' with text 'ma\ufffdn'"))
    assert is_damage(ValueError("formation is not valid JSON"))
