from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "never deployed: its build fills the disk\n"
