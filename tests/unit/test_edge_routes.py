from collections import Counter
from pathlib import Path

from shipyard.edge.routes import SLOTS, AppRoute, caddy_config, parked_server, route_table, slot_addresses

SLOT_DIR = Path("/d/caddy/upstreams")


def test_routes_sorted_by_app_with_a_404_catch_all_last():
    table = route_table([AppRoute("zeta", "zeta.localhost", ("127.0.0.1:2",)),
                         AppRoute("alpha", "alpha.localhost", ("127.0.0.1:1", "127.0.0.1:3"))], SLOT_DIR)
    assert [r["@id"] for r in table] == ["app-alpha", "app-zeta", "not-found"]
    assert table[0]["match"] == [{"host": ["alpha.localhost"]}]
    assert table[0]["handle"][0] == {"handler": "vars", "app": "alpha"}  # names the app on error pages
    assert "match" not in table[-1] and table[-1]["handle"][0]["status_code"] == 404
    assert all(r["terminal"] for r in table)


def test_same_apps_in_another_order_give_an_equal_table():
    a, b = AppRoute("a", "a.localhost", ("127.0.0.1:1",)), AppRoute("b", "b.localhost", ())
    assert route_table([a, b], SLOT_DIR) == route_table([b, a], SLOT_DIR)
    assert route_table([a, b], SLOT_DIR) != route_table([a, AppRoute("b", "b.example", ())], SLOT_DIR)


def test_other_instances_or_none_give_the_same_table_so_deploys_never_reload_caddy():
    one = route_table([AppRoute("a", "a.localhost", ("127.0.0.1:1",))], SLOT_DIR)
    assert one == route_table([AppRoute("a", "a.localhost", ("127.0.0.1:7", "127.0.0.1:8"))], SLOT_DIR)
    assert one == route_table([AppRoute("a", "a.localhost", ())], SLOT_DIR)


def test_proxy_round_robins_over_slot_files_and_retries_refused_connections():
    [route, _] = route_table([AppRoute("todo", "todo.localhost", ("127.0.0.1:1", "127.0.0.1:2"))], SLOT_DIR)
    proxy = route["handle"][1]
    assert proxy["handler"] == "reverse_proxy" and "health_checks" not in proxy
    assert proxy["upstreams"][:2] == [{"dial": "{file./d/caddy/upstreams/todo/0}"},
                                      {"dial": "{file./d/caddy/upstreams/todo/1}"}]
    assert len(proxy["upstreams"]) == SLOTS
    assert proxy["load_balancing"] == {"selection_policy": {"policy": "round_robin"},
                                       "try_duration": "10s", "try_interval": "50ms"}


def test_slots_share_instances_evenly():
    assert slot_addresses((), "127.0.0.1:9") == ["127.0.0.1:9"] * SLOTS  # no instance: the parked server
    assert set(slot_addresses(("a",), "p")) == {"a"}
    for count in (2, 3, 4, 5, 6):
        instances = tuple(f"127.0.0.1:{n}" for n in range(count))
        shares = Counter(slot_addresses(instances, "p"))
        assert set(shares.values()) == {SLOTS // count}
    assert sorted(Counter(slot_addresses(tuple("abcdefg"), "p")).values()) == [8, 8, 8, 9, 9, 9, 9]


def test_the_parked_server_answers_503_naming_the_app_from_its_host():
    server = parked_server("fd/4", "apps.example.com")
    assert server["listen"] == ["fd/4"]
    [route] = server["routes"]
    assert route["handle"] == [{
        "handler": "static_response",
        "status_code": 503,
        "headers": {"Content-Type": ["text/plain; charset=utf-8"], "Cache-Control": ["no-store"]},
        "body": "Application '{http.request.host.labels.3}' has no running instance.\n"
                "Deploy it with `git push`, or see why with `shipyard logs {http.request.host.labels.3}`.\n",
    }]
    assert "labels.1}" in parked_server("fd/4", "localhost")["routes"][0]["handle"][0]["body"]


def test_unknown_host_answers_404_pointing_at_shipyard_apps():
    [catch_all] = route_table([], SLOT_DIR)
    handler = catch_all["handle"][0]
    assert (handler["status_code"], handler["headers"]["Content-Type"]) == (404, ["text/plain; charset=utf-8"])
    assert handler["body"].startswith("No application is served at this address.\n")
    assert "`shipyard apps`" in handler["body"]


def test_admin_api_only_on_a_private_unix_socket():
    config = caddy_config(admin_socket=Path("/d/caddy/admin.sock"), listen="127.0.0.1:8480", parked_listen="fd/4",
                          base_domain="localhost", apps=[], slot_dir=SLOT_DIR)
    assert config["admin"] == {"listen": "unix//d/caddy/admin.sock|0600", "config": {"persist": False}}
    server = config["apps"]["http"]["servers"]["edge"]
    assert server["listen"] == ["127.0.0.1:8480"]
    assert server["automatic_https"] == {"disable": True}
    assert server["routes"] == route_table([], SLOT_DIR)
    assert config["apps"]["http"]["servers"]["parked"] == parked_server("fd/4", "localhost")


def test_proxy_failures_become_503_naming_the_app():
    config = caddy_config(admin_socket=Path("/s"), listen="127.0.0.1:1", parked_listen="fd/4", base_domain="localhost",
                          apps=[], slot_dir=SLOT_DIR)
    [error_route] = config["apps"]["http"]["servers"]["edge"]["errors"]["routes"]
    assert error_route["match"] == [{"expression": "{http.error.status_code} in [502, 503, 504]"}]
    handler = error_route["handle"][0]
    assert (handler["status_code"], handler["headers"]["Content-Type"]) == (503, ["text/plain; charset=utf-8"])
    assert "is not answering" in handler["body"] and "`shipyard logs {http.vars.app}`" in handler["body"]
