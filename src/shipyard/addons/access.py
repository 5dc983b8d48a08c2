"""Where the platform's PostgreSQL server is reached, and by whom: its addresses, the host clients name, pg_hba."""

from __future__ import annotations

import socket

ADMIN_ROLE = "shipyard_admin"
HOST = "127.0.0.1"  # where the platform checks that the server accepts connections
IPV6_LOOPBACK = "::1"
# The host apps, the admin and psql connect to. A name, not 127.0.0.1: libpq before 15 (psycopg2-binary 2.9.3
# bundles libpq 14) checks only the certificate's DNS names, so `verify-full` to an IP address fails there.
CLIENT_HOST = "localhost"


def listen_addresses(ipv6_loopback: bool) -> str:
    """Both loopback addresses `localhost` may resolve to (/etc/hosts often lists ::1 for it, and libpq tries
    the addresses in order): no client's first attempt is refused. The IPv6 one only where it exists."""
    return f"{HOST},{IPV6_LOOPBACK}" if ipv6_loopback else HOST


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind((IPV6_LOOPBACK, 0))
    except OSError:  # IPv6 disabled (ipv6.disable=1, or no address on lo)
        return False
    return True


def pg_hba() -> str:
    """TLS only, from loopback only; a role only into the database of its own name (the admin anywhere)."""
    lines = [f"local   all       {ADMIN_ROLE:<15} {'':<15} scram-sha-256"]
    for network in (f"{HOST}/32", f"{IPV6_LOOPBACK}/128"):
        lines.append(f"hostssl all       {ADMIN_ROLE:<15} {network:<15} scram-sha-256")
    for network in (f"{HOST}/32", f"{IPV6_LOOPBACK}/128"):
        lines.append(f"hostssl sameuser  {'all':<15} {network:<15} scram-sha-256")
    lines += [f"host    all       {'all':<15} {network:<15} reject" for network in ("0.0.0.0/0", "::/0")]
    return "# Written by Shipyard at every start.\n" + "\n".join(lines) + "\n"
