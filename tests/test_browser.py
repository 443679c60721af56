"""A real browser (Debian's chromium, driven by Playwright): log in, upload, see verdict and heatmap."""
import shutil
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT
from test_app import ADMIN, _free_port, start_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = PROJECT_ROOT / "examples" / "screenshots"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def browser_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("browserdata")
    port = _free_port()
    process = start_server(data_dir, port)
    yield f"http://127.0.0.1:{port}/"
    process.terminate()
    process.wait(30)


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        yield page
        browser.close()


def _login(page, url, username, password):
    page.goto(url)
    page.get_by_label("username").fill(username)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()


def test_wrong_password_shows_an_error(browser_server, page):
    _login(page, browser_server, ADMIN[0], "not-the-password")
    page.get_by_text("Incorrect credentials").wait_for(timeout=15000)


def test_login_upload_verdict_and_heatmap(browser_server, page, sample_paths):
    _login(page, browser_server, *ADMIN)
    page.locator("#analyse").wait_for(timeout=30000)
    page.get_by_text("Signed in as").first.wait_for(timeout=15000)
    page.locator("#upload input[type=file]").set_input_files(str(sample_paths["FAKE"][0]))
    page.wait_for_timeout(1000)
    page.locator("#analyse").click()
    verdict = page.locator("#verdict")
    verdict.get_by_text("Confidence").wait_for(timeout=30000)
    assert any(word in verdict.inner_text() for word in ("AI-generated", "Real photograph", "Uncertain"))
    page.locator("#heatmap img").wait_for(timeout=60000)
    page.locator("#explanation").get_by_text("evidence").wait_for(timeout=30000)
    SCREENSHOT.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT / "predict.png"), full_page=True)
    assert (SCREENSHOT / "predict.png").stat().st_size > 10_000


def test_admin_sees_the_admin_tabs(browser_server, page):
    page.get_by_role("tab", name="Admin · Model").click()
    page.get_by_role("button", name="Refresh").first.click()
    page.get_by_role("heading", name="Model v1").wait_for(timeout=30000)
    page.screenshot(path=str(SCREENSHOT / "admin_model.png"), full_page=True)


def test_admin_retraining_page_lists_versions(browser_server, page):
    page.get_by_role("tab", name="Admin · Retraining").click()
    page.get_by_role("button", name="Refresh status").click()
    page.get_by_text("Retraining:").wait_for(timeout=30000)
    page.wait_for_timeout(1000)  # let the versions table render
    assert "shipped model" in page.content()
    page.screenshot(path=str(SCREENSHOT / "admin_retraining.png"), full_page=True)
