import os

from flask import Flask, jsonify, request

app = Flask(__name__)
VERSION = "1"


@app.get("/")
def index():
    greeting = os.environ.get("GREETING", "Hello")
    return f"{greeting} from flask-hello v{VERSION}\n"


@app.get("/env")
def env():
    keys = ["PORT", "EXTERNAL_URL", "EXTERNAL_HOSTNAME", "WEB_CONCURRENCY", "FORWARDED_ALLOW_IPS",
            "SHIPYARD_TRUST_PROXY_DEPTH", "GREETING", "DYNO", "SHIPYARD_PROCESS"]
    return jsonify({k: os.environ.get(k) for k in keys})


@app.get("/headers")
def headers():
    return jsonify({k: v for k, v in request.headers.items()
                    if k.lower().startswith("x-forwarded") or k.lower() == "x-request-id"} |
                   {"Host": request.host, "remote_addr": request.remote_addr})
