"""What to run: the plain values the supervisor needs for one instance."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shipyard.runtime.limits import SIZES, Size


@dataclass(frozen=True)
class InstanceSpec:
    app: str
    release: int
    process_type: str  # "web", "worker", …
    index: int  # web.1, web.2, …
    command: str  # run through bash so $PORT and ${PORT:-8000} expand
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)  # PORT is added by the supervisor
    boot_timeout: float = 240.0
    port: int | None = None  # a fixed port; otherwise the supervisor picks a free one
    health_path: str = ""  # web only: an HTTP path that must answer < 500 before the instance is routed
    host_header: str = ""
    # Confinement: the app's own uid (None: unconfined), its size's limits, and what it may read besides
    # its app directory (`cwd`, which it sees under an ephemeral writable layer).
    uid: int | None = None
    size: Size = SIZES["small"]
    read_only: tuple[Path, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.process_type}.{self.index}"


def next_backoff(previous: float, initial: float = 1.0, maximum: float = 60.0) -> float:
    """Exponential restart backoff for a crashing instance: 1, 2, 4 … 60 s."""
    return initial if previous <= 0 else min(previous * 2, maximum)
