from pathlib import Path

import flask
from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    tampered = "tampered flask" if getattr(flask, "TAMPERED", False) else "real flask"
    return f"{Path('data.txt').read_text().strip()}; {tampered}\n"
