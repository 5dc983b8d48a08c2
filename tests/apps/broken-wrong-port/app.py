"""The classic first deploy: Flask's development server on its default 127.0.0.1:5000, not $PORT."""

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    return "never reached\n"


if __name__ == "__main__":
    app.run()
