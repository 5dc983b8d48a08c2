"""The dashboard's pages (GET): apps, an app's overview, deploys, logs, metrics and settings."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from markupsafe import Markup

from shipyard.api.dashboard import charts
from shipyard.api.dashboard.site import PREFIX, Dashboard, safe_next
from shipyard.api.dashboard.views import AppRow, app_state_label, deploy_view
from shipyard.control.metrics_series import AppSeries
from shipyard.control.releases import formation_of
from shipyard.errors import ShipyardError
from shipyard.runtime.limits import SIZES
from shipyard.runtime.logs import follow as follow_log
from shipyard.store import records
from shipyard.store.summaries import LatestActivity

LOG_LINES = 300
LOG_SOURCES = ("web", "worker", "router", "release", "run", "shipyard")
WINDOWS = ("hour", "day", "week")


def page_router(dashboard: Dashboard) -> APIRouter:
    router = APIRouter(prefix=PREFIX, include_in_schema=False)
    platform = dashboard.platform
    store = platform.store

    def state_of(app: records.App, last_status: str | None, formation: dict[str, int]) -> str:
        return app_state_label(platform_state=platform.app_state(app), deploying=platform.deploying(app.name),
                               damaged=bool(app.damage), last_deploy_status=last_status, formation=formation)

    def app_context(app: records.App, tab: str, deploys: list[dict[str, object]] | None = None) -> dict[str, object]:
        """What every tab of an app's page shows; `deploys`: its newest deploys if the page read them already."""
        latest = deploys if deploys is not None else store.list_deploys(app.name, 1)
        formation = {} if app.damage else formation_of(store, app)
        return {"app": app, "tab": tab, "url": platform.settings.app_url(app.name, https=bool(app.redirect_https)),
                "state": state_of(app, str(latest[0]["status"]) if latest else None, formation),
                "formation": formation}

    @router.get("/sign-in")
    async def sign_in_page(request: Request, next: str = PREFIX) -> HTMLResponse:
        return dashboard.render(request, "sign_in.html", None, next=safe_next(next))

    @router.get("")
    async def apps_page(request: Request) -> HTMLResponse:
        session = dashboard.page_session(request)

        def read() -> tuple[list[records.App], dict[str, str], dict[str, LatestActivity], dict[str, list[int]]]:
            apps = store.list_apps()
            names = [a.name for a in apps]
            return (apps, store.live_manifests(), store.latest_activity(),
                    platform.metrics_history.requests_per_minute(names, time.time()))

        # Off the event loop: with a hundred apps this is tens of milliseconds of store reads, during which git
        # pushes, API calls and the edge's request log would otherwise wait.
        apps, manifests, activity, per_minute = await asyncio.to_thread(read)
        rows = []
        for app in apps:
            latest = activity.get(app.name)
            rows.append(AppRow(
                name=app.name, url=platform.settings.app_url(app.name, https=bool(app.redirect_https)),
                release=app.current_release,
                state=state_of(app, latest.deploy_status if latest else None,
                               {} if app.damage else formation_of(store, app, manifests.get(app.name))),
                instances=len(platform.supervisor.instances(app.name)),
                last_deploy=latest.release_description if latest else "",
                last_deploy_at=latest.deploy_started_at if latest else None,
                last_deploy_status=latest.deploy_status if latest else None,
                requests=per_minute.get(app.name, [])))
        sparklines = {row.name: Markup(charts.sparkline(row.requests, label=f"{row.name}: {sum(row.requests)} requests in "
                                                 "the last hour")) for row in rows}
        return dashboard.render(request, "apps.html", session, rows=rows, sparklines=sparklines, section="apps")

    @router.get("/new")
    async def new_app_page(request: Request) -> HTMLResponse:
        session = dashboard.page_session(request)
        return dashboard.render(request, "new_app.html", session, section="new", name="", database=False)

    @router.get("/apps/{name}")
    async def overview_page(request: Request, name: str) -> HTMLResponse:
        session = dashboard.page_session(request)
        app = store.get_app(name)
        latest = store.list_deploys(name, 1)
        return dashboard.render(
            request, "app_overview.html", session, **app_context(app, "overview", latest),
            latest=deploy_view(latest[0], name) if latest else None, instances=platform.supervisor.instances(name),
            git_url=f"{platform.settings.api_url}/git/{name}.git")

    @router.get("/apps/{name}/deploys")
    async def deploys_page(request: Request, name: str) -> HTMLResponse:
        session = dashboard.page_session(request)
        app = store.get_app(name)
        releases = store.list_releases(name)
        deploys = store.list_deploys(name, 20)
        return dashboard.render(
            request, "app_deploys.html", session, **app_context(app, "deploys", deploys), releases=releases,
            kept={r.version for r in releases if Path(r.build.slug_path).is_dir()},  # only those can be rolled back to
            deploys=[deploy_view(d, name) for d in deploys])

    @router.get("/apps/{name}/logs")
    async def logs_page(request: Request, name: str) -> HTMLResponse:
        session = dashboard.page_session(request)
        app = store.get_app(name)
        lines = platform.supervisor.app_log(name).tail(LOG_LINES)
        return dashboard.render(request, "app_logs.html", session, **app_context(app, "logs"), lines=lines,
                                sources=LOG_SOURCES)

    @router.get("/apps/{name}/logs/stream")
    async def log_stream(request: Request, name: str) -> StreamingResponse:
        dashboard.page_session(request)
        store.require_app(name)
        path = platform.supervisor.app_log(name).path

        async def events() -> AsyncIterator[str]:
            yield "retry: 2000\n\n"
            async for line in follow_log(path, 0):
                # One event per line: a carriage return would end the `data:` field early.
                text = line.rstrip("\n").replace("\r", "\\r")
                yield f"data: {text}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @router.get("/apps/{name}/metrics")
    async def metrics_page(request: Request, name: str, window: str = "hour") -> HTMLResponse:
        session = dashboard.page_session(request)
        app = store.get_app(name)
        window = window if window in WINDOWS else "hour"
        series = await asyncio.to_thread(platform.metrics_history.app_series, name, window)
        return dashboard.render(request, "app_metrics.html", session, **app_context(app, "metrics"), window=window,
                                charts=metric_charts(series, window), totals=totals_text(series, window))

    @router.get("/apps/{name}/settings")
    async def settings_page(request: Request, name: str, reveal: str = "", edit: str = "") -> HTMLResponse:
        session = dashboard.page_session(request)
        app = store.get_app(name)
        config = store.get_config(name)
        try:
            database = dashboard.databases.credentials(name)
            backups = dashboard.databases.backups(name)
        except ShipyardError:
            database, backups = None, []
        return dashboard.render(
            request, "app_settings.html", session, **app_context(app, "settings"), config=config,
            reveal=reveal == "all", edit_key=edit if edit in config else "", edit_value=config.get(edit, ""),
            sizes=list(SIZES),
            domains=store.list_domains(name), database=database, backups=backups,
            database_unavailable=dashboard.databases.unavailable if not dashboard.databases.available else None)

    @router.get("/apps/{name}/rollback")
    async def rollback_page(request: Request, name: str, version: int) -> HTMLResponse:
        session = dashboard.page_session(request)
        app = store.get_app(name)
        release = store.get_release(name, version)
        return dashboard.render(
            request, "confirm.html", session, **app_context(app, "deploys"),
            question=f"Roll {name} back to v{version}?",
            detail=f"v{version} ({release.description}) runs again with its code and config vars, as a new release; "
                   "its release command runs first, if it has one.",
            action=f"{PREFIX}/apps/{name}/rollback", fields={"version": version}, button=f"Roll back to v{version}",
            back=f"{PREFIX}/apps/{name}/deploys", type_name=False, danger=False)

    @router.get("/apps/{name}/restore")
    async def restore_page(request: Request, name: str, backup: str) -> HTMLResponse:
        session = dashboard.page_session(request)
        app = store.get_app(name)
        return dashboard.render(
            request, "confirm.html", session, **app_context(app, "settings"),
            question=f"Restore {name}'s database from {backup}?",
            detail="The database's data is replaced by the backup's; what was written since is lost.",
            action=f"{PREFIX}/apps/{name}/restore", fields={"backup": backup}, button="Restore",
            back=f"{PREFIX}/apps/{name}/settings", type_name=True, danger=True)

    @router.get("/apps/{name}/destroy")
    async def destroy_page(request: Request, name: str) -> HTMLResponse:
        session = dashboard.page_session(request)
        app = store.get_app(name)
        return dashboard.render(
            request, "confirm.html", session, **app_context(app, "settings"), question=f"Destroy {name}?",
            detail="Its code, releases, logs and domains are deleted; its database too, after a final backup.",
            action=f"{PREFIX}/apps/{name}/destroy", fields={}, button=f"Destroy {name}",
            back=f"{PREFIX}/apps/{name}/settings", type_name=True, danger=True)

    return router


