"""The slug server over real TLS on loopback, fetched from by the init container's real script: a uv-made venv
packed for the pod unpacks where the pod runs it and runs from there; a wrong token, an unknown CA or a wrong
checksum leaves nothing behind; only the slugs' own paths answer."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from shipyard.addons.tls import CertificateAuthority
from shipyard.api.slug_server import SlugServer
from shipyard.errors import PlatformError
from shipyard.proc import find_binary
from shipyard.runtime.kubernetes.slug import FETCH_SCRIPT
from shipyard.runtime.kubernetes.slug_archive import SlugArchive, pack_slug
from shipyard.runtime.kubernetes.slug_tokens import slug_token

SECRET = b"k" * 32
PYTHON = os.path.realpath(sys.executable)  # the host's interpreter, as the venv names it (python3.X)
GREET = "import sys\nimport todo\n\ndef main():\n    print('hello from', todo.WHO, 'in', sys.prefix)\n"


def make_slug(root: Path) -> Path:
    """A slug as a build leaves it: a uv-made venv in the app's venvs folder, a console script whose shebang
    names it, and the app installed editable (a .pth naming the host's app/src)."""
    slug = root / "slugs" / "todo" / "1700000000000-abc1234"
    (slug / "app" / "src" / "todo").mkdir(parents=True)
    (slug / "app" / "src" / "todo" / "__init__.py").write_text("WHO = 'todo'\n")
    venv = root / "slugs" / "todo" / "venvs" / "3f2a9c"
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_OFFLINE": "1", "UV_NO_CONFIG": "1"}
    subprocess.run([str(find_binary("uv", "uv")), "venv", "-q", "--python", PYTHON, str(venv)], env=env,
                   check=True, timeout=60)
    [site] = venv.glob("lib/python3.*/site-packages")
    (site / "greet.py").write_text(GREET)
    (site / "__editable__.todo-0.1.pth").write_text(f"{slug}/app/src\n")
    script = venv / "bin" / "greet"
    script.write_text(f"#!{venv}/bin/python\nimport sys\nfrom greet import main\nsys.exit(main())\n")
    script.chmod(0o755)
    (slug / "venv").symlink_to(venv)
    return slug


@dataclass
class Served:
    server: SlugServer
    ca_pem: str
    ca_file: Path
    archives: dict[tuple[str, int], SlugArchive] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.server.port}{path}"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    ca.issue(tmp_path / "slugs.crt", tmp_path / "slugs.key", ["127.0.0.1"])
    archives: dict[tuple[str, int], SlugArchive] = {}

    def locate(app: str, version: int) -> Path | None:
        found = archives.get((app, version))
        return found.path if found else None

    server = SlugServer("127.0.0.1", 0, tmp_path / "slugs.crt", tmp_path / "slugs.key", SECRET, locate)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="slug-server")
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=15)
        yield Served(server, ca.cert_file.read_text(), ca.cert_file, archives)
        port = server.port
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=15)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=15)
        loop.close()


def fetch(root: Path, url: str, token: str, sha256: str = "", ca: str = "") -> subprocess.CompletedProcess[str]:
    root.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", ""), "SLUG_URL": url, "SLUG_TOKEN": token, "SLUG_SHA256": sha256,
           "SLUG_CA": ca}
    return subprocess.run([sys.executable, "-c", FETCH_SCRIPT, str(root)], env=env, capture_output=True,
                          text=True, timeout=60)


