"""The managed PostgreSQL add-on with the real server: provisioning, TLS, isolation, faults, backups."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time

import httpx
import psycopg

from .test_faults import postmaster_pid
from .harness import SHIPYARD, Shipyard


def todos(shipyard: Shipyard) -> list[str]:
    return [t["title"] for t in shipyard.get("todo", "/todos").json()]


def test_todo_app_keeps_its_rows_through_everything(shipyard: Shipyard) -> None:
    created = shipyard.cli("apps", "create", "todo", "--postgres").out
    assert "Attached a PostgreSQL database to todo" in created
    shown = shipyard.cli("config", "todo").out
    assert "DATABASE_URL='postgresql://app_todo:********@localhost:" in shown and "PGPASSWORD='********'" in shown
    assert "PGHOST=localhost" in shown
    assert "PGSSLMODE=verify-full" in shown
    revealed = shipyard.cli("config", "todo", "--reveal").out
    url = next(shlex.split(line)[0].split("=", 1)[1] for line in revealed.splitlines()
               if line.startswith("DATABASE_URL="))
    assert "********" not in url

    again = shipyard.cli("addons", "create", "todo", "postgres", check=False)
    assert again.code == 1 and "App 'todo' already has a PostgreSQL database." in again.err

    work = shipyard.checkout("flask-todo", "todo")
    shipyard.push(work)
    for title in ("milk", "eggs", "bread"):
        assert shipyard.get_json_post("todo", "/todos", {"title": title}).status_code == 201
    assert todos(shipyard) == ["milk", "eggs", "bread"]
    info = shipyard.get("todo", "/db-info").json()
    assert info["ssl"] is True and info["sslmode"] == "verify-full" and info["tls"].startswith("TLS")

    # Another app's database is refused by the server, even with valid credentials of this app.
    shipyard.cli("apps", "create", "blog", "--postgres")
    refused = shipyard.get("todo", "/connect", params={"db": "app_blog"})
    assert refused.status_code == 403 and "pg_hba.conf rejects connection" in refused.text

    # psql as the app's role, over verified TLS.
    psql = subprocess.run([*SHIPYARD, "db", "psql", "todo"], input="SELECT current_user, count(*) FROM todo;\n",
                          env=shipyard.env, capture_output=True, text=True, timeout=60)
    assert psql.returncode == 0 and "app_todo" in psql.stdout and " 3" in psql.stdout

    # Ten redeploys, a killed database server, a platform restart: the rows stay.
    for n in range(10):
        (work / "app.py").write_text((work / "app.py").read_text() + f"\n# redeploy {n}\n")
        shipyard.commit(work, f"redeploy {n}")
        shipyard.push(work)
    assert todos(shipyard) == ["milk", "eggs", "bread"]
    # postmaster.pid holds its pid in the server's own pid namespace: find the host's.
    os.kill(postmaster_pid(shipyard), signal.SIGKILL)
    shipyard.wait_for(lambda: _answers(shipyard), timeout=30)
    assert todos(shipyard) == ["milk", "eggs", "bread"]
    started = time.monotonic()
    assert shipyard.stop() == 0
    assert time.monotonic() - started < 30, "the platform took too long to stop"
    shipyard.start()
    shipyard.wait_for(lambda: _answers(shipyard), timeout=60)
    assert todos(shipyard) == ["milk", "eggs", "bread"]

    # Backup, drop the table, restore.
    backup = shipyard.cli("db", "backup", "todo").out.split()[1]
    assert backup in shipyard.cli("db", "backups", "todo").out
    ca = str(shipyard.data_dir / "ca" / "ca.crt")
    with psycopg.connect(url, sslmode="verify-full", sslrootcert=ca, autocommit=True) as conn:
        conn.execute("DROP TABLE todo")
    assert shipyard.get("todo", "/todos").status_code == 500
    unknown = shipyard.cli("db", "restore", "todo", "b-nope", "--confirm", "todo", check=False)
    assert unknown.code == 1 and "App 'todo' has no backup 'b-nope'." in unknown.err
    shipyard.cli("db", "restore", "todo", backup, "--confirm", "todo")
    assert todos(shipyard) == ["milk", "eggs", "bread"]

    # The rest of the CRUD API.
    first = shipyard.get("todo", "/todos").json()[0]
    toggled = httpx.patch(shipyard_url(shipyard, f"/todos/{first['id']}"), headers=host(shipyard, "todo"))
    assert toggled.json()["done"] is True
    assert httpx.delete(shipyard_url(shipyard, f"/todos/{first['id']}"), headers=host(shipyard, "todo")).status_code == 204
    assert todos(shipyard) == ["eggs", "bread"]

    # Destroying needs confirmation; the app restarts without DATABASE_URL; an app's destroy keeps a backup.
    refused_destroy = shipyard.cli("addons", "destroy", "blog", "postgres", check=False)
    assert refused_destroy.code == 1 and "--confirm blog" in refused_destroy.err
    shipyard.cli("addons", "destroy", "blog", "postgres", "--confirm", "blog")
    assert "DATABASE_URL" not in shipyard.cli("config", "blog").out
    gone = shipyard.cli("apps", "destroy", "todo", "--confirm", "todo").out
    assert "Its database was dropped after a final backup:" in gone
    final = gone.split("final backup: ")[1].strip()
    assert os.path.exists(final) and final.endswith(".dump")


def shipyard_url(shipyard: Shipyard, path: str) -> str:
    return f"http://127.0.0.1:{shipyard.edge_port}{path}"


def host(shipyard: Shipyard, app: str) -> dict[str, str]:
    return {"Host": f"{app}.localhost:{shipyard.edge_port}"}


def _answers(shipyard: Shipyard) -> bool:
    try:
        return shipyard.get("todo", "/todos").status_code == 200
    except Exception:
        time.sleep(0.2)
        return False


def test_an_external_server_instead_of_the_embedded_one(tmp_path) -> None:
    """SHIPYARD_POSTGRES_ADMIN_URL: the same provisioning on a server the user runs (here: another real one)."""
    import asyncio
    import threading

    from shipyard.addons.postgres_server import ADMIN_ROLE, PostgresServer
    from shipyard.addons.tls import CertificateAuthority

    external_root = tmp_path / "external"
    external_root.mkdir()
    ca = CertificateAuthority.load_or_create(external_root / "ca")
    server = PostgresServer(external_root / "pg", ca, external_root / "pg.log")
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(60)
    shipyard = Shipyard(tmp_path / "platform")
    shipyard.env["SHIPYARD_POSTGRES_ADMIN_URL"] = (
        f"postgresql://{ADMIN_ROLE}:{server.admin_password}@127.0.0.1:{server.port}/postgres"
        f"?sslmode=verify-full&sslrootcert={ca.cert_file}")
    try:
        shipyard.start()
        assert not (shipyard.data_dir / "postgres").exists()  # no embedded server
        shipyard.cli("apps", "create", "ext", "--postgres")
        revealed = shipyard.cli("config", "ext", "--reveal").out
        assert f"127.0.0.1:{server.port}/app_ext" in revealed and f"PGSSLROOTCERT={ca.cert_file}" in revealed
        shipyard.push(shipyard.checkout("flask-todo", "ext"))
        headers = {"Host": f"ext.localhost:{shipyard.edge_port}"}
        import httpx

        created = httpx.post(f"http://127.0.0.1:{shipyard.edge_port}/todos", json={"title": "x"}, headers=headers)
        assert created.status_code == 201
    finally:
        shipyard.kill_all()
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
