"""A web app whose first instance is slow: the edge should send it fewer requests than the others."""

import os
import time

from flask import Flask, request

app = Flask(__name__)
time.sleep(float(os.environ.get("BOOT_DELAY", "0")))  # a slow start, when a test asks for one


@app.get("/")
def index():
    return f"slow-instance on {os.environ.get('SHIPYARD_PROCESS')}\n"


@app.get("/work")
def work():
    # `slow` names the instance that takes ten times longer (e.g. web.1); the others take `ms`.
    ms = float(request.args.get("ms", "20"))
    if os.environ.get("SHIPYARD_PROCESS") == request.args.get("slow"):
        ms *= 10
    time.sleep(ms / 1000)
    return os.environ.get("SHIPYARD_PROCESS", "?")
