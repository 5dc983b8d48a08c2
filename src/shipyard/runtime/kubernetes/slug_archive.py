"""A release's slug as the tarball its pods download: `app/` and `venv/`, moved from the host into the pod.

A slug's venv is built where it lies on the host (`slugs/<app>/venvs/<hash>`, or the slug's own `venv`): its
interpreter links, pyvenv.cfg, console scripts' shebangs and an editable install's `.pth` name host paths. In a
pod the slug lies at `slug_root` (/slug) and the interpreter is the runner image's, so those few files are
rewritten on their way into the archive; every other byte is archived as it is.

The interpreter: `/usr/local/bin/python3.<minor>` by default, with the minor of the venv (its pyvenv.cfg):
every `python:3.X` image has it there, and a venv's compiled extensions only load in the minor they were
built for. A `python` given explicitly that names another minor is refused rather than packed into a pod
that cannot start.

The slug's files are the tenant's and the packer runs as root: the walk is fd-based and never follows a
link (links are archived as links, never read through), only regular files, directories and links are
archived (fifos, sockets, devices are skipped), and members carry no owner (0/0), no set-id bits and no
group/other write. Members come in sorted order with their own mtimes (a .pyc checks its source's), and the
gzip header has no name or time, so the same slug always packs to the same bytes and the same SHA-256.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import os
import re
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from shipyard.errors import DeployError, InvalidInput

IMAGE_BIN = "/usr/local/bin"  # where python:3.X images have their interpreter
MAX_DEPTH = 128  # each level holds a directory fd open; real venvs stay under 20
HEAD = 8192  # a shebang, and the exec line of uv's /bin/sh trampoline for long paths, end within this
SMALL = 1 << 20  # pyvenv.cfg and .pth files are rewritten whole; a larger .pth is archived as it is
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a fifo swapped in after the lstat must not hang the packer (fstat then skips it).
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# Paths written into shebangs and an sh `exec` line: nothing a shell or the kernel would split or expand.
SAFE_PATH = re.compile(r"(/[A-Za-z0-9._+-]+)+")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
SHEBANG = re.compile(rb"#![ \t]*([^ \t\r\n]+)")
TRAMPOLINE = re.compile(rb"'''exec' '([^']*)'(.*)")  # uv's and pip's second line when the shebang is too long


@dataclass(frozen=True)
class SlugArchive:
    path: Path
    sha256: str  # hex, as SLUG_SHA256 wants it
    size: int


@dataclass(frozen=True)
class _Relocation:
    """Host paths as the venv's files name them (longest first), and what they name in the pod."""

    venv_paths: tuple[bytes, ...]
    app_paths: tuple[bytes, ...]
    slug_root: bytes
    python: str
    minor: int


def pack_slug(slug_dir: Path, out: Path, *, slug_root: str = "/slug", python: str | None = None) -> SlugArchive:
    """Write `out`, a tar.gz of the slug's `app/` and `venv/` relocated to `slug_root` and `python` (None: the
    image's `/usr/local/bin/python3.<minor>` for the venv's minor). `out` is removed if packing fails."""
    _check_path(slug_root, "The slug root")
    digest = hashlib.sha256()
    try:
        with _opened(slug_dir) as (app_fd, venv_fd, venv_paths, app_paths), open(out, "wb") as raw:
            minor = venv_minor(_read_cfg(venv_fd))
            relocation = _Relocation(venv_paths, app_paths, slug_root.encode(), runner_python(minor, python), minor)
            sink = _Hashing(raw, digest)
            gzipped = gzip.GzipFile(filename="", mode="wb", fileobj=sink, compresslevel=6, mtime=0)  # type: ignore
            with gzipped as gz, tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                packer = _Packer(tar, relocation)
                packer.dir(app_fd, "app", 1)
                packer.dir(venv_fd, "venv", 1)
            raw.flush()
            os.fsync(raw.fileno())
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return SlugArchive(out, digest.hexdigest(), sink.size)


def slug_python(slug_dir: Path) -> str:
    """The Python the slug's venv was built with ("3.12"): the runner image it needs (python:3.12-slim)."""
    with _opened(slug_dir) as (_, venv_fd, _, _):
        return f"3.{venv_minor(_read_cfg(venv_fd))}"


def venv_minor(cfg: bytes) -> int:
    """The venv's Python 3 minor version, from pyvenv.cfg: `version_info` (uv, virtualenv) or `version` (venv)."""
    values: dict[str, str] = {}
    for line in cfg.decode(errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key.strip().lower(), value.strip())
    found = re.match(r"3\.(\d+)(\.|$)", values.get("version_info") or values.get("version") or "")
    if not found:
        raise DeployError("The slug's virtualenv does not say which Python 3 it was built with (pyvenv.cfg).",
                          hint="Deploy again: the build makes a new virtualenv.")
    return int(found[1])


