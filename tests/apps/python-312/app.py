import platform

from flask import Flask

app = Flask(__name__)


@app.get("/python")
def python_version():
    return platform.python_version() + "\n"
