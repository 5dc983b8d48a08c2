from pathlib import Path

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return Path("probe.txt").read_text()
