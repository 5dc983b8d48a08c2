"""A damaged store (issue 11): a damaged file stops `shipyard up` with the fix, `shipyard store restore` puts
the newest backup back; one damaged app row fails that app alone."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from contextlib import closing
from pathlib import Path

from .harness import SHIPYARD, Shipyard


def damage_pages(db: Path) -> None:
    """Garbage over the pages in the middle of the file, as a failing disk leaves it."""
    data = bytearray(db.read_bytes())
    pages = len(data) // 4096
    assert pages >= 6, f"the store has only {pages} pages"
    for page in range(2, pages - 1):
        data[page * 4096:(page + 1) * 4096] = os.urandom(4096)
    db.write_bytes(bytes(data))


def up_expecting_failure(shipyard: Shipyard) -> tuple[int, str]:
    """Run `shipyard up` that should refuse to start: its exit code and output."""
    log = shipyard.root / "up-refused.log"
    with open(log, "w") as output:
        proc = subprocess.Popen([*SHIPYARD, "up", "--api-port", str(shipyard.api_port), "--edge-port",
                                 str(shipyard.edge_port), "--https-port", str(shipyard.https_port)], env=shipyard.env, stdout=output, stderr=subprocess.STDOUT)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            shipyard.proc = proc  # it started after all: the harness stops it, children included
            raise AssertionError(f"shipyard up did not refuse the damaged store: {log.read_text()}") from None
    return code, log.read_text()


def test_a_damaged_store_stops_up_with_the_fix_and_a_restore_brings_the_app_back(tmp_path: Path) -> None:
    shipyard = Shipyard(tmp_path)
    shipyard.start()
    try:
        shipyard.cli("apps", "create", "todo")
        shipyard.push(shipyard.checkout("flask-hello", "todo"))
        assert shipyard.get("todo").text == "Hello from flask-hello v1\n"
        assert shipyard.stop() == 0
        backups = sorted((shipyard.data_dir / "backups" / "store").glob("shipyard-*.db"))
        assert backups, "no backup of the store was made at start or stop"
        newest = backups[-1].name
        db = shipyard.data_dir / "shipyard.db"
        damage_pages(db)
        damaged = db.read_bytes()

        began = time.monotonic()
        code, output = up_expecting_failure(shipyard)
        took = time.monotonic() - began
        assert code != 0 and took < 20, (took, output)
        assert f"The store {db} is damaged" in output and "Traceback" not in output, output
        assert newest in output and "shipyard store restore" in output, output

        restored = shipyard.cli("store", "restore")
        assert "Kept the damaged store aside as" in restored.out and newest in restored.out, restored.text
        assert "shipyard up" in restored.out
        [aside] = shipyard.data_dir.glob("shipyard.db.damaged-*")
        assert aside.read_bytes() == damaged

        shipyard.start()
        shipyard.wait_for(lambda: shipyard.get("todo").status_code == 200, timeout=60)
        assert shipyard.get("todo").text == "Hello from flask-hello v1\n"
        assert "todo" in shipyard.cli("apps").out
    finally:
        shipyard.kill_all()


def test_a_damaged_app_row_fails_that_app_alone(tmp_path: Path) -> None:
    shipyard = Shipyard(tmp_path)
    shipyard.start()
    try:
        for name in ("good", "broken"):
            shipyard.cli("apps", "create", name)
            shipyard.push(shipyard.checkout("flask-hello", name))
        assert shipyard.stop() == 0
        with closing(sqlite3.connect(shipyard.data_dir / "shipyard.db")) as db:
            db.execute("UPDATE apps SET formation = ? WHERE name = 'broken'", (os.urandom(64),))
            db.commit()

        shipyard.start()
        shipyard.wait_for(lambda: shipyard.get("good").status_code == 200, timeout=60)
        assert shipyard.get("good").text == "Hello from flask-hello v1\n"
        listing = shipyard.cli("apps").out
        assert any(line.split()[:1] == ["broken"] and "damaged" in line.split() for line in listing.splitlines())
        assert "broken is damaged: Its settings cannot be read" in listing, listing
        assert "shipyard store restore" in listing
        assert shipyard.get("broken").status_code == 503  # routed, never started, never someone else's page
        shown = shipyard.cli("apps", "info", "broken", check=False)
        assert shown.code == 1 and "App 'broken' is damaged in the store." in shown.err, shown.text
        assert "Traceback" not in shown.text
        assert "Not started: Its settings cannot be read" in shipyard.cli("logs", "broken").out
    finally:
        shipyard.kill_all()
