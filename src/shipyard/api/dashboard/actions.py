"""The dashboard's forms (POST): each checked (session, origin, CSRF), done through `Operations` as the API
does it, then answered with a redirect to the page that shows the result (and a message saying it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import FormData

from shipyard.api.dashboard.sessions import COOKIE, csrf_ok, same_origin, token_matches
from shipyard.api.dashboard.site import PREFIX, Dashboard, safe_next
from shipyard.api.operations import quiet
from shipyard.api.schemas import AppUpdate
from shipyard.errors import InvalidInput, ShipyardError

Action = Callable[[FormData], Awaitable[str]]  # does the change; returns the message to show


def text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value.strip() if isinstance(value, str) else ""


def action_router(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    ops = dashboard.operations

    async def perform(request: Request, back: str, action: Action, done: str | None = None) -> RedirectResponse:
        """Run a form's action: its message (or the error and how to fix it) shown on the next page."""
        session, form = await dashboard.form_session(request)
        try:
            session.flash("ok", await action(form))
            return RedirectResponse(done or back, status_code=303)
        except ShipyardError as exc:
            session.flash("error", exc.message + (f"\n{exc.hint}" if exc.hint else ""))
            return RedirectResponse(back, status_code=303)

    @router.post("/sign-in")
    async def sign_in(request: Request) -> HTMLResponse:
        if not same_origin(request.headers.get("origin"), request.headers.get("referer"), request.headers.get("host")):
            return dashboard.render(request, "sign_in.html", None, status_code=403, next=PREFIX,
                                    error="This sign-in form was sent from another site.")
        form = await request.form()
        next_path = safe_next(text(form, "next"))
        if not token_matches(text(form, "token"), dashboard.token):
            return dashboard.render(request, "sign_in.html", None, status_code=401, next=next_path,
                                    error="That is not this platform's token.")
        dashboard.sessions.end(request.cookies.get(COOKIE))  # a new id at sign-in: no session fixation
        session = dashboard.sessions.create()
        response = RedirectResponse(next_path, status_code=303)
        dashboard.set_cookie(request, response, session)
        return response

    @router.post("/sign-out")
    async def sign_out(request: Request) -> RedirectResponse:
        session = dashboard.session_of(request)
        form = await request.form()
        csrf = form.get("csrf")
        if session is not None and csrf_ok(session, csrf if isinstance(csrf, str) else None):
            dashboard.sessions.end(session.id)
        response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @router.post("/new")
    async def create_app(request: Request) -> RedirectResponse:
        created: list[str] = []

        async def create(form: FormData) -> str:
            app = ops.create_app(text(form, "name"))
            created.append(app.name)
            if text(form, "database") == "yes":
                try:
                    await dashboard.databases.create(app.name, quiet)
                except ShipyardError as exc:
                    return f"Created {app.name}, without a database: {exc.message} {exc.hint or ''}".strip()
                return f"Created {app.name} with a PostgreSQL database (DATABASE_URL is set)."
            return f"Created {app.name}."

        response = await perform(request, f"{PREFIX}/new", create)
        if created:
            response.headers["location"] = f"{PREFIX}/apps/{created[0]}"
        return response

    @router.post("/apps/{name}/config")
    async def set_config(request: Request, name: str) -> RedirectResponse:
        async def change(form: FormData) -> str:
            key, value = text(form, "key"), form.get("value")
            release = await ops.update_config(name, {key: value if isinstance(value, str) else ""}, [])
            return f"Set {key}" + (f": release v{release.version} is live." if release else " (used by the first deploy).")
        return await perform(request, f"{PREFIX}/apps/{name}/settings", change)

    @router.post("/apps/{name}/config/unset")
    async def unset_config(request: Request, name: str) -> RedirectResponse:
        async def change(form: FormData) -> str:
            key = text(form, "key")
            release = await ops.update_config(name, {}, [key])
            return f"Removed {key}" + (f": release v{release.version} is live." if release else ".")
        return await perform(request, f"{PREFIX}/apps/{name}/settings", change)

    @router.post("/apps/{name}/scale")
    async def scale(request: Request, name: str) -> RedirectResponse:
        async def change(form: FormData) -> str:
            counts: dict[str, int] = {}
            for key, value in form.items():
                if key == "csrf" or not isinstance(value, str):
                    continue
                if not value.strip().isdigit():
                    raise InvalidInput(f"{key}={value!r}: a scale is a whole number between 0 and 20.")
                counts[key] = int(value)
            formation = await ops.scale(name, counts)
            return "Scaled: " + ", ".join(f"{t}={n}" for t, n in formation.items()) + "."
        return await perform(request, f"{PREFIX}/apps/{name}/settings", change)

    @router.post("/apps/{name}/autoscale")
    async def autoscale(request: Request, name: str) -> RedirectResponse:
        async def change(form: FormData) -> str:
            try:
                low, high, target = int(text(form, "min")), int(text(form, "max")), float(text(form, "concurrency"))
            except ValueError:
                raise InvalidInput("Min and max are whole numbers of instances, and requests in flight a number.") from None
            bounds = await ops.autoscale(name, "web", low, high, target)
            return f"web now scales between {bounds.min} and {bounds.max} instances."
        return await perform(request, f"{PREFIX}/apps/{name}/settings", change)

    @router.post("/apps/{name}/autoscale/off")
    async def stop_autoscaling(request: Request, name: str) -> RedirectResponse:
        async def change(form: FormData) -> str:
            await ops.stop_autoscaling(name, "web")
            return "web is no longer autoscaled: it keeps its current count."
        return await perform(request, f"{PREFIX}/apps/{name}/settings", change)

    @router.post("/apps/{name}/settings")
    async def update_settings(request: Request, name: str) -> RedirectResponse:
        async def change(form: FormData) -> str:
            timeout = text(form, "boot_timeout")
            if timeout and not timeout.isdigit():
                raise InvalidInput(f"Boot timeout {timeout!r}: a number of seconds between 1 and 3600.")
            try:
                body = AppUpdate(branch=text(form, "branch") or None, health_path=text(form, "health_path"),
                                 boot_timeout=int(timeout) if timeout else None, size=text(form, "size") or None)
            except ValueError as exc:
                raise InvalidInput(f"These settings are not valid: {exc}".splitlines()[0],
                                   hint="A health path starts with /; a boot timeout is 1 to 3600 seconds.") from None
            await ops.update_app(name, body)
            return "Settings saved (the health path and boot timeout apply from the next deploy)."
        return await perform(request, f"{PREFIX}/apps/{name}/settings", change)

    @router.post("/apps/{name}/domains")
    async def add_domain(request: Request, name: str) -> RedirectResponse:
        async def change(form: FormData) -> str:
            domain = ops.add_domain(name, text(form, "hostname"))
            return f"Added {domain.hostname}: its certificate is on its way."
        return await perform(request, f"{PREFIX}/apps/{name}/settings", change)

    @router.post("/apps/{name}/domains/remove")
    async def remove_domain(request: Request, name: str) -> RedirectResponse:
        async def change(form: FormData) -> str:
            ops.remove_domain(name, text(form, "hostname"))
            return f"Removed {text(form, 'hostname')}."
        return await perform(request, f"{PREFIX}/apps/{name}/settings", change)

    @router.post("/apps/{name}/database")
    async def add_database(request: Request, name: str) -> RedirectResponse:
        async def change(form: FormData) -> str:
            release = await dashboard.databases.create(name, quiet)
            return "Database created: DATABASE_URL is set" + (f", release v{release.version} is live." if release else ".")
        return await perform(request, f"{PREFIX}/apps/{name}/settings", change)

    @router.post("/apps/{name}/backups")
    async def backup(request: Request, name: str) -> RedirectResponse:
        async def change(form: FormData) -> str:
            made = await dashboard.databases.backup(name)
            return f"Backup {made.id} made."
        return await perform(request, f"{PREFIX}/apps/{name}/settings", change)

    @router.post("/apps/{name}/restore")
    async def restore(request: Request, name: str) -> RedirectResponse:
        async def change(form: FormData) -> str:
            await ops.restore_backup(name, text(form, "backup"), text(form, "confirm"))
            return f"Restored the database from {text(form, 'backup')}."
        return await perform(request, f"{PREFIX}/apps/{name}/settings", change)

    @router.post("/apps/{name}/rollback")
    async def rollback(request: Request, name: str) -> RedirectResponse:
        async def change(form: FormData) -> str:
            version = text(form, "version")
            if not version.isdigit():
                raise InvalidInput(f"{version!r} is not a release number.")
            release, target = await ops.rollback(name, int(version))
            return f"Rolled back to v{target}: release v{release.version} is live."
        return await perform(request, f"{PREFIX}/apps/{name}/deploys", change)

    @router.post("/apps/{name}/destroy")
    async def destroy(request: Request, name: str) -> RedirectResponse:
        async def change(form: FormData) -> str:
            backup = await ops.destroy_app(name, text(form, "confirm"))
            return f"Destroyed {name}" + (f"; its database's final backup is {backup.id}." if backup else ".")
        return await perform(request, f"{PREFIX}/apps/{name}/destroy", change, done=PREFIX)

    return router
