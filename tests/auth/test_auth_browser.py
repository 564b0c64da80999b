"""Accounts in a real browser (Debian Chromium via Playwright) against ``skyframe serve`` with auth on.

First run: the setup link from the server log -> create the admin -> log in -> upload a real clip through
the page's file input -> log out -> the app page sends the visitor back to /login. Any console error or
uncaught page error fails the test.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.auth.conftest import AUTH_ENV, PASSWORD, setup_link
from tests.conftest import ARTIFACTS, VIDEO_DIR, ServerProcess

pytestmark = [pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
CLIP = VIDEO_DIR / "libopenshot_run.mp4"


@pytest.fixture
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_setup_login_upload_logout(browser, server_factory: Callable[..., ServerProcess]) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    server = server_factory(env=AUTH_ENV)
    link, _ = setup_link(server)
    context = browser.new_context(base_url=server.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []

    def on_console(msg) -> None:  # type: ignore[no-untyped-def]
        if msg.type == "error":
            errors.append(f"console.error: {msg.text} ({msg.location.get('url', '')}; page {page.url})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    ARTIFACTS.mkdir(exist_ok=True)

    # Anonymous: the app redirects to the login page, which says that no account exists yet.
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.get_by_test_id("auth-note")).to_contain_text("setup link")

    # First run: the one-time link creates the admin (and leaves the address bar without the token).
    page.goto(link)
    expect(page).to_have_url(re.compile(r"/setup$"))
    expect(page.get_by_label("Username")).to_be_focused()
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.screenshot(path=str(ARTIFACTS / "auth-setup.png"))
    page.get_by_test_id("setup-submit").click()

    # Log in with it.
    expect(page).to_have_url(re.compile(r"/login\?setup=done"))
    expect(page.get_by_test_id("auth-note")).to_contain_text("admin account was created")
    expect(page.get_by_label("Username")).to_have_value("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.screenshot(path=str(ARTIFACTS / "auth-login.png"))
    page.get_by_test_id("login-submit").click()
    expect(page).to_have_url(re.compile(r"/$"))
    page.wait_for_selector("body[data-ready='true']", state="attached")
    expect(page.get_by_test_id("user-name")).to_have_text("admin")
    cookie = next(c for c in context.cookies() if c["name"] == "skyframe_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert page.evaluate("document.cookie") == ""  # invisible to scripts

    # Upload a real clip through the page's file input.
    page.get_by_test_id("file-input").set_input_files(str(CLIP))
    card = page.get_by_test_id("upload-card").filter(has_text=CLIP.name).first
    expect(card).to_be_visible(timeout=120_000)
    listing = page.request.get("/api/uploads").json()
    assert [u["filename"] for u in listing["uploads"]] == [CLIP.name]
    page.screenshot(path=str(ARTIFACTS / "auth-signed-in.png"))

    # Log out: back to the login page; the app page and the API are closed again.
    page.get_by_test_id("logout-button").focus()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/login$"))
    assert not [c for c in context.cookies() if c["name"] == "skyframe_session"]
    page.goto(f"/#upload={listing['uploads'][0]['uploadId']}")
    expect(page).to_have_url(re.compile(r"/login(\?|#|$)"))
    expect(page.get_by_test_id("login-submit")).to_be_visible()
    assert page.request.get("/api/uploads").status == 401

    context.close()
    assert not errors, "console errors:\n" + "\n".join(errors)
