"""Just enough of a Redis client (RESP over a socket, stdlib only) for a job queue, as `redis-py` + RQ would be.

REDIS_URL is what a Redis add-on sets; without it, redis-py's default, localhost:6379. Connecting fails with
ConnectionRefusedError when no Redis is there (on Shipyard: any port of the machine but the database's).
"""

import os
import socket
from urllib.parse import urlsplit

QUEUE = "jobs"


class Redis:
    def __init__(self, url: str | None = None) -> None:
        parts = urlsplit(url or os.environ.get("REDIS_URL", "redis://localhost:6379/0"))
        self.sock = socket.create_connection((parts.hostname or "localhost", parts.port or 6379), timeout=5)
        self.sock.settimeout(None)  # BLPOP waits as long as the queue is empty
        self.file = self.sock.makefile("rb")
        if parts.password:
            self.command("AUTH", parts.password)
        if parts.path.strip("/"):
            self.command("SELECT", parts.path.strip("/"))

    def command(self, *args: str | int):
        payload = f"*{len(args)}\r\n".encode()
        for arg in args:
            data = str(arg).encode()
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
        self.sock.sendall(payload)
        return self._reply()

    def _reply(self):
        line = self.file.readline().rstrip(b"\r\n")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self.file.read(size + 2)[:-2]
            return data.decode()
        if kind == b"*":
            size = int(rest)
            return None if size < 0 else [self._reply() for _ in range(size)]
        raise RuntimeError(f"unexpected reply from Redis: {line!r}")
