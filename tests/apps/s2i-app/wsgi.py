import os
from pathlib import Path


def application(environ, start_response):
    assembled = Path("assembled.txt").read_text().strip()
    body = f"{os.environ['GREETING_FROM_S2I']}; {assembled}\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
