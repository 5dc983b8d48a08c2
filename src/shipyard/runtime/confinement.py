"""How app processes are confined on this machine, decided once at start, and what `shipyard doctor` shows.

Each layer is active or degraded, with why: a machine without root, cgroup controllers or nftables
still runs apps, and says plainly what is not enforced.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shipyard import landlock
from shipyard.errors import PlatformError
from shipyard.proc import bwrap_system_args, find_bwrap
from shipyard.runtime.cgroups import Cgroup, CgroupTree
from shipyard.runtime.sandbox import Jail, Launch, sandboxed_launch, unconfined_launch
from shipyard.runtime.spec import InstanceSpec


@dataclass(frozen=True)
class Layer:
    name: str
    active: bool
    detail: str


def probe_sandbox(bwrap: Path, uid: int) -> str | None:
    """Run `true` in a full tenant sandbox once; None when it works, else what went wrong."""
    with tempfile.TemporaryDirectory(prefix="shipyard-probe-") as folder:
        os.chmod(folder, 0o755)
        os.chown(folder, uid, uid)  # as a slug's app directory is the app's own
        jail = Jail(uid=uid, hostname="probe", cwd=Path(folder), read_only=(), overlays=(Path(folder),))
        launch = sandboxed_launch(bwrap, bwrap_system_args(), jail, {}, "touch written && test \"$(id -u)\" = "
                                  f"{uid} && ! test -r /proc/1/environ")
        try:
            done = subprocess.run(launch.argv, env=launch.env, pass_fds=launch.pass_fds, capture_output=True,
                                  text=True, timeout=20)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
        finally:
            launch.close()
        if done.returncode != 0:
            return (done.stderr.strip() or f"exit code {done.returncode}").splitlines()[-1]
        if Path(folder, "written").exists():
            return "a write inside the sandbox reached the disk (no overlay)"
    return None


class Confinement:
    def __init__(self, bwrap: Path | None, cgroups: CgroupTree | None, layers: list[Layer],
                 scoped: bool = False) -> None:
        self.bwrap = bwrap
        self.scoped = scoped  # Landlock scopes each sandbox (abstract unix sockets, signals)
        self.cgroups = cgroups
        self.layers = layers
        self._system_args = bwrap_system_args()
        self._sequence = itertools.count(1)

    @classmethod
    def detect(cls, cgroup_name: str, probe_uid: int) -> Confinement:
        layers: list[Layer] = []
        bwrap: Path | None = None
        if os.geteuid() != 0:
            why = "the platform does not run as root, so it cannot switch apps to their own uids"
            layers.append(Layer("sandbox", False, f"apps run unconfined: {why}"))
        else:
            try:
                path = find_bwrap()
                problem = probe_sandbox(path, probe_uid)
            except PlatformError as exc:
                path, problem = Path(), exc.message
            if problem:
                layers.append(Layer("sandbox", False, f"apps run unconfined: bubblewrap failed ({problem})"))
            else:
                bwrap = path
                layers.append(Layer("sandbox", True, "bubblewrap: own pid/ipc/uts/mount namespaces, system "
                                    "read-only, slug read-only under an ephemeral writable layer, private "
                                    "/tmp; a uid of its own per app, no capabilities, no_new_privs"))
        abi = landlock.abi_version()
        scoped = bwrap is not None and abi >= landlock.SCOPES_ABI
        layers.append(Layer("scopes", scoped, f"Landlock ABI {abi}: abstract unix sockets and signals stay inside "
                            "each sandbox" if scoped else "abstract unix sockets of one app are reachable from "
                            f"another (Landlock ABI {abi or 'missing'}; scopes need ABI {landlock.SCOPES_ABI}, "
                            "Linux 6.12)"))
        cgroups, detail = CgroupTree.detect(cgroup_name)
        layers.append(Layer("limits", cgroups is not None,
                            detail if cgroups else f"no memory/CPU/process limits: {detail}"))
        return cls(bwrap, cgroups, layers, scoped)

    def add_layer(self, layer: Layer) -> None:
        self.layers = [existing for existing in self.layers if existing.name != layer.name] + [layer]

    @property
    def sandboxed(self) -> bool:
        return self.bwrap is not None

    def confines(self, spec: InstanceSpec) -> bool:
        return self.bwrap is not None and spec.uid is not None

    def launch(self, spec: InstanceSpec, env: Mapping[str, str], block_fd: int | None = None) -> Launch:
        if not self.confines(spec):
            return unconfined_launch(env, spec.command)
        assert self.bwrap is not None and spec.uid is not None
        jail = Jail(uid=spec.uid, hostname=spec.app, cwd=spec.cwd, read_only=spec.read_only,
                    overlays=(spec.cwd,))
        # Its /tmp is private (a tmpfs of its own): point TMPDIR there whatever the caller's was.
        return sandboxed_launch(self.bwrap, self._system_args, jail, {**env, "TMPDIR": "/tmp"}, spec.command,
                                block_fd)

    def cgroup(self, spec: InstanceSpec, cpu_boost: bool = False) -> Cgroup | None:
        """A fresh cgroup with the limits of the spec's size (`cpu_boost`: its CPU quota applied later)."""
        if self.cgroups is None:
            return None
        return self.cgroups.create(f"{spec.app}.{spec.name}.{next(self._sequence)}", spec.size, cpu_boost)

    def prime_cgroups(self) -> None:
        """See CgroupTree.prime: before spawning a process the platform moves into its cgroup afterwards."""
        if self.cgroups is not None:
            self.cgroups.prime()

    def sweep(self) -> None:
        if self.cgroups is not None:
            self.cgroups.sweep()

    def close(self) -> None:
        if self.cgroups is not None:
            self.cgroups.close()
