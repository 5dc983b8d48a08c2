"""The dashboard's frame: templates, sessions, and the checks every page and form goes through."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from shipyard.api.dashboard.sessions import COOKIE, Session, Sessions, csrf_ok, same_origin
from shipyard.api.dashboard.views import ago
from shipyard.api.operations import Operations
from shipyard.control.databases import Databases
from shipyard.control.platform import Platform

HERE = Path(__file__).parent
PREFIX = "/dashboard"


class SignInRequired(Exception):
    """A page asked for without a live session: answered with the sign-in page (see `create_api`)."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


class FormRefused(Exception):
    """A state-changing request without a session, from another origin, or with a wrong CSRF token."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def safe_next(path: str | None) -> str:
    """Where to go after signing in: only a dashboard page of this server (never `//evil.example`)."""
    if path and path.startswith(PREFIX) and not path.startswith("//") and "\\" not in path:
        return path
    return PREFIX


def when(timestamp: float | datetime | None) -> str:
    if timestamp is None:
        return "–"
    moment = timestamp if isinstance(timestamp, datetime) else datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


class Dashboard:
    def __init__(self, platform: Platform, databases: Databases, operations: Operations, token: str,
                 sessions: Sessions | None = None) -> None:
        self.platform = platform
        self.databases = databases
        self.operations = operations
        self.token = token
        self.sessions = sessions or Sessions()
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.globals.update(when=when)

    def session_of(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def page_session(self, request: Request) -> Session:
        session = self.session_of(request)
        if session is None:
            raise SignInRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        return session

    async def form_session(self, request: Request) -> tuple[Session, FormData]:
        """The session of a form's POST, once its origin and CSRF token are checked."""
        session = self.session_of(request)
        if session is None:
            raise FormRefused("You are not signed in (or your session ended): sign in again.")
        if not same_origin(request.headers.get("origin"), request.headers.get("referer"), request.headers.get("host")):
            raise FormRefused("This form was sent from another site.")
        form = await request.form()
        presented = form.get("csrf")
        if not csrf_ok(session, presented if isinstance(presented, str) else None):
            raise FormRefused("The form's security token is missing or wrong: reload the page and try again.")
        return session, form

    def render(self, request: Request, template: str, session: Session | None, status_code: int = 200,
               **context: object) -> HTMLResponse:
        now = datetime.now(timezone.utc)
        response = self.templates.TemplateResponse(
            request, template, {"session": session, "flashes": session.take_flashes() if session else [],
                                "ago": lambda moment: ago(_aware(moment), now), **context},
            status_code=status_code)
        response.headers["Cache-Control"] = "no-store"
        security_headers(response)  # on the pages only: a middleware would wrap every git and API stream too
        return response

    def sign_in_redirect(self, next_path: str) -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/sign-in?next={quote(safe_next(next_path))}", status_code=303)

    def set_cookie(self, request: Request, response: RedirectResponse, session: Session) -> None:
        response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https")


def _aware(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


def security_headers(response: HTMLResponse) -> None:
    """No framing (clickjacking), scripts and styles from this server only, no sniffing."""
    response.headers["Content-Security-Policy"] = ("default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                                   "script-src 'self'; frame-ancestors 'none'; form-action 'self'")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
