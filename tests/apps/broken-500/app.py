"""Starts and listens, but every page fails (a bug in code every request runs)."""

from flask import Flask

app = Flask(__name__)


@app.before_request
def load_user():
    raise RuntimeError("settings.SESSION_BACKEND is not configured")


@app.get("/")
def index():
    return "unreachable\n"
