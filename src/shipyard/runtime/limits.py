"""Instance sizes: how much memory, CPU and how many processes one instance may use (pure values)."""

from __future__ import annotations

from dataclasses import dataclass

from shipyard.errors import InvalidInput


@dataclass(frozen=True)
class Size:
    name: str
    memory_mb: int
    cpus: float  # a hard cap (CFS quota) and the relative share under contention
    pids: int  # processes and threads together (a fork bomb stops here)

    @property
    def memory_bytes(self) -> int:
        return self.memory_mb * 1024 * 1024


# Heroku's standard-1x / standard-2x / performance-m, scaled to what one machine can give.
SIZES = {
    "small": Size("small", 512, 1.0, 256),
    "medium": Size("medium", 1024, 1.5, 512),
    "large": Size("large", 2048, 2.0, 1024),
}
DEFAULT_SIZE = "small"
# What one build may use (installs compile C extensions; a fork bomb in setup.py stops here, and half a
# core stays for the running apps).
BUILD = Size("build", 2048, 1.5, 1024)


def size_named(name: str) -> Size:
    try:
        return SIZES[name]
    except KeyError:
        raise InvalidInput(f"'{name}' is not an instance size.",
                           hint="Sizes: " + ", ".join(f"{s.name} ({s.memory_mb} MB, {s.cpus:g} CPU, {s.pids} "
                                                      "processes)" for s in SIZES.values()) + ".") from None


def web_concurrency(size: Size) -> int:
    """gunicorn workers that fit the size (Heroku: 2 on 512 MB), unless the user sets WEB_CONCURRENCY."""
    return max(2, min(8, size.memory_mb // 256))
