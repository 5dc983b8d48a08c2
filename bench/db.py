"""PostgreSQL add-on figures: time to provision a database for a new app (goal < 1 s), and a query's
round trip through verify-full TLS on loopback against the same query over a plain local unix socket.

Starts the platform's real PostgreSQL server (as `shipyard up` does) in a temporary directory.
Usage (as root, with Debian's postgresql installed): python bench/db.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from shipyard.addons.postgres import PostgresAddon, embedded_target  # noqa: E402
from shipyard.addons.postgres_server import ADMIN_ROLE, PostgresServer  # noqa: E402
from shipyard.addons.tls import CertificateAuthority  # noqa: E402

QUERIES = 2000


def round_trip_us(conn: psycopg.Connection) -> float:
    for _ in range(50):
        conn.execute("SELECT 1")
    started = time.perf_counter()
    for _ in range(QUERIES):
        conn.execute("SELECT 1").fetchone()
    return (time.perf_counter() - started) / QUERIES * 1e6


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        root.chmod(0o711)
        ca = CertificateAuthority.load_or_create(root / "ca")
        server = PostgresServer(root / "postgres", ca, root / "postgres.log")
        started = time.perf_counter()
        await server.start()
        print(f"server first start (initdb + certificate): {time.perf_counter() - started:.2f} s")
        try:
            addon = PostgresAddon(embedded_target(server), root / "backups")
            times = []
            for n in range(5):
                started = time.perf_counter()
                creds = addon.provision(f"bench{n}")
                times.append(time.perf_counter() - started)
            print(f"provision a database (role, database, grants): median {statistics.median(times) * 1000:.0f} ms "
                  f"over {len(times)} (goal < 1 s)")
            with psycopg.connect(creds.url(), sslmode="verify-full", sslrootcert=str(ca.cert_file),
                                 autocommit=True) as tls:
                tls_us = round_trip_us(tls)
            with psycopg.connect(host=str(server.run_dir), port=server.port, dbname=creds.database, user=ADMIN_ROLE,
                                 password=server.admin_password, autocommit=True) as plain:
                plain_us = round_trip_us(plain)
            print(f"SELECT 1 round trip, verify-full TLS on 127.0.0.1: {tls_us:.0f} µs")
            print(f"SELECT 1 round trip, plain unix socket:            {plain_us:.0f} µs  "
                  f"(TLS costs {tls_us / plain_us:.2f}x)")
        finally:
            await server.stop()


if __name__ == "__main__":
    asyncio.run(main())
