"""HTTPS to the edge as a browser does it, on a machine that resolves no *.localhost name: the socket is dialled
to 127.0.0.1 by hand, the TLS handshake names the hostname (SNI) and verifies against a given CA."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path


def tls_get(port: int, hostname: str, ca_file: Path, path: str = "/") -> tuple[str, bytes, str]:
    """(ALPN protocol the edge chose when offered h2, the HTTP/1.1 response, the certificate's common name)."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=hostname) as tls:
            alpn = tls.selected_alpn_protocol() or ""
            subject = dict(item[0] for item in tls.getpeercert()["subject"])["commonName"]
    plain = ssl.create_default_context(cafile=str(ca_file))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with plain.wrap_socket(raw, server_hostname=hostname) as tls:
            tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {hostname}\r\nConnection: close\r\n\r\n".encode())
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    return alpn, answer, subject
