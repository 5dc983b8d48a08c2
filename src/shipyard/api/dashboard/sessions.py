"""Dashboard sign-in: a session per browser, after the platform token was typed once.

The cookie holds only a random session id (HttpOnly, SameSite=Strict, Secure under HTTPS); the token never
goes into a cookie or a URL. Sessions live in the platform's memory, so signing out ends one for good and a
platform restart asks everyone to sign in again. Every form carries the session's CSRF token, checked in
constant time, and a state-changing request must come from the dashboard's own origin.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

COOKIE = "shipyard_session"
LIFETIME = 12 * 3600.0  # seconds a session lasts after sign-in
IDLE_LIMIT = 2 * 3600.0  # seconds without a request after which it ends
MAX_SESSIONS = 1000  # oldest dropped first: a script signing in in a loop cannot fill the memory


@dataclass
class Session:
    id: str
    csrf: str
    created: float
    seen: float
    flashes: list[tuple[str, str]] = field(default_factory=list)  # (ok | error, text) shown on the next page

    def flash(self, kind: str, text: str) -> None:
        self.flashes.append((kind, text))

    def take_flashes(self) -> list[tuple[str, str]]:
        taken, self.flashes = self.flashes, []
        return taken


@dataclass
class Sessions:
    clock: Callable[[], float] = time.time
    _by_id: dict[str, Session] = field(default_factory=dict)

    def _now(self) -> float:
        return self.clock()

    def create(self) -> Session:
        now = self._now()
        session = Session(id=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32), created=now, seen=now)
        self._by_id[session.id] = session
        while len(self._by_id) > MAX_SESSIONS:
            del self._by_id[min(self._by_id.values(), key=lambda s: s.seen).id]
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of this cookie value, if any (an expired one is forgotten)."""
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        if session is None:
            return None
        now = self._now()
        if now - session.created > LIFETIME or now - session.seen > IDLE_LIMIT:
            del self._by_id[session_id]
            return None
        session.seen = now
        return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            self._by_id.pop(session_id, None)


def csrf_ok(session: Session, presented: str | None) -> bool:
    return presented is not None and hmac.compare_digest(presented.encode(), session.csrf.encode())


def same_origin(origin: str | None, referer: str | None, host: str | None) -> bool:
    """Whether a state-changing request comes from a page of this server (its Origin, else its Referer).

    Browsers send Origin with every POST; a request with neither header is not from a browser page of another
    site, and SameSite=Strict keeps the cookie from other sites' requests anyway."""
    source = origin if origin and origin != "null" else referer
    if source is None:
        return origin is None
    parts = urlsplit(source)
    return bool(host) and parts.netloc.lower() == (host or "").lower() and parts.scheme in ("http", "https")


def token_matches(presented: str, token: str) -> bool:
    return hmac.compare_digest(presented.strip().encode(), token.encode())
