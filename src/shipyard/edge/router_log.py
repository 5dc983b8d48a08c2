"""HAProxy's per-request log lines as values: what the edge logs (`LOG_FORMAT`), read back, and the router
line an app's log shows (pure)."""

from __future__ import annotations

from dataclasses import dataclass

# One line per request, space-separated (a request line's URI holds no space; HAProxy writes "-" for an
# empty field): app, request id, backend, server, method, URI, status, active time (ms), bytes sent.
LOG_FORMAT = "%[var(txn.app)] %[var(txn.rid)] %b %s %HM %HU %ST %Ta %B"
NO_SERVER = "<NOSRV>"  # answered by the edge itself (no instance, not found)


@dataclass(frozen=True)
class RouterEntry:
    app: str
    request_id: str
    backend: str
    server: str  # HAProxy's server name (s12), or NO_SERVER
    method: str
    path: str
    status: int
    milliseconds: int
    bytes_sent: int

    @property
    def status_class(self) -> str:
        return f"{self.status // 100}xx" if 100 <= self.status < 600 else "other"


def parse(line: str) -> RouterEntry | None:
    """A log line back into its fields; None for lines of another shape (HAProxy's own notices) and for
    requests to no app (unknown hosts)."""
    fields = line.strip().split(" ")
    if len(fields) != 9 or fields[0] in ("", "-"):
        return None
    app, request_id, backend, server, method, path, status, active, sent = fields
    try:
        return RouterEntry(app, request_id, backend, server, method, path, int(status), max(int(active), 0),
                           max(int(sent), 0))
    except ValueError:
        return None


def size(count: int) -> str:
    if count < 1000:
        return f"{count} B"
    if count < 1_000_000:
        return f"{count / 1000:.1f} kB"
    return f"{count / 1_000_000:.1f} MB"


def router_line(entry: RouterEntry, instance: str) -> str:
    """As Heroku's router line, shorter: `GET /path 200 12 ms 1.2 kB web.2 req=<id>`."""
    return (f"{entry.method} {entry.path} {entry.status} {entry.milliseconds} ms {size(entry.bytes_sent)} "
            f"{instance} req={entry.request_id}")
