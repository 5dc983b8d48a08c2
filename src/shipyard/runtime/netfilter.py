"""Per-uid packet filtering (nftables): what an app's processes may connect to, and who they may answer.

Apps share the host's network namespace, so the edge reaches an instance on loopback with no extra hop
(a network namespace per instance would put a veth pair and NAT on every request's path). Instead,
every packet a tenant uid sends passes one table of our own:

- answers leave only through loopback: an instance that binds 0.0.0.0 still answers nobody outside;
- it may open connections to the platform's PostgreSQL port (its own database; pg_hba and passwords
  keep it there) and to the edge's public port (as any client on the internet could);
- any other address of this machine is refused: the API and git, the edge's internal servers, other
  apps' instances, anything else listening on the host;
- the outside world (package index, third-party APIs) is reachable.

The table is named after the uid range, so two platforms on one machine (tests) keep separate rules.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass

from shipyard.errors import PlatformError


@dataclass(frozen=True)
class TenantNetwork:
    first_uid: int
    last_uid: int
    database_port: int | None
    edge_port: int
    https_port: int = 0  # the edge's HTTPS port, reachable too (0: none)

    @property
    def table(self) -> str:
        return f"shipyard_{self.first_uid}"


def ruleset(net: TenantNetwork) -> str:
    """The nft script that (re)creates our table atomically: one transaction, never a half-applied state."""
    ports = f"{{ {net.edge_port}, {net.https_port} }}" if net.https_port else str(net.edge_port)
    allowed = [f"        ip daddr 127.0.0.0/8 tcp dport {ports} accept",
               f"        ip6 daddr ::1 tcp dport {ports} accept"]
    if net.database_port:  # on both loopbacks: apps connect to `localhost`, which may resolve to ::1 first
        allowed[:0] = [f"        ip daddr 127.0.0.1 tcp dport {net.database_port} accept",
                       f"        ip6 daddr ::1 tcp dport {net.database_port} accept"]
    body = "\n".join([
        f"table inet {net.table} {{",
        "    chain output {",
        "        type filter hook output priority 0; policy accept;",
        f"        meta skuid {net.first_uid}-{net.last_uid} jump tenant",
        "    }",
        "    chain tenant {",
        "        ct direction reply oifname != \"lo\" drop",
        "        ct direction reply accept",
        *allowed,
        "        fib daddr type local meta l4proto tcp reject with tcp reset",
        "        fib daddr type local reject",
        "    }",
        "}",
    ])
    # `add` then `delete` makes the delete succeed whether or not the table existed.
    return f"add table inet {net.table}\ndelete table inet {net.table}\n{body}\n"


def removal(net: TenantNetwork) -> str:
    return f"add table inet {net.table}\ndelete table inet {net.table}\n"


async def _nft(script: str) -> None:
    nft = shutil.which("nft") or "/usr/sbin/nft"
    try:
        proc = await asyncio.create_subprocess_exec(nft, "-f", "-", stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
    except FileNotFoundError:
        raise PlatformError("nftables' `nft` command was not found.",
                            hint="Install Debian's `nftables` package: `apt-get install nftables`.") from None
    out, _ = await proc.communicate(script.encode())
    if proc.returncode != 0:
        raise PlatformError(f"nft refused the tenant network rules: {out.decode(errors='replace').strip()}",
                            hint="Does this kernel have nftables (nf_tables, nft_fib, nft_reject)?")


async def apply(net: TenantNetwork) -> None:
    await _nft(ruleset(net))


async def remove(net: TenantNetwork) -> None:
    await _nft(removal(net))
