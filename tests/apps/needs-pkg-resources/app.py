import gunicorn
from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return f"served by gunicorn {gunicorn.__version__}\n"
