import os

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return f"release-worker {os.environ['SHIPYARD_RELEASE']}\n"
