"""Connects to its database with DATABASE_URL as given (PGSSLMODE=verify-full), through both drivers:
psycopg2-binary 2.9.3 (libpq 14) and psycopg 3. `?hostaddr=` picks the address (e.g. ::1) and `?host=`
replaces the host name, to show what each libpq accepts."""

import os

import psycopg
import psycopg2
from flask import Flask, request

app = Flask(__name__)


def params() -> dict[str, str]:
    return {k: v for k, v in request.args.items() if k in ("host", "hostaddr")}


@app.get("/psycopg2")
def with_psycopg2():
    try:
        with psycopg2.connect(os.environ["DATABASE_URL"], **params()) as conn, conn.cursor() as cur:
            cur.execute("SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            user, ssl = cur.fetchone()
    except psycopg2.Error as exc:
        return {"error": str(exc).strip()}, 500
    return {"libpq": psycopg2.extensions.libpq_version(), "user": user, "ssl": ssl}


@app.get("/psycopg3")
def with_psycopg3():
    try:
        with psycopg.connect(os.environ["DATABASE_URL"], **params()) as conn:
            user, ssl = conn.execute(
                "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    except psycopg.Error as exc:
        return {"error": str(exc).strip()}, 500
    return {"libpq": psycopg.pq.version(), "user": user, "ssl": ssl}
