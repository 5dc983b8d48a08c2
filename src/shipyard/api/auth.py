"""The platform's API token: made at first start, kept 0600, checked on every request."""

from __future__ import annotations

import base64
import hmac
import os
import secrets
from pathlib import Path

from shipyard.errors import Unauthorized


def load_or_create_token(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
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


def check_token(authorization: str | None, token: str) -> None:
    given = presented_token(authorization)
    if given is None:
        raise Unauthorized("Authentication required.",
                           hint="Pass the platform token (see `shipyard up`'s output), e.g. set SHIPYARD_TOKEN.")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthorized("The token is not valid for this Shipyard.",
                           hint="Use the token in the data directory's `token` file of the platform you talk to.")
