import sys

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return f"Hello from a fixed port ({sys.argv[0]})\n"
