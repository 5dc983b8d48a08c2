"""The web dashboard in a real headless Chromium against a real `shipyard up` (issue 14): sign in, the app
list, a broken push's "How to fix this app", a config change making a release, a rollback, a log line
arriving live, requests counted on the chart, an app created from the page, and forms refused without a
session or with a wrong CSRF token. Each page's screenshot is saved under tests/artifacts/."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from .browser import chromium, screenshot_path
from .harness import Shipyard

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shipyard]:
    shipyard = Shipyard(tmp_path_factory.mktemp("dashboard"))
    shipyard.env["SHIPYARD_METRICS_INTERVAL"] = "1"  # the charts see requests within a second or two
    shipyard.start()
    try:
        yield shipyard
    finally:
        shipyard.kill_all()


@pytest.fixture(scope="module")
def page(platform: Shipyard) -> Iterator[Page]:
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(30_000)
        yield page
        context.close()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(screenshot_path(name)), full_page=True)


def base(platform: Shipyard) -> str:
    return f"http://127.0.0.1:{platform.api_port}"


def test_sign_in(platform: Shipyard, page: Page) -> None:
    page.goto(base(platform) + "/")
    expect(page).to_have_url(re.compile(r"/dashboard/sign-in\?next="))
    shot(page, "sign-in")
    page.get_by_label("Platform token").fill("not-the-token-" + "x" * 30)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not this platform's token")
    page.get_by_label("Platform token").fill(platform.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Apps", exact=True)).to_be_visible()
    cookie = next(c for c in page.context.cookies() if c["name"] == "shipyard_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert platform.token not in page.url and platform.token not in cookie["value"]


def test_create_an_app_from_the_page_then_push_it(platform: Shipyard, page: Page) -> None:
    page.goto(base(platform) + "/dashboard")
    page.get_by_role("link", name="Create an app").first.click()
    page.get_by_label("Name").fill("Bad Name")
    page.get_by_role("button", name="Create").click()  # the browser's own pattern check stops it first
    expect(page).to_have_url(re.compile(r"/dashboard/new$"))
    page.get_by_label("Name").fill("shop")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("status")).to_contain_text("Created shop")
    expect(page.locator("pre.copy")).to_contain_text(f"git remote add shipyard {platform.git_url('shop')}")
    shot(page, "app-new")

    platform.cli("git-auth")  # the page's first line: git gets the token, as `apps create` would set up
    platform.push(platform.checkout("flask-hello", "shop"))
    page.reload()
    expect(page.locator("h1 .state")).to_have_text("running")
    for step in ("receive", "pre-flight", "build", "start instances", "health check", "switch"):
        expect(page.locator(".steps .step-name", has_text=step).first).to_be_visible()
    shot(page, "app-overview")


def test_create_an_app_with_a_database(platform: Shipyard, page: Page) -> None:
    page.goto(base(platform) + "/dashboard/new")
    page.get_by_label("Name").fill("notes")
    page.get_by_label(re.compile("With a PostgreSQL database")).check()
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("status")).to_contain_text("Created notes with a PostgreSQL database")
    page.get_by_role("link", name="Settings").click()
    database = page.get_by_role("region", name="Database")
    expect(database).to_contain_text("notes")  # its database and user are named after the app
    expect(database).not_to_contain_text(platform.api("GET", "/apps/notes/config?reveal=true").json()["config"]["PGPASSWORD"])
    shot(page, "settings-database")


def test_broken_push_shows_how_to_fix(platform: Shipyard, page: Page) -> None:
    platform.cli("apps", "create", "broken")
    result = platform.push(platform.checkout("broken-crash", "broken"), check=False)
    assert result.code != 0
    page.goto(base(platform) + "/dashboard/apps/broken")
    box = page.get_by_role("region", name="How to fix this app")
    expect(box).to_contain_text("exited with code 3 before listening on $PORT")
    expect(box).to_contain_text("DATABASE_URL, which is not set")
    evidence = box.locator(".evidence a").first
    expect(evidence).to_contain_text("KeyError")
    evidence.click()  # the link goes to the log line, shown highlighted
    expect(page.locator(".log :target")).to_contain_text("KeyError")
    shot(page, "how-to-fix")

    # A dependency that cannot be installed: the box names it, pointing into the build step's log.
    work = platform.checkout("broken-requirements", "broken-deps")
    platform.cli("apps", "create", "broken-deps")
    assert platform.push(work, check=False).code != 0
    page.goto(base(platform) + "/dashboard/apps/broken-deps")
    box = page.get_by_role("region", name="How to fix this app")
    expect(box).to_contain_text("Build failed")
    expect(box).to_contain_text("shipyard-no-such-package-xyz")
    expect(page.locator("#" + box.locator(".evidence a").first.get_attribute("href")[1:])).to_be_attached()

    page.goto(base(platform) + "/dashboard")
    row = page.get_by_role("row", name=re.compile("^broken http"))
    expect(row).to_contain_text("failed")
    expect(page.get_by_role("row", name=re.compile("shop"))).to_contain_text("running")
    shot(page, "apps")


def test_config_var_makes_a_release_and_rollback_undoes_it(platform: Shipyard, page: Page) -> None:
    page.goto(base(platform) + "/dashboard/apps/shop/settings")
    page.get_by_label("Key").fill("GREETING")
    page.get_by_label("Value").fill("Howdy")
    page.get_by_role("button", name="Add config var").click()
    expect(page.get_by_role("status")).to_contain_text("Set GREETING: release v2 is live")
    expect(page.locator("table.config")).not_to_contain_text("Howdy")  # masked until revealed
    page.get_by_role("link", name="Reveal values").click()
    expect(page.locator("table.config")).to_contain_text("Howdy")
    shot(page, "settings")
    assert platform.get("shop").text.startswith("Howdy")

    page.goto(base(platform) + "/dashboard/apps/shop/deploys")
    expect(page.locator("table").first).to_contain_text("Set GREETING config vars")
    page.get_by_role("link", name="Roll back to v1").click()
    expect(page.get_by_role("heading", name="Roll shop back to v1?")).to_be_visible()
    page.get_by_role("button", name="Roll back to v1").click()
    expect(page.get_by_role("status")).to_contain_text("Rolled back to v1: release v3 is live")
    shot(page, "deploys")
    assert platform.get("shop").text.startswith("Hello")


def test_log_lines_arrive_live(platform: Shipyard, page: Page) -> None:
    page.goto(base(platform) + "/dashboard/apps/shop/logs")
    expect(page.locator("#log-status")).to_have_text("live")
    marker = f"/live-{uuid.uuid4().hex[:8]}"
    assert platform.get("shop", marker).status_code == 404
    expect(page.locator("#log")).to_contain_text(f"router: GET {marker} 404", timeout=15_000)
    page.get_by_label("Process").select_option("web")
    expect(page.locator("#log")).not_to_contain_text("router: GET")
    page.get_by_label("Process").select_option("")
    page.get_by_role("button", name="Pause").click()
    held = f"/held-{uuid.uuid4().hex[:8]}"
    platform.get("shop", held)
    page.wait_for_timeout(1500)
    expect(page.locator("#log")).not_to_contain_text(held)  # paused: kept aside, not shown
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#log")).to_contain_text(f"router: GET {held} 404")
    shot(page, "logs")


def test_requests_are_counted_on_the_chart(platform: Shipyard, page: Page) -> None:
    for _ in range(12):
        assert platform.get("shop", "/env").status_code == 200
    page.goto(base(platform) + "/dashboard/apps/shop/metrics")

    def counted() -> int:
        page.reload()
        return int(re.match(r"(\d+) requests", page.locator("#totals").inner_text()).group(1))

    assert platform.wait_for(lambda: counted() >= 12, timeout=30)
    chart = page.get_by_role("img", name=re.compile("Requests per second"))
    expect(chart).to_be_visible()
    shot(page, "metrics")
    page.goto(base(platform) + "/dashboard")
    assert int(re.search(r"(\d+) requests", page.get_by_role("img", name=re.compile("^shop:")).get_attribute("aria-label")).group(1)) >= 12


def test_phone_width(platform: Shipyard, page: Page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    for path in ("/dashboard", "/dashboard/apps/broken", "/dashboard/apps/shop/settings"):
        page.goto(base(platform) + path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} scrolls sideways by {overflow} px on a phone"
    shot(page, "phone-settings")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_forms_need_a_session_and_the_csrf_token(platform: Shipyard, page: Page) -> None:
    url = base(platform) + "/dashboard/apps/shop/config"
    origin = {"Origin": base(platform)}
    assert httpx.post(url, data={"key": "X", "value": "1"}, headers=origin).status_code == 403
    session = next(c["value"] for c in page.context.cookies() if c["name"] == "shipyard_session")
    cookies = {"shipyard_session": session}
    wrong = httpx.post(url, data={"key": "X", "value": "1", "csrf": "wrong"}, headers=origin, cookies=cookies)
    assert wrong.status_code == 403 and "security token" in wrong.text
    missing = httpx.post(url, data={"key": "X", "value": "1"}, headers=origin, cookies=cookies)
    assert missing.status_code == 403
    page.goto(base(platform) + "/dashboard/apps/shop/settings")
    csrf = page.locator("input[name=csrf]").first.get_attribute("value")
    other_site = httpx.post(url, data={"key": "X", "value": "1", "csrf": csrf}, cookies=cookies,
                            headers={"Origin": "http://evil.example"})
    assert other_site.status_code == 403
    assert "X" not in platform.api("GET", "/apps/shop/config").json()["config"]
    assert httpx.get(base(platform) + "/dashboard/apps/shop", follow_redirects=False).status_code == 303
    sign_in = httpx.get(base(platform) + "/dashboard/sign-in")
    assert sign_in.headers["x-frame-options"] == "DENY"  # no clickjacking from another site's frame
    assert "frame-ancestors 'none'" in sign_in.headers["content-security-policy"]
    bearer = httpx.get(base(platform) + "/dashboard", headers={"Authorization": f"Bearer {platform.token}"},
                       follow_redirects=False)
    assert bearer.status_code == 303  # the API's token is not a dashboard session

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/dashboard/sign-in"))
    assert httpx.get(base(platform) + "/dashboard", cookies=cookies, follow_redirects=False).status_code == 303
