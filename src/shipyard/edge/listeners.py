"""The edge's listening sockets: bound by the platform and inherited by HAProxy as `fd@N`, so their queues
survive an HAProxy restart (connections wait for the next one instead of being refused), and the platform
names a port conflict itself."""

from __future__ import annotations

import errno
import os
import socket

from shipyard.errors import PlatformError


def bind(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, int(port)), family=family, backlog=4096)
    except ValueError:
        raise PlatformError(f"The edge's listen address {address!r} is not host:port.",
                            hint="Give an address such as 127.0.0.1:8480.") from None
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        hint = ("Another program uses that port; stop it or start Shipyard with another --edge-port/--https-port."
                if exc.errno == errno.EADDRINUSE else "Check the --edge-host, --edge-port and --https-port options.")
        raise PlatformError(f"The edge cannot listen on {address}: {reason}.", hint=hint) from None
    sock.setblocking(False)  # HAProxy expects a non-blocking listener
    return sock
