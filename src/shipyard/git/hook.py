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

    Each member goes through tarfile's `tar` filter (no absolute names, none leaving dest,
    no special bits); links pointing out of the tree are kept so the builder's pre-flight
    check can name them. The files themselves are written here, not by extractall: every
    folder on a member's way is opened with O_NOFOLLOW and every file created with O_EXCL,
    so no member can go through a link an earlier member made, whatever the filter's
    path checks miss (they resolve paths by name, and have had bypasses).
    """
    archive = subprocess.run(["git", "archive", "--format=tar", commit], check=True, capture_output=True).stdout
    root = os.open(dest, DIR_FLAGS)
    try:
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            for member in tar:
                write_member(tar, tarfile.tar_filter(member, str(dest)), root)
    finally:
        os.close(root)


DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_parent(root: int, names: list[str]) -> int:
    """An fd on the folder holding the member, made as needed, never through a link (ELOOP/ENOTDIR if one is)."""
    fd = os.dup(root)
    try:
        for name in names:
            try:
                os.mkdir(name, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            new = os.open(name, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = new
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, root: int) -> None:
    names = [n for n in member.name.split("/") if n not in ("", ".")]
    if not names or ".." in names:
        raise tarfile.FilterError(f"{member.name!r} is not a path inside the tree")
    if member.isdir():
        os.close(open_parent(root, names))
        return
    parent = open_parent(root, names[:-1])
    try:
        if member.issym():
            os.symlink(member.linkname, names[-1], dir_fd=parent)
        elif member.isreg():
            source = tar.extractfile(member)
            assert source is not None
            fd = os.open(names[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                         dir_fd=parent)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out)
                out.flush()
                os.fchmod(out.fileno(), (member.mode or 0o644) & 0o755)
                os.utime(out.fileno(), (member.mtime, member.mtime))
        # git archive makes nothing else (no hardlinks, devices or FIFOs): anything else is skipped.
    finally:
        os.close(parent)


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