def metric_charts(s: AppSeries, window: str) -> list[tuple[str, Markup]]:
    """The metrics page's charts, from `MetricsHistory.app_series`."""
    label = {"hour": "last hour", "day": "last day", "week": "last week"}[window]
    return [(title, Markup(charts.line_chart(s.times, data, unit=unit, title=f"{title}, {label}")))
            for title, data, unit in chart_specs(s)]


def chart_specs(s: AppSeries) -> list[tuple[str, dict[str, list[float | None]], str]]:
    """Each chart's title, series and unit (memory in MiB)."""
    memory = {k: [None if v is None else v / 2**20 for v in values] for k, values in s.memory.items()}
    return [("Requests per second", {"requests/s": s.requests_per_second}, "req/s"),
            ("Responses by status class", s.by_class, "req/s"),
            ("Latency", {"p50": s.p50, "p95": s.p95, "p99": s.p99}, "ms"),
            ("Web instances", {"instances": [float(n) for n in s.instances]}, ""),
            ("CPU per instance", s.cpu, "cores"),
            ("Memory per instance", memory, "MiB")]


def totals_text(series: AppSeries, window: str) -> str:
    label = {"hour": "the last hour", "day": "the last day", "week": "the last week"}[window]
    parts = ", ".join(f"{count} {cls}" for cls, count in sorted(series.total_by_class.items()) if count)
    return f"{series.total_requests} requests in {label}" + (f" ({parts})" if parts else "") + "."

