"""No request fails while the app is redeployed, reconfigured, scaled and rolled back under load."""

from __future__ import annotations

import time

from .harness import Shipyard
from .load import Load


def test_zero_failed_requests_across_deploys_config_scale_and_rollback(shipyard: Shipyard) -> None:
    shipyard.cli("apps", "create", "zd")
    work = shipyard.checkout("flask-hello", "zd")
    shipyard.push(work)

    with Load(shipyard, "zd") as load:
        for n in range(2, 12):
            (work / "app.py").write_text((work / "app.py").read_text().replace(f'VERSION = "{n - 1}"',
                                                                               f'VERSION = "{n}"'))
            shipyard.commit(work, f"v{n}")
            assert f"remote: -----> v{n} is live" in shipyard.push(work).err
        assert "restarted as v12" in shipyard.cli("config", "set", "zd", "GREETING=hi").out
        shipyard.cli("ps:scale", "zd", "web=3")
        assert len(shipyard.app_info("zd")["instances"]) == 3
        shipyard.cli("ps:scale", "zd", "web=1")
        shipyard.wait_for(lambda: len(shipyard.app_info("zd")["instances"]) == 1)
        assert "now live as v13" in shipyard.cli("rollback", "zd", "v5").out
        time.sleep(0.5)

    print(f"\n{load.report('deploys')}")
    assert load.failures == []
    assert load.sent > 200
    served = set(load.bodies)
    assert {f"Hello from flask-hello v{n}\n" for n in range(1, 12)} <= served  # every release was live
    assert {"hi from flask-hello v11\n", "Hello from flask-hello v5\n"} <= served
    assert shipyard.get("zd").text == "Hello from flask-hello v5\n"
