"""A Flask app as pushed to Heroku around 2022: `pip freeze` pins, no Python pin, a Procfile."""

import platform

import greenlet
import psycopg2
from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return (f"Hello from old pins on Python {platform.python_version()} "
            f"(psycopg2 {psycopg2.__version__.split()[0]}, greenlet {greenlet.__version__})\n")
