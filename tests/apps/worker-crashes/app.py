import os

from flask import Flask, request

from redisq import QUEUE, Redis

app = Flask(__name__)


@app.get("/")
def index():
    return f"worker-crashes {os.environ['SHIPYARD_RELEASE']}\n"


@app.post("/jobs")
def enqueue():
    # Connects per request, not at import: the web process starts without Redis, as Flask + RQ apps do.
    length = Redis().command("RPUSH", QUEUE, request.get_data(as_text=True) or "job")
    return {"queued": length}, 202
