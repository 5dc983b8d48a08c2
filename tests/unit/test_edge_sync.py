"""Scales at the same time share the edge's route syncs instead of each reading every app and rewriting the
routes (200 apps going to zero together)."""

from __future__ import annotations

import asyncio

from shipyard.control.edge_sync import EdgeSync
from shipyard.edge.routes import AppRoute


class Edge:
    def __init__(self) -> None:
        self.applied = 0

    async def apply(self, routes: list[AppRoute]) -> None:
        await asyncio.sleep(0.02)  # the runtime API's round trips
        self.applied += 1


class Certificates:
    async def converge(self) -> None:
        pass


class NoRoutes(EdgeSync):
    def route_inputs(self) -> list[AppRoute]:
        return []


def test_concurrent_callers_share_a_few_syncs_and_each_sees_one_that_began_after_it() -> None:
    edge = Edge()

    async def run() -> tuple[int, int]:
        sync = NoRoutes(None, None, edge, None, Certificates())  # type: ignore[arg-type]
        sync.start()
        await asyncio.sleep(0.05)  # the certificates loop's first pass asks for one sync
        before = edge.applied
        try:
            await asyncio.gather(*(sync.synced() for _ in range(200)))
            return before, edge.applied
        finally:
            await sync.stop()

    before, after = asyncio.run(run())
    assert 1 <= after - before <= 2  # one sync began after all 200 asked (two if one was under way)


def test_without_its_loop_a_caller_syncs_itself() -> None:
    edge = Edge()
    asyncio.run(NoRoutes(None, None, edge, None, Certificates()).synced())  # type: ignore[arg-type]
    assert edge.applied == 1
