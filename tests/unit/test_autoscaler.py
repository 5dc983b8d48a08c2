"""The autoscaler's loop around the KPA: what it reads, when it acts, what it records (fakes at the edges)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from shipyard.control.autoscaler import Autoscaler, Windows, memory_capacity
from shipyard.errors import ShipyardError
from shipyard.store.records import App, AutoscaleBounds

from .fake_supervisor import FakeInstance, FakeSupervisor

MB = 2**20


def test_memory_capacity_counts_the_running_ones_and_what_fits() -> None:
    assert memory_capacity(available=2048 * MB, instance_bytes=512 * MB, running=2, reserve=256 * MB) == 5
    assert memory_capacity(available=100 * MB, instance_bytes=512 * MB, running=2, reserve=256 * MB) == 2


class FakeEdge:
    def __init__(self) -> None:
        self.busy: dict[str, int] = {}
        self.down = False

    async def upstream_requests(self) -> dict[str, int]:
        if self.down:
            raise ShipyardError("the edge is restarting")
        return self.busy


class FakeStore:
    def __init__(self, app: App) -> None:
        self.app = app

    def list_apps(self) -> list[App]:
        return [self.app]


def app(formation: int = 1) -> App:
    return App(id=1, name="todo", branch="main", boot_timeout=30, current_release=1, start_command="",
               build_command="", port=None, formation={"web": formation}, health_path="",
               created_at=datetime.now(timezone.utc), autoscale={"web": AutoscaleBounds(1, 3, 2.0)})


def test_a_burst_is_scaled_up_recorded_and_applied_once() -> None:
    now = [100.0]
    scaled: list[dict[str, int]] = []
    supervisor = FakeSupervisor([FakeInstance("web.1", "127.0.0.1:5001")])
    edge = FakeEdge()

    async def scale(name: str, changes: dict[str, int]) -> None:
        scaled.append(changes)

    async def run() -> Autoscaler:
        scaler = Autoscaler(FakeStore(app()), supervisor, edge, scale, lambda name: False,  # type: ignore[arg-type]
                            Windows(stable=10, panic=2, scale_down_delay=4), clock=lambda: now[0],
                            available_memory=lambda: 64 * 2**30)
        edge.busy = {"127.0.0.1:5001": 9}  # 9 in flight on one instance, target 2: panic, 5 wanted, max 3
        for _ in range(3):
            await scaler.tick()
            await asyncio.sleep(0)  # the scale task runs
            now[0] += 1
        edge.down = True
        await scaler.tick()  # no figures while the edge restarts: no decision on a false zero
        return scaler

    scaler = asyncio.run(run())
    assert scaled and scaled[0] == {"web": 3}
    decisions = scaler.decisions("todo")
    assert decisions[0].decision.desired == 3 and decisions[0].decision.panicking
    assert "capped at --max 3" in decisions[0].decision.reason


def test_nothing_is_decided_while_a_deploy_runs() -> None:
    scaled: list[dict[str, int]] = []
    edge = FakeEdge()
    edge.busy = {"127.0.0.1:5001": 9}

    async def scale(name: str, changes: dict[str, int]) -> None:
        scaled.append(changes)

    async def run() -> Autoscaler:
        scaler = Autoscaler(FakeStore(app()), FakeSupervisor([FakeInstance("web.1", "127.0.0.1:5001")]),  # type: ignore[arg-type]
                            edge, scale, lambda name: True, clock=lambda: 100.0)
        await scaler.tick()
        return scaler

    scaler = asyncio.run(run())
    assert scaled == [] and scaler.decisions("todo") == []
