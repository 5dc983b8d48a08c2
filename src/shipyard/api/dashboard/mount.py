"""Where the dashboard joins the API's app: its routers, static files and error pages."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from shipyard.api.dashboard.actions import action_router
from shipyard.api.dashboard.pages import page_router
from shipyard.api.dashboard.site import HERE, PREFIX, Dashboard, FormRefused, SignInRequired
from shipyard.errors import ShipyardError


def is_dashboard(request: Request) -> bool:
    return request.url.path == PREFIX or request.url.path.startswith(PREFIX + "/")


def mount_dashboard(api: FastAPI, dashboard: Dashboard) -> None:
    api.include_router(page_router(dashboard))
    api.include_router(action_router(dashboard))
    api.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="dashboard-static")

    @api.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse(PREFIX, status_code=307)

    @api.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        if request.url.path.endswith("/stream"):
            return Response("Sign in first.", status_code=401)
        return dashboard.sign_in_redirect(exc.next_path)

    @api.exception_handler(FormRefused)
    async def _refused(request: Request, exc: FormRefused) -> HTMLResponse:
        return dashboard.render(request, "error.html", None, status_code=403, title="Refused", message=exc.reason,
                                hint="")


def dashboard_error(dashboard: Dashboard, request: Request, exc: ShipyardError) -> HTMLResponse:
    """A user error on a dashboard page (an app that does not exist, a damaged store…) as a page, not JSON."""
    return dashboard.render(request, "error.html", dashboard.session_of(request), status_code=exc.status_code,
                            title="Not found" if exc.status_code == 404 else "Something is wrong",
                            message=exc.message, hint=exc.hint or "")
