"""A tutorial's Flask app: started with `python main.py`, with the debugger on."""

import os

from flask import Flask, request

app = Flask(__name__)


@app.get("/")
def index():
    return "Hello from main.py\n"


@app.get("/server")
def server():
    return request.environ.get("SERVER_SOFTWARE", "") + "\n"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", 5000)), debug=True)
