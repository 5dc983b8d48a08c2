"""A web app that floods its output: every gunicorn worker starts a thread writing 200-byte lines as fast as
it can (or NOISE_RATE lines a second), while the app keeps answering requests. `GET /quiet` pauses the
flood of every worker of the instance and `GET /loud` resumes it (a file in the instance's /tmp says which),
so a test can compare the platform with and without it, back to back."""

import os
import sys
import tempfile
import threading
import time

from flask import Flask

app = Flask(__name__)
FILLER = "x" * 180
QUIET = os.path.join(tempfile.gettempdir(), "noisy-app-quiet")


def make_noise() -> None:
    rate = float(os.environ.get("NOISE_RATE") or 0)  # 0: as fast as it can
    pid = os.getpid()
    count = 0
    while True:
        if os.path.exists(QUIET):
            time.sleep(0.02)
            continue
        for _ in range(1 if rate else 1000):
            count += 1
            sys.stdout.write(f"noise {pid} {count:09d} {FILLER}\n")
        if rate:
            sys.stdout.flush()
            time.sleep(1 / rate)


threading.Thread(target=make_noise, daemon=True).start()


@app.get("/")
def index():
    return "noisy-app answers\n"


@app.get("/quiet")
def quiet():
    with open(QUIET, "w"):
        pass
    return "quiet\n"


@app.get("/loud")
def loud():
    if os.path.exists(QUIET):
        os.unlink(QUIET)
    return "loud\n"
