from shipyard.runtime.diagnose import DEFAULT_HINT, boot_hint, listen_hint


def test_hints_for_common_causes():
    assert "add the package that provides it" in boot_hint(["Traceback", "ModuleNotFoundError: No module named 'flask_cors'"])
    assert "`flask_cors`" in boot_hint(["ModuleNotFoundError: No module named 'flask_cors'"])
    assert "shipyard config set <app> DATABASE_URL=" in boot_hint(["KeyError: DATABASE_URL is not set"])
    assert "fixed port" in boot_hint(["[ERROR] Connection in use: ('0.0.0.0', 8000)"])
    assert "release phase" in boot_hint(['psycopg.errors.UndefinedTable: relation "todo" does not exist'])
    assert boot_hint(["Warming up forever"]) == DEFAULT_HINT


def test_listening_elsewhere_names_the_address_and_the_fix():
    assert listen_hint(8123, []) is None
    other_port = listen_hint(8123, [("127.0.0.1", 5000)])
    assert other_port is not None
    assert other_port.startswith("The app listens on 127.0.0.1:5000, not on $PORT (8123): bind 0.0.0.0:$PORT")
    assert "shipyard apps set <app> --port N" in other_port
    ipv6 = listen_hint(8123, [("::1", 8123), ("127.0.0.1", 9000)])
    assert ipv6 is not None and ipv6.startswith("The app listens on [::1]:8123, an address the edge doesn't reach")
    several = listen_hint(8123, [("0.0.0.0", 9001), ("127.0.0.1", 9000), ("0.0.0.0", 9001)])
    assert several is not None and several.startswith("The app listens on 0.0.0.0:9001, 127.0.0.1:9000, not on")
