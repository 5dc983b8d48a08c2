"""The slug fetch the init container runs, run for real against a loopback HTTP server, and kubelet's
`$(VAR)` expansion of commands and env values."""

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shipyard.runtime.kubernetes import Hostname, KubeRelease, release_objects
from shipyard.runtime.kubernetes.pods import literal
from shipyard.runtime.kubernetes.slug import FETCH_SCRIPT

TOKEN = "per-release-token-7f3a"


def slug_archive(extra: tarfile.TarInfo | None = None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("app/app.py", b"app = None\n"), ("venv/pyvenv.cfg", b"home = /usr/local/bin\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o4755 if name.endswith(".py") else 0o644
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("venv/bin/python")
        link.type, link.linkname = tarfile.SYMTYPE, "/usr/local/bin/python3"  # a venv's, outside the slug
        tar.addfile(link)
        if extra is not None:
            tar.addfile(extra, io.BytesIO(b"x" * extra.size))
    return buffer.getvalue()


@pytest.fixture
def server():
    served: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.headers.get("Authorization") != f"Bearer {TOKEN}" or self.path not in served:
                self.send_response(403)
                self.end_headers()
                return
            body = served[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def fetch(root: Path, url: str, token: str = TOKEN, sha256: str = "") -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", ""), "SLUG_URL": url, "SLUG_TOKEN": token, "SLUG_SHA256": sha256}
    return subprocess.run([sys.executable, "-c", FETCH_SCRIPT, str(root)], env=env, capture_output=True,
                          text=True, timeout=30)


def test_fetch_unpacks_the_slug_and_checks_its_digest(server, tmp_path):
    served, base = server
    served["/todo/v7"] = archive = slug_archive()
    done = fetch(tmp_path, f"{base}/todo/v7", sha256=hashlib.sha256(archive).hexdigest())
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "app/app.py").read_text() == "app = None\n"
    assert not (tmp_path / "app/app.py").stat().st_mode & 0o4000  # setuid dropped
    assert os.readlink(tmp_path / "venv/bin/python") == "/usr/local/bin/python3"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app", "venv"]  # the download is gone


def test_fetch_fails_on_a_wrong_token_a_wrong_digest_or_a_member_outside(server, tmp_path):
    served, base = server
    served["/todo/v7"] = slug_archive()
    (tmp_path / "a").mkdir()
    refused = fetch(tmp_path / "a", f"{base}/todo/v7", token="another-release")
    assert refused.returncode != 0 and "403" in refused.stderr
    (tmp_path / "b").mkdir()
    wrong = fetch(tmp_path / "b", f"{base}/todo/v7", sha256="0" * 64)
    assert wrong.returncode != 0 and "checksum mismatch" in wrong.stderr
    assert not (tmp_path / "b/app").exists()
    escape = tarfile.TarInfo("../escaped")
    escape.size = 1
    served["/evil"] = slug_archive(escape)
    (tmp_path / "c").mkdir()
    assert fetch(tmp_path / "c", f"{base}/evil").returncode != 0
    assert not (tmp_path / "escaped").exists()


def kubelet_expand(text: str, env: dict[str, str]) -> str:
    """kubelet's expansion of container commands and env values (k8s.io/kubernetes third_party expansion):
    `$$` is `$`, `$(NAME)` is NAME's value when defined, anything else stays."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            if text[i + 1] == "$":
                out.append("$")
                i += 2
                continue
            if text[i + 1] == "(" and (end := text.find(")", i + 2)) != -1:
                name = text[i + 2:end]
                out.append(env.get(name, text[i:end + 1]))
                i = end + 1
                continue
        out.append(text[i])
        i += 1
    return "".join(out)


@pytest.mark.parametrize("command", ["gunicorn --bind 0.0.0.0:$PORT app:app", "web: ${PORT:-8000} $(date) $$",
                                     "echo $$(HOME) $$$ $( $PATH)", "python -c 'print(\"$(PORT)\")'", "$", "$$$$("])
def test_commands_reach_bash_as_written(command):
    defined = {"PORT": "8080", "HOME": "/slug/app", "date": "kubelet!"}
    assert kubelet_expand(literal(command), defined) == command
    assert "$PORT" in literal("--bind 0.0.0.0:$PORT")  # readable where kubelet would not act


def test_rendered_commands_and_values_survive_kubelet():
    weird = "python -c 'import os; print(os.environ[\"$(PORT)\"])' && echo $$"
    release = KubeRelease(app="odd", version=1, image="runner", slug_url="https://slugs/odd?sig=a$(b)",
                          slug_token="t", process_types={"web": weird}, hostnames=(Hostname("odd.example.com"),))
    [web] = [o for o in release_objects(release) if o["kind"] == "Deployment"]
    pod = web["spec"]["template"]["spec"]
    assert kubelet_expand(pod["containers"][0]["command"][-1], {"PORT": "8080"}) == weird
    [url] = [e["value"] for e in pod["initContainers"][0]["env"] if e["name"] == "SLUG_URL"]
    assert kubelet_expand(url, {"b": "x"}) == "https://slugs/odd?sig=a$(b)"
