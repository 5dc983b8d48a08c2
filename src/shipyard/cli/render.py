"""Values shown to people, as the CLI writes them."""

from __future__ import annotations


def duration(seconds: float) -> str:
    """A short, rounded-down age: 42s, 3m, 3m 12s under ten minutes, 2h 5m, 3d 4h."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 10:
        return f"{minutes}m {rest}s" if rest else f"{minutes}m"
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"
