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


def test_the_telling_error_is_the_apps_exception_not_the_servers_shutdown() -> None:
    from shipyard.runtime.diagnose import telling_error

    lines = ["[INFO] Booting worker with pid: 3", "Traceback (most recent call last):",
             '  File "/app/app.py", line 7, in <module>', "ModuleNotFoundError: No module named 'missing_module'",
             "[ERROR] Worker (pid:3) exited with code 3", "Traceback (most recent call last):",
             "    raise HaltServer(reason, self.WORKER_BOOT_ERROR)",
             "gunicorn.errors.HaltServer: <HaltServer 'Worker failed to boot.' 3>"]
    assert telling_error(lines) == "ModuleNotFoundError: No module named 'missing_module'"
    assert telling_error(["2026 app[web.1]: KeyError: 'DATABASE_URL'"]) == "KeyError: 'DATABASE_URL'"
    assert telling_error(["all good"]) is None
