"""A Flask app still listing MySQL-python, which stopped at Python 2 (mysqlclient replaced it)."""

import MySQLdb  # noqa: F401
from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "Hello from MySQL-python\n"