def runner_python(minor: int, python: str | None) -> str:
    """The pod's interpreter for a venv of Python 3.<minor>; refuses one that names another minor."""
    if python is None:
        return f"{IMAGE_BIN}/python3.{minor}"
    _check_path(python, "The runner image's Python")
    named = re.fullmatch(r"python3\.(\d+)", python.rsplit("/", 1)[1])
    if named and int(named[1]) != minor:
        raise DeployError(f"The slug's virtualenv was built for Python 3.{minor}, not for {python}.",
                          hint=f"Run it on a python:3.{minor} runner image, or pin the Python you want "
                               "(.python-version) and deploy again.")
    return python


def archive_for(slug_dir: Path, cache_dir: Path, *, slug_root: str = "/slug",
                python: str | None = None) -> SlugArchive:
    """The slug's archive, packed once and kept as `<cache_dir>/<app>/<slug>.<variant>.tar.gz` (the variant
    keys slug_root and python), with its digest and size beside it. Packed to a temporary file then renamed:
    a crash never leaves a partial archive under the final name. Callers in one process share one packing."""
    app, slug = slug_dir.parent.name, slug_dir.name
    if not (NAME.fullmatch(app) and NAME.fullmatch(slug)):
        raise InvalidInput(f"{slug_dir} is not a slug folder (slugs/<app>/<slug>).")
    variant = hashlib.sha256(f"{slug_root}\0{python or ''}".encode()).hexdigest()[:8]
    folder = cache_dir / app
    path = folder / f"{slug}.{variant}.tar.gz"
    with _lock(path):
        if (cached := _cached(path)) is not None:
            return cached
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # archives hold the app's code: root's alone
        fd, tmp = tempfile.mkstemp(prefix=f".{slug}.", suffix=".part", dir=folder)
        os.close(fd)
        digest_tmp = Path(f"{tmp}.sha256")
        try:
            made = pack_slug(slug_dir, Path(tmp), slug_root=slug_root, python=python)
            digest_tmp.write_text(f"{made.sha256} {made.size}\n")
            os.replace(digest_tmp, _digest_file(path))  # the digest first: an archive is never without its own
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
            digest_tmp.unlink(missing_ok=True)
        return SlugArchive(path, made.sha256, made.size)


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    """One packing of an archive at a time, across threads and processes: an flock on a file beside it (each
    open() is a lock holder of its own, so two threads exclude each other too)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        yield


def _digest_file(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _cached(path: Path) -> SlugArchive | None:
    """The archive at `path` if one was finished there, with the digest kept beside it (so the archive is
    not read again for it). Anything amiss: None, and the slug is packed again, to the same bytes."""
    try:
        sha256, size = _digest_file(path).read_text().split()
        if int(size) == path.stat().st_size and re.fullmatch(r"[0-9a-f]{64}", sha256):
            return SlugArchive(path, sha256, int(size))
    except (OSError, ValueError):
        pass
    return None


def _check_path(path: str, what: str) -> None:
    if not SAFE_PATH.fullmatch(path) or "/../" in f"{path}/" or "/./" in f"{path}/":
        raise InvalidInput(f"{what} '{path}' is not a plain absolute path.",
                           hint="Use letters, digits and . _ + - between slashes, without . or .. parts.")


def _longest_first(*paths: str) -> tuple[bytes, ...]:
    return tuple(sorted({os.fsencode(p) for p in paths}, key=len, reverse=True))


@contextmanager
def _opened(slug_dir: Path) -> Iterator[tuple[int, int, tuple[bytes, ...], tuple[bytes, ...]]]:
    """The slug's `app` and `venv` directories opened without following a link the tenant could have made,
    and the host paths naming each. `venv` may be a link (a venv reused from an earlier build), but only to
    the app's own venvs folder."""
    base = os.path.abspath(slug_dir)
    real = os.path.realpath(base)
    with ExitStack() as stack:
        try:
            slug_fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the platform's path
            stack.callback(os.close, slug_fd)
            app_fd = os.open("app", DIR_FLAGS, dir_fd=slug_fd)
            stack.callback(os.close, app_fd)
            venv_st = os.stat("venv", dir_fd=slug_fd, follow_symlinks=False)
        except OSError as exc:
            raise DeployError(f"The slug at {slug_dir} has no app and venv folders to pack ({exc.strerror}).",
                              hint="Deploy again: the build makes a new slug.") from exc
        venv_paths = [os.path.join(base, "venv"), os.path.join(real, "venv")]
        try:
            if stat.S_ISLNK(venv_st.st_mode):
                target = os.readlink("venv", dir_fd=slug_fd)
                resolved = os.path.realpath(os.path.join(base, target))
                if os.path.dirname(resolved) != os.path.realpath(os.path.join(os.path.dirname(base), "venvs")):
                    raise DeployError(f"The slug at {slug_dir} links its venv outside the app's virtualenvs.",
                                      hint="Deploy again: the build makes a new slug.")
                venv_paths += [os.path.normpath(os.path.join(base, target)), resolved]
                venv_fd = os.open(resolved, DIR_FLAGS)  # a realpath: no link left in it, none followed at its end
            else:
                venv_fd = os.open("venv", DIR_FLAGS, dir_fd=slug_fd)  # anything but a directory fails
        except OSError as exc:
            raise DeployError(f"The slug at {slug_dir} has no venv to pack ({exc.strerror}).",
                              hint="Deploy again: the build makes a new one.") from exc
        stack.callback(os.close, venv_fd)
        yield app_fd, venv_fd, _longest_first(*venv_paths), _longest_first(base + "/app", real + "/app")


