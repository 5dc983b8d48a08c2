from shipyard.runtime.diagnose import DEFAULT_HINT, boot_hint


def test_hints_for_common_causes():
    assert "add the package that provides it" in boot_hint(["Traceback", "ModuleNotFoundError: No module named 'flask_cors'"])
    assert "`flask_cors`" in boot_hint(["ModuleNotFoundError: No module named 'flask_cors'"])
    assert "shipyard config set <app> DATABASE_URL=" in boot_hint(["KeyError: DATABASE_URL is not set"])
    assert "fixed port" in boot_hint(["[ERROR] Connection in use: ('0.0.0.0', 8000)"])
    assert "release phase" in boot_hint(['psycopg.errors.UndefinedTable: relation "todo" does not exist'])
    assert boot_hint(["Warming up forever"]) == DEFAULT_HINT
