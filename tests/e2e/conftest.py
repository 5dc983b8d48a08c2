from collections.abc import Iterator

import pytest

from .harness import Shipyard


@pytest.fixture(scope="module")
def shipyard(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shipyard]:
    platform = Shipyard(tmp_path_factory.mktemp("shipyard"))
    platform.start()
    try:
        yield platform
    finally:
        platform.kill_all()