def _read_cfg(venv_fd: int) -> bytes:
    try:
        fd = os.open("pyvenv.cfg", FILE_FLAGS, dir_fd=venv_fd)
    except OSError as exc:
        raise DeployError(f"The slug's venv has no pyvenv.cfg ({exc.strerror}).", hint="Deploy again.") from exc
    try:
        data = _read_up_to(fd, SMALL + 1) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    finally:
        os.close(fd)
    if not data or len(data) > SMALL:
        raise DeployError("The slug's venv/pyvenv.cfg is not a virtualenv's.", hint="Deploy again.")
    return data


def _read_up_to(fd: int, limit: int) -> bytes:
    data = bytearray()
    while len(data) < limit and (chunk := os.read(fd, limit - len(data))):
        data += chunk
    return bytes(data)


def _relocate(path: bytes, hosts: tuple[bytes, ...], to: bytes) -> bytes | None:
    for host in hosts:
        if path == host or path.startswith(host + b"/"):
            return to + path[len(host):]
    return None


def relocate_shebang(head: bytes, venv_paths: tuple[bytes, ...], venv_root: bytes) -> bytes:
    """`head` (a script's first bytes) with the interpreter its shebang names moved from the host venv to
    `venv_root`: `#!<venv>/bin/python`, or uv's `#!/bin/sh` trampoline for paths too long for a shebang
    (`'''exec' '<venv>/bin/python' "$0" "$@"`). Anything else, and every other byte, is kept."""
    found = SHEBANG.match(head)
    if not found:
        return head
    if (new := _relocate(found[1], venv_paths, venv_root)) is not None:
        return head[:found.start(1)] + new + head[found.end(1):]
    lines = head.split(b"\n", 2)
    if lines[0] == b"#!/bin/sh" and len(lines) == 3 and (exec_line := TRAMPOLINE.fullmatch(lines[1])):
        if (new := _relocate(exec_line[1], venv_paths, venv_root)) is not None:
            lines[1] = lines[1][:exec_line.start(1)] + new + lines[1][exec_line.end(1):]
            return b"\n".join(lines)
    return head


def relocate_pth(data: bytes, relocation: _Relocation) -> bytes:
    """A .pth file with its path lines moved from the host to the pod: `uv sync` installs a packaged project
    editable, as a line naming the host's `app/` (or `app/src`). `import` lines and comments are kept."""
    out = []
    for line in data.split(b"\n"):
        body = line.rstrip(b"\r")
        new = None
        if not body.startswith((b"import ", b"import\t", b"#")):
            new = _relocate(body, relocation.app_paths, relocation.slug_root + b"/app")
            if new is None:
                new = _relocate(body, relocation.venv_paths, relocation.slug_root + b"/venv")
        out.append(line if new is None else new + line[len(body):])
    return b"\n".join(out)


def relocate_cfg(data: bytes, python: str) -> bytes:
    """pyvenv.cfg naming the image's interpreter: `home` is what Python reads to find its standard library."""
    bin_dir = os.path.dirname(python)
    values = {b"home": bin_dir, b"executable": python, b"base-executable": python,
              b"base-prefix": os.path.dirname(bin_dir), b"base-exec-prefix": os.path.dirname(bin_dir)}
    out = []
    for line in data.split(b"\n"):
        key, sep, _ = line.partition(b"=")
        value = values.get(key.strip().lower()) if sep else None
        out.append(line if value is None else key.strip() + b" = " + value.encode() + line[len(line.rstrip(b"\r")):])
    return b"\n".join(out)


