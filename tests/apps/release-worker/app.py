import os

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return f"release-worker {os.environ['SHIPYARD_RELEASE']}\n"


@app.get("/healthz")
def healthz():
    if os.environ.get("HEALTH_FAIL"):
        return "the database is unreachable\n", 500
    return "ok\n"
