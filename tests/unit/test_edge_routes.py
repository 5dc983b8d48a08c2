from pathlib import Path

from shipyard.edge.routes import AppRoute, caddy_config, route_table


def test_routes_sorted_by_app_with_a_404_catch_all_last():
    table = route_table([AppRoute("zeta", "zeta.localhost", ("127.0.0.1:2",)),
                         AppRoute("alpha", "alpha.localhost", ("127.0.0.1:1", "127.0.0.1:3"))])
    assert [r["@id"] for r in table] == ["app-alpha", "app-zeta", "not-found"]
    assert table[0]["match"] == [{"host": ["alpha.localhost"]}]
    assert table[0]["handle"][0] == {"handler": "vars", "app": "alpha"}  # names the app on error pages
    assert table[0]["handle"][1]["upstreams"] == [{"dial": "127.0.0.1:1"}, {"dial": "127.0.0.1:3"}]
    assert "match" not in table[-1] and table[-1]["handle"][0]["status_code"] == 404


def test_app_without_instances_answers_503_with_a_hint():
    [route, _] = route_table([AppRoute("todo", "todo.localhost", ())])
    handler = route["handle"][0]
    assert handler["handler"] == "static_response" and handler["status_code"] == 503
    assert "shipyard logs todo" in handler["body"]


def test_admin_api_only_on_a_private_unix_socket():
    config = caddy_config(admin_socket=Path("/d/caddy/admin.sock"), listen="127.0.0.1:8480", apps=[])
    assert config["admin"]["listen"] == "unix//d/caddy/admin.sock|0600"
    server = config["apps"]["http"]["servers"]["edge"]
    assert server["listen"] == ["127.0.0.1:8480"]
    assert server["automatic_https"] == {"disable": True}
    assert server["errors"]["routes"][0]["handle"][0]["status_code"] == 503
