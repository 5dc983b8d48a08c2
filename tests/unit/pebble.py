"""A real ACME server on loopback for tests: Debian's pebble, resolving every name to 127.0.0.1 through
pebble-challtestsrv, and validating HTTP-01 against a small challenge server of the test's own.

Pebble serves its directory over HTTPS with a certificate made here by a throwaway CA (`Pebble.ca_bundle`), so the
client under test verifies it as it would Let's Encrypt's. Processes are stopped by their pid on the way out.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shipyard.proc import free_port

PEBBLE = Path("/usr/bin/pebble")
CHALLTESTSRV = Path("/usr/bin/pebble-challtestsrv")
CHALLENGE_PREFIX = "/.well-known/acme-challenge/"
# Pebble refuses 5 % of good nonces by default to catch clients that don't retry badNonce; more here, so that a
# client retrying only once (the library alone) fails these tests instead of one run in a few dozen.
NONCE_REJECT_PERCENT = "20"


@dataclass(frozen=True)
class Pebble:
    directory_url: str
    ca_bundle: Path  # the CA of pebble's own HTTPS certificate (not of the certificates it issues)
    management_url: str

    def issuing_root(self) -> x509.Certificate:
        """The root pebble made at its start, which the chains it issues lead to."""
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        response = httpx.get(f"{self.management_url}/roots/0", verify=context)
        response.raise_for_status()
        return x509.load_pem_x509_certificate(response.content)


class ChallengeServer:
    """Answers GET /.well-known/acme-challenge/<token> with what was published for it, 404 otherwise."""

    def __init__(self) -> None:
        self.answers: dict[str, str] = {}
        answers = self.answers

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                answer = answers.get(self.path.removeprefix(CHALLENGE_PREFIX)) \
                    if self.path.startswith(CHALLENGE_PREFIX) else None
                body = (answer or "not published\n").encode()
                self.send_response(200 if answer else 404)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]

    @contextmanager
    def running(self) -> Iterator[ChallengeServer]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()
            thread.join()


@contextmanager
def running_pebble(workdir: Path, http01_port: int) -> Iterator[Pebble]:
    """Pebble and its DNS (challtestsrv) started in `workdir`, validating HTTP-01 on 127.0.0.1:`http01_port`."""
    workdir.mkdir(parents=True, exist_ok=True)
    ca_bundle, cert, key = _tls_files(workdir)
    dns, acme, management = free_port(), free_port(), free_port()
    config = workdir / "pebble-config.json"
    config.write_text(json.dumps({"pebble": {
        "listenAddress": f"127.0.0.1:{acme}",
        "managementListenAddress": f"127.0.0.1:{management}",
        "certificate": str(cert),
        "privateKey": str(key),
        "httpPort": http01_port,
        "tlsPort": free_port(),  # nothing listens there: only HTTP-01 is answered
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
    }}))
    # Every other listener of challtestsrv is off; its management one can't be (empty means port 80 on every
    # address), so it gets a free loopback port. No AAAA answers: the challenge server is on 127.0.0.1 only.
    dns_command = [str(CHALLTESTSRV), "-dns01", f"127.0.0.1:{dns}", "-http01", "", "-https01", "", "-tlsalpn01", "",
                   "-management", f"127.0.0.1:{free_port()}", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PEBBLE_")}
    # Validation really happens (no PEBBLE_VA_ALWAYS_VALID), without pebble's random 0-15 s waits before it.
    env |= {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": NONCE_REJECT_PERCENT}
    pebble_command = [str(PEBBLE), "-config", str(config), "-dnsserver", f"127.0.0.1:{dns}", "-strict=false"]
    with _process(dns_command, workdir / "challtestsrv.log", env) as dns_server, \
            _process(pebble_command, workdir / "pebble.log", env) as pebble:
        _wait_udp_dns(dns, dns_server, workdir / "challtestsrv.log")
        found = Pebble(f"https://127.0.0.1:{acme}/dir", ca_bundle, f"https://127.0.0.1:{management}")
        _wait_directory(found, pebble, workdir / "pebble.log")
        yield found


@contextmanager
def _process(command: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_udp_dns(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    # A minimal DNS query (A for "a.test"): challtestsrv is ready once it answers.
    query = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x04test\x00\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.1)

        def answers() -> bool:
            sock.sendto(query, ("127.0.0.1", port))
            return sock.recv(512)[:2] == b"\x12\x34"

        _until(answers, proc, log)


def _wait_directory(pebble: Pebble, proc: subprocess.Popen[bytes], log: Path) -> None:
    context = ssl.create_default_context(cafile=str(pebble.ca_bundle))
    _until(lambda: httpx.get(pebble.directory_url, verify=context, timeout=1).status_code == 200, proc, log)


def _until(ready: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            if ready():
                return
        except (OSError, httpx.HTTPError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{proc.args[0]} did not start (exit {proc.returncode}):\n{log.read_text()}")
        time.sleep(0.05)


def _tls_files(workdir: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and, signed by it, a certificate for localhost/127.0.0.1: (CA bundle, certificate, key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Shipyard test CA for pebble")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                       crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(IPv4Address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = workdir / "pebble-ca.pem", workdir / "pebble-cert.pem", workdir / "pebble-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths
