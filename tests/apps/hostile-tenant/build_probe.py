"""Run as the app's build command: a build reaches its own database (migrations at build time, as on
Render) and the outside world, but not the platform's API or another app's instance."""

import os
import socket

import psycopg


def attempt(action) -> str:  # type: ignore[no-untyped-def]
    try:
        return f"ALLOWED: {action()}"
    except Exception as exc:  # noqa: BLE001
        return f"refused: {type(exc).__name__}"


def own_database() -> str:
    with psycopg.connect(os.environ["DATABASE_URL"], connect_timeout=5) as conn:
        return str(conn.execute("SELECT current_user").fetchone()[0])


def connect(port: str) -> str:
    with socket.create_connection(("127.0.0.1", int(port)), timeout=2):
        return "connected"


print(f"BUILD-PROBE own database: {attempt(own_database)}")
print(f"BUILD-PROBE the API: {attempt(lambda: connect(os.environ['PROBE_API_PORT']))}")
print(f"BUILD-PROBE another app: {attempt(lambda: connect(os.environ['PROBE_OTHER_PORT']))}")
