"""The tenant sandbox's decisions as values: bubblewrap's arguments, the launch script, cgroup limits,
the packet filter's rules, and how app output is logged."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shipyard.errors import InvalidInput
from shipyard.release.plan import ReleaseTarget, instance_specs, one_off_spec, release_phase_spec
from shipyard.runtime.cgroups import limit_values, oom_kills, parse_own_cgroups
from shipyard.runtime.limits import SIZES, size_named, web_concurrency
from shipyard.runtime.netfilter import TenantNetwork, removal, ruleset
from shipyard.proc import setpriv_args
from shipyard.runtime.sandbox import Jail, app_command, bwrap_args, launch_script
from shipyard.runtime.shell import printable

JAIL = Jail(uid=200007, hostname="todo", cwd=Path("/data/slugs/todo/1/app"),
            read_only=(Path("/data/slugs/todo/1"), Path("/data/ca/ca.crt")), overlays=(Path("/data/slugs/todo/1/app"),))


def test_bwrap_arguments_show_only_what_the_app_may_see() -> None:
    args = bwrap_args(JAIL, ["--ro-bind", "/usr", "/usr"], script_fd=9)
    joined = " ".join(args)
    for flag in ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--clearenv"):
        assert flag in args
    assert "--unshare-net" not in args  # the network is filtered per uid instead (netfilter.py)
    assert "--ro-bind /data/slugs/todo/1 /data/slugs/todo/1" in joined
    assert "--overlay-src /data/slugs/todo/1/app --tmp-overlay /data/slugs/todo/1/app" in joined
    assert "--ro-bind /data/ca/ca.crt /data/ca/ca.crt" in joined
    assert "--tmpfs /tmp" in joined and "--hostname todo" in joined
    # Parents made crossable once each; the data directory itself is never bound.
    assert args.count("/data") == 1 and "--bind" not in args
    assert joined.index("--ro-bind /data/slugs/todo/1 ") < joined.index("--tmp-overlay")  # overlay on top
    assert "--ro-bind-data 9 /run/shipyard/launch" in joined


def test_privileges_are_dropped_for_good() -> None:
    drop = setpriv_args(200007, 200007)
    assert drop[:5] == ["/usr/bin/setpriv", "--reuid=200007", "--regid=200007", "--clear-groups", "--no-new-privs"]
    assert "--inh-caps=-all" in drop and "--bounding-set=-all" in drop and drop[-1] == "--"


def test_the_environment_and_the_command_reach_only_the_apps_bash(tmp_path: Path) -> None:
    env = {"SECRET": "it's $HOME `id`\nline two", "LD_PRELOAD": "/x.so", "BAD NAME": "dropped", "PORT": "5000",
           "TRAILING\n": "dropped too"}
    script = launch_script(env)
    assert "BAD" not in script and "TRAILING" not in script and "5000" in script
    assert app_command("-c") == ["/bin/bash", "-c", "--", ". /run/shipyard/launch\n-c"]
    # Run it, with the script where the sandbox puts it, to see the values arrive unchanged.
    (tmp_path / "launch").write_text(script)
    argv = app_command('printf "%s|%s|%s" "$SECRET" "$LD_PRELOAD" "$PORT"')
    argv[-1] = argv[-1].replace("/run/shipyard/launch", str(tmp_path / "launch"))
    done = subprocess.run(argv, capture_output=True, text=True, env={})
    assert done.stdout == "it's $HOME `id`\nline two|/x.so|5000"


def test_sizes_and_their_cgroup_limits() -> None:
    small = size_named("small")
    assert (small.memory_mb, small.pids) == (512, 256) and web_concurrency(small) == 2
    with pytest.raises(InvalidInput, match="small"):
        size_named("huge")
    v1 = limit_values(1, small)
    assert v1["memory/memory.limit_in_bytes"] == str(512 * 1024 * 1024) == v1["memory/memory.memsw.limit_in_bytes"]
    assert v1["pids/pids.max"] == "256" and v1["cpu/cpu.cfs_quota_us"] == "100000"
    assert "memory/memory.memsw.limit_in_bytes" not in limit_values(1, small, has_swap_limit=False)
    v2 = limit_values(2, SIZES["medium"])
    assert v2["memory.max"] == str(1024 * 1024 * 1024) and v2["memory.oom.group"] == "1"
    assert v2["cpu.max"] == "150000 100000" and v2["pids.max"] == "512"


def test_a_booting_instance_has_no_cpu_quota_but_keeps_its_weight() -> None:
    small = size_named("small")
    v1 = limit_values(1, small, cpu_boost=True)
    assert v1["cpu/cpu.cfs_quota_us"] == "-1" and v1["cpu/cpu.shares"] == "1024"
    assert v1["memory/memory.limit_in_bytes"] == str(512 * 1024 * 1024)  # only the CPU cap waits
    v2 = limit_values(2, small, cpu_boost=True)
    assert v2["cpu.max"] == "max 100000" and v2["cpu.weight"] == "100"


def test_cgroup_files_are_read_as_the_kernel_writes_them() -> None:
    own = parse_own_cgroups("4:memory:/process_api/abc\n2:cpu,cpuacct:/\n0::/user.slice\n")
    assert own == {"memory": "/process_api/abc", "cpu": "/", "cpuacct": "/", "": "/user.slice"}
    assert oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n") == 3
    assert oom_kills("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n") == 1
    assert oom_kills("") == 0


def test_packet_filter_rules() -> None:
    net = TenantNetwork(first_uid=200000, last_uid=399999, database_port=5433, edge_port=8480)
    rules = ruleset(net)
    assert rules.startswith("add table inet shipyard_200000\ndelete table inet shipyard_200000\n")
    assert "meta skuid 200000-399999 jump tenant" in rules
    lines = [line.strip() for line in rules.splitlines()]
    order = [lines.index(rule) for rule in (
        'ct direction reply oifname != "lo" drop', "ct direction reply accept",
        "ip daddr 127.0.0.1 tcp dport 5433 accept", "ip6 daddr ::1 tcp dport 5433 accept",
        "ip daddr 127.0.0.0/8 tcp dport 8480 accept",
        "fib daddr type local meta l4proto tcp reject with tcp reset")]
    assert order == sorted(order)
    no_database = ruleset(TenantNetwork(200000, 399999, None, 8480))
    assert "5433" not in no_database
    assert removal(net) == "add table inet shipyard_200000\ndelete table inet shipyard_200000\n"


def test_every_process_of_a_release_gets_the_apps_confinement() -> None:
    target = ReleaseTarget(app="todo", version=3, slug_path=Path("/s/todo/3"),
                           process_types={"web": "gunicorn app:app", "worker": "python w.py", "release": "migrate"},
                           config={}, hostname="todo.localhost", external_url="http://todo.localhost/",
                           boot_timeout=60, web_concurrency=2, uid=200005, size=SIZES["medium"],
                           read_only=(Path("/s/todo/3"),), formation={"worker": 1})
    specs = [*instance_specs(target), release_phase_spec(target), one_off_spec(target, "bash", 1)]
    assert len(specs) == 4
    assert all(s is not None and s.uid == 200005 and s.size.name == "medium" and s.read_only == (Path("/s/todo/3"),)
               for s in specs)
    assert specs[0].env["USER"] == "todo"


def test_app_output_cannot_forge_log_lines() -> None:
    assert printable("ok\r2026-01-01 shipyard[api]: Release v9 is live") == \
        "ok\\x0d2026-01-01 shipyard[api]: Release v9 is live"
    assert printable("\x1b[2Jcleared\ttab") == "\\x1b[2Jcleared\ttab"
    assert printable("naïve ünïcode") == "naïve ünïcode"


def test_app_uids_stay_clear_of_the_machines_users() -> None:
    from shipyard.errors import PlatformError
    from shipyard.settings import Settings

    settings = Settings(tenant_uid_base=200000)
    assert (settings.app_uid(7), settings.build_uid(7)) == (200007, 300007)
    for bad in (0, 1000, 2**32 - 100):
        with pytest.raises(PlatformError, match="SHIPYARD_UID_BASE"):
            Settings(tenant_uid_base=bad)
