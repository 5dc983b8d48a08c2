"""What a process and its children listen on (psutil reads /proc/<pid>/fd and /proc/net)."""

from __future__ import annotations

import psutil


def process_tree(pid: int) -> list[psutil.Process]:
    """A process and its descendants; empty once it is gone."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def listening_addresses(pid: int) -> list[tuple[str, int]]:
    """(host, port) of every TCP socket the process tree listens on; empty once it is gone."""
    found: list[tuple[str, int]] = []
    for process in process_tree(pid):
        try:
            connections = process.net_connections(kind="tcp")
        except psutil.Error:
            continue
        found += [(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN]
    return found
