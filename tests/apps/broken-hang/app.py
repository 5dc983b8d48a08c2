"""Listens on $PORT, but its requests never return (a lock taken at start and never released)."""

import threading

from flask import Flask

app = Flask(__name__)
_ready = threading.Event()  # set by a background task that never runs


@app.get("/")
def index():
    _ready.wait()
    return "unreachable\n"
