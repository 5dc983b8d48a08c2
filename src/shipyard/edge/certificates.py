"""The edge's TLS certificates: one PEM file (chain and key) per hostname, listed in HAProxy's crt-list, and
changed at run time through the runtime API (new, set, commit, add to the list) — never by a reload.

The files and the list are what a freshly started HAProxy loads, so a restart serves the same certificates.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from shipyard.edge.haproxy_cli import RuntimeAPI
from shipyard.errors import PlatformError

_HOSTNAME = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")


def certificate_path(folder: Path, hostname: str) -> Path:
    if not _HOSTNAME.fullmatch(hostname):
        raise PlatformError(f"{hostname!r} is not a hostname the edge can hold a certificate for.")
    return folder / f"{hostname.replace('*', '_wildcard_')}.pem"


def write_private(path: Path, text: str) -> None:
    """Written whole or not at all (rename), readable by root alone: the file holds the private key."""
    temporary = path.with_name(f".{path.name}.new")
    temporary.unlink(missing_ok=True)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(temporary, path)


class EdgeCertificates:
    def __init__(self, folder: Path, crt_list: Path, api: RuntimeAPI) -> None:
        self.folder = folder
        self.crt_list = crt_list
        self._api = api

    def prepare(self) -> None:
        """The folder and the list as a starting HAProxy must find them (the list names every file there)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        self._write_list()

    def installed(self) -> set[str]:
        return {p.name for p in self.folder.glob("*.pem")}

    def hostnames(self) -> set[str]:
        """The hostnames the edge holds a certificate for."""
        return {name.removesuffix(".pem").replace("_wildcard_", "*") for name in self.installed()}

    def _write_list(self) -> None:
        lines = "".join(f"{self.folder / name}\n" for name in sorted(self.installed()))
        write_private(self.crt_list, lines)

    async def install(self, hostname: str, pem: str, running: bool) -> None:
        """Serve `pem` (certificate chain, then key) for `hostname`: a new one, or a renewal in place."""
        path = certificate_path(self.folder, hostname)
        known = path.exists()
        write_private(path, pem)
        self._write_list()
        if not running:
            return  # the next HAProxy loads it from the list
        if not known:
            await self._api.run(f"new ssl cert {path}", success="New empty certificate store")
        await self._api.run(f"set ssl cert {path} <<\n{pem.rstrip()}\n", success="Transaction created")
        await self._api.run(f"commit ssl cert {path}", success="Success!")
        if not known:
            await self._api.run(f"add ssl crt-list {self.crt_list} {path}", success="Success!")

    async def remove(self, hostname: str, running: bool) -> None:
        path = certificate_path(self.folder, hostname)
        if not path.exists():
            return
        path.unlink()
        self._write_list()
        if running:
            await self._api.run(f"del ssl crt-list {self.crt_list} {path}", success="deleted")
            await self._api.run(f"del ssl cert {path}", success="deleted")
