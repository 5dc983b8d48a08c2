from flask import Flask


def start_app():
    app = Flask(__name__)

    @app.get("/")
    def index():
        return "Hello from an app factory\n"

    return app
