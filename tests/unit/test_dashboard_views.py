"""The dashboard's decisions as values: deploy steps, the How-to-fix box, app states, sessions, origins."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from cryptography.fernet import Fernet

from shipyard.api.dashboard.sessions import IDLE_LIMIT, LIFETIME, Sessions, csrf_ok, same_origin
from shipyard.api.dashboard.site import safe_next
from shipyard.api.dashboard.views import ago, app_state_label, deploy_view
from shipyard.store.secrets import Cipher
from shipyard.store.store import Store

FAILED = {
    "id": 7, "description": "Push of abc1234", "release": None, "status": "failed",
    "started_at": "2026-11-29T10:00:00", "finished_at": "2026-11-29T10:00:09",
    "error": "Release v2 failed: web.1 exited with code 3 before listening on $PORT.",
    "hint": "The app reads the environment variable DATABASE_URL, which is not set: `shipyard config set <app> "
            "DATABASE_URL=...`",
    "steps": [
        {"name": "receive", "started": 100.0, "finished": 100.5, "status": "succeeded", "log": ["Received abc1234"]},
        {"name": "build", "started": 100.5, "finished": 104.0, "status": "succeeded", "log": ["Installing", "Error: not this one"]},
        {"name": "health check", "started": 104.0, "finished": 109.0, "status": "failed",
         "log": ["Starting web.1", "Traceback (most recent call last):", '  File "app.py", line 3',
                 "KeyError: 'DATABASE_URL is not set'", "web.1 exited with code 3"]},
    ]}


def test_a_failed_deploy_has_a_fix_box_pointing_at_its_log_lines() -> None:
    view = deploy_view(FAILED, "shop")
    assert [s.name for s in view.steps] == ["receive", "build", "health check"]
    assert view.seconds == 9.0 and view.steps[2].seconds == 5.0
    assert view.fix is not None
    assert view.fix.step == "health check"
    assert view.fix.cause.startswith("Release v2 failed") and "`shipyard config set shop DATABASE_URL" in view.fix.fix
    # The failed step's last three lines that look like the failure, linked by anchor; a succeeded step's
    # "Error" line is not evidence.
    assert [(a, line.text) for a, line in view.fix.evidence] == [
        ("deploy-7-health-check-line-2", "Traceback (most recent call last):"),
        ("deploy-7-health-check-line-4", "KeyError: 'DATABASE_URL is not set'"),
        ("deploy-7-health-check-line-5", "web.1 exited with code 3")]
    assert not any(line.culprit for line in view.steps[1].lines)


def test_a_failure_without_a_matching_line_points_at_the_last_one_and_a_success_has_no_box() -> None:
    record = {**FAILED, "error": None, "hint": None,
              "steps": [{"name": "build", "started": 1.0, "finished": 2.0, "status": "failed", "log": ["a", "b"]}]}
    view = deploy_view(record)
    assert view.fix is not None and view.fix.cause == "The deploy failed."
    assert [line.text for _, line in view.fix.evidence] == ["b"]
    assert deploy_view({**FAILED, "status": "succeeded"}).fix is None
    assert deploy_view({**FAILED, "finished_at": None}).seconds is None


def test_app_state_labels() -> None:
    def label(state: str, **kw: object) -> str:
        args: dict = {"deploying": False, "damaged": False, "last_deploy_status": "succeeded", "formation": {"web": 1}}
        return app_state_label(platform_state=state, **{**args, **kw})
    assert label("up") == "running"
    assert label("up", deploying=True) == "deploying"
    assert label("new", last_deploy_status="failed") == "failed"
    assert label("new", last_deploy_status=None) == "new"
    assert label("down", formation={"web": 0}) == "scaled to zero"
    assert label("crashed") == "crashed"
    assert label("down", last_deploy_status="failed") == "failed"
    assert label("up", damaged=True) == "damaged"


def test_ago() -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
    assert ago(datetime(2026, 11, 29, 11, 58, tzinfo=timezone.utc), now) == "2 min ago"
    assert ago(datetime(2026, 11, 27, 12, 0, tzinfo=timezone.utc), now) == "2 d ago"
    assert ago(None, now) == "never"


def test_sessions_expire_end_and_check_csrf() -> None:
    now = [1000.0]
    sessions = Sessions(clock=lambda: now[0])
    session = sessions.create()
    assert sessions.get(session.id) is session and sessions.get("guess") is None and sessions.get(None) is None
    assert csrf_ok(session, session.csrf) and not csrf_ok(session, "x") and not csrf_ok(session, None)
    now[0] += IDLE_LIMIT + 1
    assert sessions.get(session.id) is None  # idle too long
    kept = sessions.create()
    for _ in range(int(LIFETIME // 3600) + 1):
        now[0] += 3600
        sessions.get(kept.id)
    assert sessions.get(kept.id) is None  # past its lifetime however busy
    ended = sessions.create()
    sessions.end(ended.id)
    assert sessions.get(ended.id) is None


def test_same_origin_and_safe_next() -> None:
    assert same_origin("http://127.0.0.1:8470", None, "127.0.0.1:8470")
    assert not same_origin("http://evil.example", None, "127.0.0.1:8470")
    assert same_origin(None, "http://127.0.0.1:8470/dashboard/apps/x", "127.0.0.1:8470")
    assert not same_origin(None, "http://evil.example/x", "127.0.0.1:8470")
    assert not same_origin("null", None, "127.0.0.1:8470")
    assert same_origin(None, None, "127.0.0.1:8470")  # no browser sends a POST without both
    assert safe_next("/dashboard/apps/x?window=day") == "/dashboard/apps/x?window=day"
    for bad in ("//evil.example/dashboard", "https://evil.example/", "/dashboard\\@evil", "", None, "/git/x"):
        assert safe_next(bad) == "/dashboard"


def test_latest_activity_of_every_app_in_one_call(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", Cipher(Fernet.generate_key()), tmp_path)
    try:
        store.create_app("a")
        store.create_app("b")
        first = store.add_deploy("a", "Push of 1111111")
        store.save_deploy(first, steps=[], status="failed", release=None, finished=True, error="x", hint="y")
        store.add_deploy("a", "Push of 2222222")
        activity = store.latest_activity()
        assert activity["a"].deploy_status == "running" and activity["b"].deploy_status is None
        assert activity["b"].release_description == ""
    finally:
        store.close()
