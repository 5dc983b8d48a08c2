"""The edge's routing decisions as values: state → runtime-API commands, and HAProxy's config text."""

from pathlib import Path

import pytest

from shipyard.edge.haproxy_config import EdgeFiles, EdgeLimits, Listeners, haproxy_config, hosts_map_text
from shipyard.edge.routes import AppRoute, EdgeState, Server, deletions, plan, restarted
from shipyard.errors import PlatformError

MAP = "/d/edge/hosts.map"


def test_a_new_app_gets_a_backend_its_servers_then_its_hostname() -> None:
    state, commands = plan(EdgeState(), [AppRoute("todo", "todo.localhost", ("127.0.0.1:5001",))], 4, MAP)
    assert commands == ["add server b0/s1 127.0.0.1:5001", "enable server b0/s1",
                        f"add map {MAP} todo.localhost b0:todo:"]
    assert state.backends == {"todo": "b0"} and state.servers == {"b0": (Server("s1", "127.0.0.1:5001"),)}
    assert state.routes_to("todo", "127.0.0.1:5001") and not state.routes_to("todo", "127.0.0.1:5002")


def test_a_deploy_adds_the_new_instance_and_retires_the_old_one() -> None:
    state, _ = plan(EdgeState(), [AppRoute("todo", "todo.localhost", ("127.0.0.1:5001",))], 4, MAP)
    state, commands = plan(state, [AppRoute("todo", "todo.localhost", ("127.0.0.1:5002",))], 4, MAP)
    assert commands == ["add server b0/s2 127.0.0.1:5002", "enable server b0/s2", "disable server b0/s1"]
    assert state.retired == {"b0": (Server("s1", "127.0.0.1:5001"),)}
    assert state.addresses == {("b0", "s2"): "127.0.0.1:5002", ("b0", "s1"): "127.0.0.1:5001"}
    # Nothing changes: no command at all.
    assert plan(state, [AppRoute("todo", "todo.localhost", ("127.0.0.1:5002",))], 4, MAP)[1] == []


def test_retired_servers_are_deleted_once_nothing_is_in_flight() -> None:
    state, _ = plan(EdgeState(), [AppRoute("todo", "todo.localhost", ("127.0.0.1:5001",))], 4, MAP)
    state, _ = plan(state, [AppRoute("todo", "todo.localhost", ("127.0.0.1:5002",))], 4, MAP)
    busy, commands = deletions(state, {("b0", "s1"): 1})
    assert commands == [] and busy.retired == state.retired
    idle, commands = deletions(state, {("b0", "s1"): 0, ("b0", "s2"): 3})
    assert commands == ["del server b0/s1"] and idle.retired == {}


def test_a_destroyed_app_loses_its_hostname_first_and_its_backend_waits_for_its_requests() -> None:
    apps = [AppRoute("blog", "blog.localhost", ()), AppRoute("todo", "todo.localhost", ("127.0.0.1:5001",))]
    state, _ = plan(EdgeState(), apps, 4, MAP)
    assert state.backends == {"blog": "b0", "todo": "b1"}
    state, commands = plan(state, apps[:1], 4, MAP)
    assert commands == [f"del map {MAP} todo.localhost", "disable server b1/s1"]
    # b1 still drains: a new app takes another backend, so its requests are not counted as the new app's.
    state, commands = plan(state, [*apps[:1], AppRoute("shop", "shop.localhost", ())], 4, MAP)
    assert state.backends["shop"] == "b2" and commands == [f"add map {MAP} shop.localhost b2:shop:"]


def test_no_backend_left_is_a_clear_error() -> None:
    apps = [AppRoute(f"a{i}", f"a{i}.localhost", ()) for i in range(3)]
    with pytest.raises(PlatformError, match="room for 2 apps"):
        plan(EdgeState(), apps, 2, MAP)


def test_a_restart_keeps_the_routes_and_server_names_but_nothing_retired() -> None:
    state, _ = plan(EdgeState(), [AppRoute("todo", "todo.localhost", ("127.0.0.1:5001",))], 4, MAP)
    state, _ = plan(state, [AppRoute("todo", "todo.localhost", ("127.0.0.1:5002",))], 4, MAP)
    fresh = restarted(state)
    assert fresh.retired == {} and fresh.servers == state.servers and fresh.next_server == 3
    assert hosts_map_text(fresh) == "todo.localhost b0:todo:\n"
    files = EdgeFiles(admin_socket=Path("/d/edge/admin.sock"), hosts_map=Path(MAP), acme_map=Path("/d/edge/acme.map"),
                      crt_list=Path("/d/edge/certs.list"), default_certificate=Path("/d/edge/default.pem"))
    config = haproxy_config(files=files, listeners=Listeners(http_fd=7), state=fresh, pool=3,
                            limits=EdgeLimits(retries=4))
    assert "    bind fd@7\n" in config and "stats socket /d/edge/admin.sock mode 600 level admin" in config
    assert "backend b0\n" in config and "backend b2\n" in config and "backend b3\n" not in config
    assert "    server s2 127.0.0.1:5002\n" in config and "s1 " not in config
    assert "    retries 4\n" in config and "    timeout http-request 10s\n" in config
    assert "set-header X-Forwarded-For %[src]" in config
    assert " ssl " not in config and "redirect" not in config  # no HTTPS listener: nothing to redirect to
    tls = haproxy_config(files=files, listeners=Listeners(http_fd=7, https_fd=8, https_port=8443), state=fresh,
                         pool=1)
    assert "    bind fd@8 ssl crt /d/edge/default.pem crt-list /d/edge/certs.list alpn h2,http/1.1\n" in tls
    assert "location https://%[var(txn.host)]:8443%[capture.req.uri] if !{ ssl_fc }" in tls


def test_hostnames_domains_and_their_https_flags_are_map_entries() -> None:
    route = AppRoute("todo", "todo.localhost", (), domains=("todo.example.com",),
                     redirect_https=frozenset({"todo.example.com"}), hsts=frozenset({"todo.example.com"}))
    state, commands = plan(EdgeState(), [route], 4, MAP)
    assert commands == [f"add map {MAP} todo.example.com b0:todo:rh", f"add map {MAP} todo.localhost b0:todo:"]
    # The domain moves to another app: one `set`, and the old app never has it deleted under the new one.
    moved = AppRoute("shop", "shop.localhost", (), domains=("todo.example.com",))
    state, commands = plan(state, [AppRoute("todo", "todo.localhost", ()), moved], 4, MAP)
    assert commands == [f"add map {MAP} shop.localhost b1:shop:", f"set map {MAP} todo.example.com b1:shop:"]
    state, commands = plan(state, [AppRoute("todo", "todo.localhost", ())], 4, MAP)
    assert commands == [f"del map {MAP} shop.localhost", f"del map {MAP} todo.example.com"]


def test_router_log_lines_read_back_and_shown_as_heroku_shows_them() -> None:
    from shipyard.edge.router_log import parse, router_line

    entry = parse("todo 6f1c0c9e-0000-4000-8000-000000000000 b0 s3 GET /todos?page=2 200 12 1234")
    assert entry is not None and entry.status_class == "2xx" and entry.path == "/todos?page=2"
    assert router_line(entry, "web.2") == ("GET /todos?page=2 200 12 ms 1.2 kB web.2 "
                                           "req=6f1c0c9e-0000-4000-8000-000000000000")
    assert parse("- 6f1c b0 <NOSRV> GET / 404 0 120") is None  # no app: an unknown hostname
    assert parse("[WARNING] (12) : Server b0/s1 is UP") is None
