"""The pre-receive hook: export the pushed tree and deploy it through the API, streaming its log.

git runs this inside `git receive-pack`; whatever it prints reaches the pusher
as `remote:` lines, and a non-zero exit rejects the push (the ref is not updated).
"""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

ZERO = "0" * 40


def export_tree(commit: str, dest: Path) -> None:
    """Write the commit's files to dest.

    The `tar` filter refuses any file that would land outside dest (also through a
    link); links pointing out of the tree are kept so the builder's pre-flight
    check can name them.
    """
    archive = subprocess.run(["git", "archive", "--format=tar", commit], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="tar")


def branch_head(ref: str) -> str:
    """Where the branch is now (ZERO when it does not exist yet)."""
    found = subprocess.run(["git", "rev-parse", "--verify", "--quiet", ref], capture_output=True, text=True)
    return found.stdout.strip() or ZERO


def say(line: str) -> None:
    print(line, flush=True)


def deploy(api_url: str, token: str, app: str, commit: str, source: Path) -> bool:
    """POST the tree to the API and relay its NDJSON events; True when the release went live.

    The standard library's http.client keeps the hook's start-up short: it runs on every push.
    """
    url = urlsplit(api_url)
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=None)
    started = os.environ.get("SHIPYARD_PUSH_STARTED")
    author, _, subject = subprocess.run(["git", "log", "-1", "--format=%an%x00%s", commit], capture_output=True,
                                        text=True).stdout.strip().partition("\0")
    body = json.dumps({"source_dir": str(source), "commit": commit, "author": author, "subject": subject,
                       "received_at": float(started) if started else None})
    connection.request("POST", f"/apps/{app}/deploys", body=body,
                       headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        data = response.read().decode(errors="replace")
        try:
            say(f"!     {json.loads(data).get('error')}")
        except ValueError:
            say(f"!     The platform answered {response.status}: {data[:200]}")
        return False
    ok = False
    for raw in response:
        if not raw.strip():
            continue
        event = json.loads(raw)
        if "log" in event:
            say(event["log"])
        elif "error" in event:
            for line in event["error"].splitlines():
                say(f"!     {line}")
            if event.get("hint"):
                for line in event["hint"].splitlines():
                    say(f"!     {line}")
        elif "release" in event:
            ok = True
    connection.close()
    return ok


def main() -> int:
    api_url, token, app = (os.environ[k] for k in ("SHIPYARD_API_URL", "SHIPYARD_HOOK_TOKEN", "SHIPYARD_APP"))
    branch = os.environ.get("SHIPYARD_BRANCH", "main")
    tmp_root = Path(os.environ.get("SHIPYARD_TMP", tempfile.gettempdir()))
    status = 0
    for line in sys.stdin:
        old, new, ref = line.split()
        if ref != f"refs/heads/{branch}":
            say(f"-----> Pushed {ref}: only {branch} is deployed (set another with "
                f"`shipyard apps set {app} --branch NAME`)")
            continue
        if new == ZERO:
            say(f"!     Deleting {branch} would leave nothing to deploy; the running release is unchanged.")
            status = 1
            continue
        if (head := branch_head(ref)) != old:
            # The push was made against a branch another push has moved since: git would refuse to move
            # it after the deploy, leaving live code the branch does not have.
            say(f"!     {branch} is now at {head[:7]}: another push landed while this one waited. "
                "Nothing from this push was deployed.")
            say(f"!     Fetch it (`git pull --rebase shipyard {branch}`), then push again.")
            status = 1
            continue
        tmp_root.mkdir(parents=True, exist_ok=True)
        source = Path(tempfile.mkdtemp(prefix=f"src-{app}-", dir=tmp_root))
        try:
            export_tree(new, source)
            if not deploy(api_url, token, app, new, source):
                say("!     Push rejected: the deploy failed (see above). The running release keeps serving.")
                status = 1
        except (OSError, http.client.HTTPException, subprocess.CalledProcessError, tarfile.TarError) as exc:
            say(f"!     Push rejected: {exc}")
            status = 1
        finally:
            shutil.rmtree(source, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
