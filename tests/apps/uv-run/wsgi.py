"""Render's uv guide: `uv sync --frozen` builds, `uv run gunicorn …` starts (Procfile)."""

import os
import sys

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index() -> str:
    return (f"prefix={sys.prefix} host={os.environ.get('RENDER_EXTERNAL_HOSTNAME')} "
            f"render={os.environ.get('RENDER')}\n")
