"""HAProxy's config as text: a pure function of the edge's settings and its current routing state.

The config is written once per HAProxy process (at start, and when the platform restarts a dead one, with
the routes and servers it had); after that only the runtime API changes it (see `shipyard.edge.routes`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from shipyard.edge.router_log import LOG_FORMAT
from shipyard.edge.routes import EdgeState, backend_name


@dataclass(frozen=True)
class EdgeLimits:
    """The edge's protection against slow or greedy clients (hardened defaults, settings can change them)."""

    request_headers_timeout: str = "10s"  # a client must send its whole request head in this time (slowloris)
    client_idle_timeout: str = "60s"  # a client that stops reading or sending mid-request
    keep_alive_timeout: str = "75s"  # an idle keep-alive connection between requests
    server_timeout: str = "300s"  # an app silent this long in the middle of a response (streaming resumes it)
    tunnel_timeout: str = "3600s"  # an idle WebSocket
    max_body_bytes: int = 100 * 1024 * 1024  # a request body announced larger is refused (413) before the app
    # How long a request whose instance refused the connection keeps trying: HAProxy waits a second between
    # tries on a refused connection, so an app whose only instance crashed has its requests held (~10 s)
    # while it restarts on the same address, instead of answered 503. Only connection failures are retried:
    # the request never reached the app, so even a POST is safe to send again.
    retries: int = 10
    # HAProxy's threads (0: one per core). On a machine of two cores or fewer the edge shares them with the apps,
    # and one thread measured better (bench/README.md, "Edge throughput").
    threads: int = field(default_factory=lambda: 1 if (os.cpu_count() or 1) <= 2 else 0)


NOT_FOUND_BODY = ("No application is served at this address.\\n"
                  "Check the app's name and URL with `shipyard apps`.\\n")


TOO_LARGE_BODY = "The request's body is larger than this platform accepts.\\n"


def no_instance_body() -> str:
    return ("Application '%[var(txn.app)]' has no running instance.\\n"
            "Deploy it with `git push`, or see why with `shipyard logs %[var(txn.app)]`.\\n")


def not_answering_body(status: int, reason: str) -> str:
    return (f"Application '%[var(txn.app)]' at %[var(txn.host)] is not answering ({status} {reason} from the "
            "edge).\\nSee why with `shipyard logs %[var(txn.app)]`.\\n")


# The proxy's own failures: instance refused (503 after the retries), dropped (502) or was too slow (504).
PROXY_FAILURES = ((502, "Bad Gateway"), (503, "Service Unavailable"), (504, "Gateway Timeout"))
TEXT = 'content-type "text/plain; charset=utf-8" hdr Cache-Control no-store'


def hosts_map_text(state: EdgeState) -> str:
    return "".join(f"{host} {value}\n" for app in sorted(state.hosts) for host, value in sorted(state.hosts[app].items()))


@dataclass(frozen=True)
class EdgeFiles:
    """Where the edge's files are: all in the platform's data directory, root's alone."""

    admin_socket: Path
    hosts_map: Path
    acme_map: Path  # ACME HTTP-01 tokens → key authorizations, answered by the edge itself
    crt_list: Path  # the certificates beyond the default one, one file per hostname
    default_certificate: Path  # served to a TLS client naming no hostname the edge has a certificate for
    log_socket: Path | None = None


@dataclass(frozen=True)
class Listeners:
    http_fd: int
    https_fd: int | None = None
    https_port: int = 443  # as clients reach it: the port a redirect to HTTPS names


def https_location(port: int) -> str:
    """Where a plain-HTTP request is redirected: the same host and URI over HTTPS, on the edge's HTTPS port."""
    suffix = "" if port == 443 else f":{port}"
    return f"https://%[var(txn.host)]{suffix}%[capture.req.uri]"


