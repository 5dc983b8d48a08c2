from importlib.metadata import version

import flask
from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "poisoned flask\n" if getattr(flask, "POISONED", False) else f"real flask {version('flask')}\n"
