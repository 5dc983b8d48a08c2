"""The platform's API token: made at first start, kept 0600, checked on every request."""

from __future__ import annotations

import base64
import errno
import hmac
import os
import secrets
import stat
from pathlib import Path

from shipyard.errors import PlatformError, Unauthorized

MIN_TOKEN_LENGTH = 32


def load_or_create_token(path: Path) -> str:
    """The token in `path`, made on the first start; refuses a file anyone could guess or read."""
    try:
        # O_NOFOLLOW and fstat: the checks below are about the very file read, not what a link points to.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return _create_token(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PlatformError(f"The token file {path} is a symbolic link; Shipyard reads only a file of its own.",
                                hint=_new_token_hint(path)) from None
        raise PlatformError(f"Cannot read the token file {path}: {exc.strerror}.", hint=_new_token_hint(path)) from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        check_token_file(path, info)
        raw = f.read()
    return validate_token(path, raw)


def check_token_file(path: Path, info: os.stat_result) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise PlatformError(f"The token file {path} is not a regular file.", hint=_new_token_hint(path))
    if info.st_uid != os.geteuid():
        raise PlatformError(f"The token file {path} belongs to uid {info.st_uid}, not to the user running Shipyard "
                            f"(uid {os.geteuid()}).",
                            hint=f"Make it the platform's own: `chown {os.geteuid()} {path}`, or "
                                 f"{_new_token_hint(path, capital=False)}")
    # Refused rather than fixed: a token others could read may already have been copied, and only the
    # operator can tell whether it needs replacing.
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise PlatformError(f"The token file {path} can be read by other users (mode {mode:04o}); anyone who "
                            "reads it controls every app.",
                            hint=f"Make it private with `chmod 600 {path}` if nobody else could have read it; "
                                 f"otherwise {_new_token_hint(path, capital=False)}")


def validate_token(path: Path, raw: bytes) -> str:
    """The token's text: long enough that it can't be guessed, and plain enough for HTTP headers."""
    token = raw.decode("ascii", errors="replace").strip()
    if not token:
        raise PlatformError(f"The token file {path} is empty, so anyone could use the API with no token.",
                            hint=_new_token_hint(path))
    if not all("!" <= c <= "~" for c in token):
        raise PlatformError(f"The token in {path} has characters other than printable ASCII (spaces, "
                            "control characters or non-ASCII letters), which HTTP headers cannot carry.",
                            hint=_new_token_hint(path))
    if len(token) < MIN_TOKEN_LENGTH:
        raise PlatformError(f"The token in {path} has {len(token)} characters; Shipyard needs at least "
                            f"{MIN_TOKEN_LENGTH} so that it cannot be guessed.", hint=_new_token_hint(path))
    return token


def _new_token_hint(path: Path, capital: bool = True) -> str:
    text = (f"delete it (`rm {path}`) to have a new one made at the next start, or write at least "
            f"{MIN_TOKEN_LENGTH} random characters into it, e.g. "
            f"`python3 -c 'import secrets; print(secrets.token_urlsafe(32))' > {path}`. "
            "Clients that use the old token (SHIPYARD_TOKEN) then need the new one.")
    return text[0].upper() + text[1:] if capital else text


def _create_token(path: Path) -> str:
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


def presented_token(authorization: str | None) -> str | None:
    """The token from `Bearer <token>` (CLI) or Basic auth with the token as password (git)."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip()).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


def is_basic(authorization: str | None) -> bool:
    return authorization is not None and authorization.partition(" ")[0].lower() == "basic"


def check_token(authorization: str | None, token: str, allow_basic: bool = False) -> None:
    """Bearer everywhere; Basic (the token as password) only where git asks for it (`allow_basic`).

    Browsers remember Basic credentials and send them with any request to the same origin, other
    sites' pages' requests included; a Bearer header is only ever sent by code that holds the token.
    """
    if is_basic(authorization) and not allow_basic:
        raise Unauthorized("Basic authentication is accepted only for git (/git/); the API takes the token as "
                           "`Authorization: Bearer <token>`.",
                           hint="Send the platform token as a Bearer token, e.g. set SHIPYARD_TOKEN for the CLI.")
    given = presented_token(authorization)
    if given is None:
        raise Unauthorized("Authentication required.",
                           hint="Pass the platform token (see `shipyard up`'s output), e.g. set SHIPYARD_TOKEN.")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthorized("The token is not valid for this Shipyard.",
                           hint="Use the token in the data directory's `token` file of the platform you talk to.")
