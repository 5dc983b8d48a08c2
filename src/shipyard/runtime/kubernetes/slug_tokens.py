"""The bearer token a release's pods fetch its slug with: an HMAC of the app and version under the platform's
slug secret, so the slug server keeps no token table, and a token opens one release's slug and nothing else.

Revoking every token at once is rotating the secret (the pods running keep their unpacked slug; only new
pods of older releases need their Secret rewritten).
"""

from __future__ import annotations

import hashlib
import hmac

from shipyard.errors import InvalidInput

MIN_SECRET = 16  # bytes; the platform makes 32 from os.urandom


def _message(app: str, version: int) -> bytes:
    # Domain-separated and unambiguous: NUL ends the app name (never in one), the version is decimal.
    return b"shipyard-slug\0" + app.encode() + b"\0" + str(version).encode()


def slug_token(secret: bytes, app: str, version: int) -> str:
    if len(secret) < MIN_SECRET:
        raise InvalidInput(f"The slug secret must be at least {MIN_SECRET} random bytes.")
    return hmac.new(secret, _message(app, version), hashlib.sha256).hexdigest()


def token_matches(secret: bytes, app: str, version: int, presented: str) -> bool:
    """In constant time, so a caller cannot learn a token byte by byte from how fast it is refused."""
    return hmac.compare_digest(slug_token(secret, app, version).encode(), presented.encode(errors="replace"))
