import os

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "Hello from Flask's development server\n"


if __name__ == "__main__":
    # As countless tutorials end: the development server, with Werkzeug's debugger on.
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", 5000)), debug=True)
