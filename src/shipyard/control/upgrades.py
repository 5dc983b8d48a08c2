"""What an upgrade of Shipyard changes in the desired state of apps that already exist, at start."""

from __future__ import annotations

from shipyard.addons.access import CLIENT_HOST
from shipyard.addons.postgres import KIND, moved_to_client_host
from shipyard.settings import Settings
from shipyard.store.store import Store

def move_databases_to_client_host(settings: Settings, store: Store) -> list[str]:
    """Apps whose database variables named 127.0.0.1 get `localhost` (which every libpq verifies against the
    server's certificate, libpq 14 too); returns their names. Their running release keeps what it has (it
    works with the libpq it has); the next release, a push or a config change, gets the new host."""
    ca_file = str(settings.data_dir / "ca" / "ca.crt")  # the embedded server's CA (up.py), never an external one
    moved = []
    for app in store.list_apps():
        if app.damage:
            continue
        changes = moved_to_client_host(store.get_config(app.name), ca_file)
        if not changes:
            continue
        store.update_config(app.name, changes, [])
        if (credentials := store.get_addon(app.name, KIND)) is not None:
            store.update_addon(app.name, KIND, {**credentials, "host": CLIENT_HOST})
        moved.append(app.name)
    return moved