class _Hashing:
    """The archive's bytes on their way to disk: hashed and counted as they are written."""

    def __init__(self, raw: BinaryIO, digest: hashlib._Hash) -> None:
        self.raw, self.digest, self.size = raw, digest, 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


class _Body:
    """A member's content: the (possibly rewritten) head, then the rest of the file read from its fd."""

    def __init__(self, head: bytes, fd: int, left: int) -> None:
        self.head, self.fd, self.left = head, fd, left

    def read(self, size: int = -1) -> bytes:
        want = self.left + len(self.head) if size < 0 else size
        out = bytearray(self.head[:want])
        self.head = self.head[want:]
        while len(out) < want and self.left > 0:
            chunk = os.read(self.fd, min(want - len(out), self.left, 1 << 20))
            if not chunk:
                raise DeployError("A file of the slug changed while it was being packed.", hint="Deploy again.")
            out += chunk
            self.left -= len(chunk)
        return bytes(out)


def _info(name: str, kind: bytes, mode: int, mtime: float, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime, info.size, info.linkname = kind, mode, max(0, int(mtime)), size, linkname
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


class _Packer:
    def __init__(self, tar: tarfile.TarFile, relocation: _Relocation) -> None:
        self.tar, self.relocation = tar, relocation

    def dir(self, fd: int, name: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise DeployError(f"The slug's {name} is nested deeper than {MAX_DEPTH} folders.",
                              hint="Flatten it, or leave it out of the repository.")
        st = os.fstat(fd)
        # u+rwx: the fetch must be able to extract into it, again if the pod's init container restarts.
        self.tar.addfile(_info(name, tarfile.DIRTYPE, (stat.S_IMODE(st.st_mode) & 0o755) | 0o700, st.st_mtime))
        links = ("python", "python3", f"python3.{self.relocation.minor}") if name == "venv/bin" else ()
        for entry in sorted(set(os.listdir(fd)) | set(links)):
            member = f"{name}/{entry}"
            if entry in links:  # whatever the venv had there is replaced, never read
                self.tar.addfile(_info(member, tarfile.SYMTYPE, 0o777, st.st_mtime, linkname=self.relocation.python))
                continue
            try:
                entry_st = os.stat(entry, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(entry_st.st_mode):
                self.tar.addfile(_info(member, tarfile.SYMTYPE, 0o777, entry_st.st_mtime,
                                       linkname=os.readlink(entry, dir_fd=fd)))
            elif stat.S_ISDIR(entry_st.st_mode):
                try:
                    child = os.open(entry, DIR_FLAGS, dir_fd=fd)
                except OSError:  # swapped for a link since the lstat: not followed
                    continue
                try:
                    self.dir(child, member, depth + 1)
                finally:
                    os.close(child)
            elif stat.S_ISREG(entry_st.st_mode):
                self._file(fd, entry, member)

    def _file(self, dir_fd: int, entry: str, member: str) -> None:
        try:
            fd = os.open(entry, FILE_FLAGS, dir_fd=dir_fd)
        except OSError:  # gone, or swapped for a link since the lstat
            return
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return
            head, consumed = self._head(fd, member)
            left = st.st_size - consumed
            if left < 0:
                raise DeployError(f"The slug's {member} changed while it was being packed.", hint="Deploy again.")
            info = _info(member, tarfile.REGTYPE, stat.S_IMODE(st.st_mode) & 0o755, st.st_mtime,
                         size=len(head) + left)
            self.tar.addfile(info, _Body(head, fd, left))  # type: ignore[arg-type]
        finally:
            os.close(fd)

    def _head(self, fd: int, member: str) -> tuple[bytes, int]:
        """The file's first bytes as archived, and how many bytes of the file they stand for."""
        relocation = self.relocation
        parent, _, name = member.rpartition("/")
        if member == "venv/pyvenv.cfg":
            data = _read_up_to(fd, SMALL)
            return relocate_cfg(data, relocation.python), len(data)
        if parent == "venv/bin":
            head = _read_up_to(fd, HEAD)
            return relocate_shebang(head, relocation.venv_paths, relocation.slug_root + b"/venv"), len(head)
        if member.startswith("venv/") and parent.endswith("/site-packages") and name.endswith(".pth"):
            data = _read_up_to(fd, SMALL)
            return (relocate_pth(data, relocation) if len(data) < SMALL else data), len(data)
        return b"", 0
