import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)
    # Fast unit tests first, so a broken change fails in seconds; then the end-to-end ones.
    items.sort(key=lambda item: "/e2e/" in str(item.fspath))