def haproxy_config(*, files: EdgeFiles, listeners: Listeners, state: EdgeState, pool: int,
                   limits: EdgeLimits = EdgeLimits()) -> str:
    """The whole config: one frontend on the platform's listening sockets, `pool` backends for apps."""
    tls = listeners.https_fd is not None
    lines = [
        "global",
        # The socket's mode is the runtime API's only protection; tenants cannot even see the data directory.
        f"    stats socket {files.admin_socket} mode 600 level admin",
        "    stats timeout 10s",
        *([f"    nbthread {limits.threads}"] if limits.threads else []),
        # One line per request to the platform's datagram socket (edge.log_receiver): router lines, metrics.
        *([f"    log {files.log_socket} len 8192 format raw local0 info"] if files.log_socket else []),
        "    ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets",
        # No maxconn: HAProxy derives it from the file-descriptor limit it was given.
        "",
        "defaults",
        "    mode http",
        "    log global",
        "    option dontlognull",
        f'    log-format "{LOG_FORMAT}"',
        "    timeout connect 5s",
        f"    timeout client {limits.client_idle_timeout}",
        f"    timeout http-request {limits.request_headers_timeout}",
        f"    timeout http-keep-alive {limits.keep_alive_timeout}",
        f"    timeout server {limits.server_timeout}",
        f"    timeout tunnel {limits.tunnel_timeout}",
        "    timeout queue 30s",
        f"    retries {limits.retries}",
        "    retry-on conn-failure",
        "    option redispatch 1",
        "",
        "frontend edge",
        # Bound by the platform and inherited: their queues survive an HAProxy restart (haproxy.Edge._bind).
        f"    bind fd@{listeners.http_fd}",
        *([f"    bind fd@{listeners.https_fd} ssl crt {files.default_certificate} crt-list {files.crt_list} "
           "alpn h2,http/1.1"] if tls else []),
        # The request's id, passed to the app and in its router line: the client's own if it looks like one
        # (as Heroku keeps it: 20–200 characters), else a new UUID.
        "    http-request set-var(txn.rid) req.hdr(x-request-id) if { req.hdr(x-request-id) -m reg "
        "^[A-Za-z0-9+/=_-]{20,200}$ }",
        "    http-request set-var(txn.rid) uuid() unless { var(txn.rid) -m found }",
        "    http-request set-header X-Request-ID %[var(txn.rid)]",
        "    http-request set-var(txn.host) req.hdr(host),field(1,:),lower",
        # ACME HTTP-01: answered by the edge from its map, before any redirect (the CA asks over plain HTTP).
        f"    http-request set-var(txn.acme) path,field(4,/),map({files.acme_map}) "
        "if { path_beg /.well-known/acme-challenge/ }",
        f"    http-request return status 200 {TEXT} lf-string \"%[var(txn.acme)]\" if {{ var(txn.acme) -m found }}",
        f"    http-request set-var(txn.route) var(txn.host),map({files.hosts_map})",
        "    http-request set-var(txn.app) var(txn.route),field(2,:)",
        f"    http-request return status 404 {TEXT} string \"{NOT_FOUND_BODY}\" if !{{ var(txn.route) -m found }}",
        *([f"    http-request redirect code 308 location {https_location(listeners.https_port)} "
           "if !{ ssl_fc } { var(txn.route),field(3,:) -m sub r }"] if tls else []),
        f"    http-request deny deny_status 413 {TEXT} string \"{TOO_LARGE_BODY}\" "
        f"if {{ req.hdr_val(content-length) gt {limits.max_body_bytes} }}",
        # Set by the edge alone: a client's own X-Forwarded-* must not reach the app as the truth.
        "    http-request set-header X-Forwarded-For %[src]",
        "    http-request set-header X-Forwarded-Proto https if { ssl_fc }",
        "    http-request set-header X-Forwarded-Proto http unless { ssl_fc }",
        "    http-request set-header X-Forwarded-Host %[req.hdr(host)]",
        "    http-request del-header Forwarded",
        "    http-response set-header Strict-Transport-Security \"max-age=31536000\" "
        "if { ssl_fc } { var(txn.route),field(3,:) -m sub h }",
        "    use_backend %[var(txn.route),field(1,:)]",
        "",
    ]
    for index in range(pool):
        backend = backend_name(index)
        lines += [
            f"backend {backend}",
            "    balance leastconn",
            f"    http-request return status 503 {TEXT} lf-string \"{no_instance_body()}\" if {{ nbsrv eq 0 }}",
            *(f"    http-error status {status} {TEXT} lf-string \"{not_answering_body(status, reason)}\""
              for status, reason in PROXY_FAILURES),
            *(f"    server {s.name} {s.address}" for s in state.servers.get(backend, ())),
            "",
        ]
    return "\n".join(lines)

