"""Autoscaling over HTTP: `shipyard scale APP web --min 1 --max 5 --concurrency 20`, and what the autoscaler
decided, for `shipyard apps info`."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter

from shipyard.api.operations import Operations
from shipyard.api.schemas import AutoscaleIn, AutoscaleOut, ScalingOut
from shipyard.control.platform import Platform
from shipyard.store import records


def autoscale_out(app: records.App) -> dict[str, AutoscaleOut]:
    return {t: AutoscaleOut(min=b.min, max=b.max, concurrency=b.target) for t, b in app.autoscale.items()}


def scaling_out(platform: Platform, app: str) -> list[ScalingOut]:
    return [ScalingOut(at=datetime.fromtimestamp(r.at, timezone.utc), current=r.decision.current,
                       desired=r.decision.desired, stable_concurrency=round(r.decision.stable_concurrency, 2),
                       panic_concurrency=round(r.decision.panic_concurrency, 2), panicking=r.decision.panicking,
                       reason=r.decision.reason)
            for r in platform.autoscaler.decisions(app)]


def scaling_router(platform: Platform, operations: Operations) -> APIRouter:
    router = APIRouter()

    @router.put("/apps/{name}/autoscale/{process_type}")
    async def autoscale(name: str, process_type: str, body: AutoscaleIn) -> AutoscaleOut:
        """Scale the process type on its requests in flight per instance, between min and max instances."""
        bounds = await operations.autoscale(name, process_type, body.min, body.max, body.concurrency)
        return AutoscaleOut(min=bounds.min, max=bounds.max, concurrency=bounds.target)

    @router.delete("/apps/{name}/autoscale/{process_type}")
    async def stop_autoscaling(name: str, process_type: str) -> dict[str, str]:
        await operations.stop_autoscaling(name, process_type)
        return {"autoscale": "off"}

    return router