def raw_request(served: Served, method: str, path: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request as written, over TLS verified against the CA: no client normalises `..` away."""
    context = ssl.create_default_context(cafile=str(served.ca_file))
    auth = f"Authorization: Bearer {token}\r\n" if token is not None else ""
    with socket.create_connection(("127.0.0.1", served.server.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n".encode())
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status.split()[1]), headers, body


def test_a_slug_fetched_over_tls_unpacks_relocated_for_the_pod(served: Served, tmp_path: Path) -> None:
    archive = pack_slug(make_slug(tmp_path / "host"), tmp_path / "v3.tar.gz", python=PYTHON)
    served.archives["todo", 3] = archive
    root = tmp_path / "slug"
    done = fetch(root, served.url("/slugs/todo/v3.tar.gz"), slug_token(SECRET, "todo", 3), archive.sha256,
                 served.ca_pem)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in root.iterdir()) == ["app", "venv"]
    for name in ("python", "python3", os.path.basename(PYTHON)):
        assert os.readlink(root / "venv" / "bin" / name) == PYTHON
    assert (root / "venv/bin/greet").read_text().splitlines()[0] == "#!/slug/venv/bin/python"
    assert os.access(root / "venv/bin/greet", os.X_OK)
    assert f"home = {os.path.dirname(PYTHON)}" in (root / "venv/pyvenv.cfg").read_text().splitlines()
    [pth] = root.glob("venv/lib/python3.*/site-packages/__editable__.todo-0.1.pth")
    assert pth.read_text() == "/slug/app/src\n"
    assert (root / "app/src/todo/__init__.py").read_text() == "WHO = 'todo'\n"


def test_the_unpacked_venv_runs_where_it_was_unpacked(served: Served, tmp_path: Path) -> None:
    root = tmp_path / "pod" / "slug"  # stands for /slug: the archive is packed for this root
    archive = pack_slug(make_slug(tmp_path / "host"), tmp_path / "v4.tar.gz", slug_root=str(root), python=PYTHON)
    served.archives["todo", 4] = archive
    done = fetch(root, served.url("/slugs/todo/v4.tar.gz"), slug_token(SECRET, "todo", 4), archive.sha256,
                 served.ca_pem)
    assert done.returncode == 0, done.stderr
    env = {"PATH": f"{root}/venv/bin:/usr/bin:/bin", "HOME": str(root / "app")}
    ran = subprocess.run(["greet"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == f"hello from todo in {root}/venv"  # its venv, its editable app, moved


def test_a_wrong_token_an_unknown_ca_or_a_wrong_checksum_leave_nothing(served: Served, tmp_path: Path) -> None:
    archive = pack_slug(make_slug(tmp_path / "host"), tmp_path / "v3.tar.gz", python=PYTHON)
    served.archives["todo", 3] = archive
    url = served.url("/slugs/todo/v3.tar.gz")
    refused = fetch(tmp_path / "a", url, slug_token(SECRET, "todo", 2), archive.sha256, served.ca_pem)
    assert refused.returncode != 0 and "403" in refused.stderr
    untrusted = fetch(tmp_path / "b", url, slug_token(SECRET, "todo", 3), archive.sha256)  # system trust only
    assert untrusted.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
    wrong = fetch(tmp_path / "c", url, slug_token(SECRET, "todo", 3), "0" * 64, served.ca_pem)
    assert wrong.returncode != 0 and "checksum mismatch" in wrong.stderr
    for root in ("a", "b", "c"):
        assert list((tmp_path / root).iterdir()) == []


def test_only_the_slugs_own_paths_answer(served: Served, tmp_path: Path) -> None:
    archive = pack_slug(make_slug(tmp_path / "host"), tmp_path / "v3.tar.gz", python=PYTHON)
    served.archives["todo", 3] = archive
    token = slug_token(SECRET, "todo", 3)
    status, headers, body = raw_request(served, "GET", "/slugs/todo/v3.tar.gz", token)
    assert status == 200 and int(headers["content-length"]) == archive.size
    assert hashlib.sha256(body).hexdigest() == archive.sha256
    status, headers, body = raw_request(served, "HEAD", "/slugs/todo/v3.tar.gz", token)
    assert status == 200 and int(headers["content-length"]) == archive.size and body == b""
    status, headers, body = raw_request(served, "GET", "/slugs/todo/v3.tar.gz")
    assert status == 401 and headers["www-authenticate"] == "Bearer" and b"token" in body
    assert raw_request(served, "GET", "/slugs/todo/v3.tar.gz", "Basic abc")[0] == 403
    assert raw_request(served, "POST", "/slugs/todo/v3.tar.gz", token)[0] == 405
    for path, app, version in [("/slugs/../x", "todo", 3), ("/slugs/todo/../todo/v3.tar.gz", "todo", 3),
                               ("/slugs/other/v3.tar.gz", "other", 3), ("/slugs/todo/v9.tar.gz", "todo", 9),
                               ("/slugs/Todo/v3.tar.gz", "Todo", 3), ("/slugs/todo/v0.tar.gz", "todo", 0),
                               ("/slugs/todo/v03.tar.gz", "todo", 3), ("/slugs/todo/v3.tar.gz/", "todo", 3),
                               ("/slugs/todo/", "todo", 3), ("/slugs/", "todo", 3), ("/", "todo", 3),
                               ("/slugs/todo/v3.tar", "todo", 3)]:
        status, _, _ = raw_request(served, "GET", path, slug_token(SECRET, app, version))
        assert status == 404, path


def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    ca.issue(tmp_path / "s.crt", tmp_path / "s.key", ["127.0.0.1"])

    async def scenario() -> None:
        first = SlugServer("127.0.0.1", 0, tmp_path / "s.crt", tmp_path / "s.key", SECRET, lambda app, v: None)
        await first.start()
        try:
            busy = SlugServer("127.0.0.1", first.port, tmp_path / "s.crt", tmp_path / "s.key", SECRET,
                              lambda app, v: None)
            with pytest.raises(PlatformError, match="could not listen"):
                await busy.start()
        finally:
            await first.stop()
            await first.stop()  # a second stop does nothing
        broken = SlugServer("127.0.0.1", 0, tmp_path / "missing.crt", tmp_path / "s.key", SECRET, lambda app, v: None)
        with pytest.raises(PlatformError, match="certificate"):
            await broken.start()

    asyncio.run(scenario())
