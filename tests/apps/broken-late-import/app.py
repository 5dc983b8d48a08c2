"""Imports fine for a second, then fails: gunicorn's master already listens on $PORT by then."""

import time

time.sleep(1)

import missing_module  # noqa: E402,F401  (the dependency the author forgot to list)

from flask import Flask  # noqa: E402

app = Flask(__name__)
