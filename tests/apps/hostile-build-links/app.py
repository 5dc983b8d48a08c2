from pathlib import Path

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "links app up\n"


@app.get("/planted")
def planted():
    path = Path("planted.txt")
    return path.read_text() if path.exists() else "nothing planted\n"
