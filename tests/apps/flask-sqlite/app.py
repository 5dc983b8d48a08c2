"""Keeps its data in a local SQLite file, as many tutorials do: Shipyard warns at build time."""

from flask import Flask

app = Flask(__name__)
DATABASE = "sqlite:///todo.db"


@app.get("/")
def index():
    return f"Using {DATABASE}\n"
