"""App lists read every app's live manifest in one statement, and only the live release's."""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet

from shipyard.store.secrets import Cipher
from shipyard.store.store import Store


def test_live_manifests_name_each_apps_live_release_only(tmp_path: Path) -> None:
    store = Store(tmp_path / "shipyard.db", Cipher(Fernet.generate_key()), tmp_path / "backups")
    try:
        store.create_app("todo")
        for version, types in ((1, '{"web": "gunicorn app:app"}'), (2, '{"web": "gunicorn app:app", "worker": "x"}')):
            build = store.add_build("todo", "abc1234", f"/slugs/todo/{version}", types)
            store.add_release("todo", build.id, {}, f"Deploy v{version}")
        store.set_current_release("todo", 1)  # v2 exists but is not live (failed, or rolled back)
        store.create_app("fresh")  # nothing deployed yet: no manifest
        assert store.live_manifests() == {"todo": '{"web": "gunicorn app:app"}'}
    finally:
        store.close()
