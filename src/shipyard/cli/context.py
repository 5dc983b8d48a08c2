"""What every CLI command shares: the consoles, the global options, the API client."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from shipyard.cli.client import Client, find_target

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class State:
    data_dir: Path | None = None


state = State()


def client() -> Client:
    return Client(find_target(state.data_dir))
