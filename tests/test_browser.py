"""A real browser (Debian's chromium, driven by Playwright) walks the product as people use it: a visitor
predicts, registers, signs in with the e-mail address, resets a forgotten password through the e-mailed
link, predicts, sees History, flags; the admin accepts the flag by clicking it and disables the user,
whose next request is refused.

Screenshots go to a temporary folder; to refresh the committed ones:
    CIFAKE_SCREENSHOTS=examples/screenshots .venv/bin/python -m pytest tests/test_browser.py
"""
import os
import shutil
from pathlib import Path

import pytest

from appserver import ADMIN, MailCatcher, free_port, start_server, stop_server
from conftest import PROJECT_ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD, NEW_PASSWORD = "orchid-velvet-42", "harbour-lantern-97"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = os.environ.get("CIFAKE_SCREENSHOTS")
    path = PROJECT_ROOT / folder if folder else tmp_path_factory.mktemp("screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("browserdata")
    port = free_port()
    with MailCatcher() as mail:
        process = start_server(data_dir, port, {"CIFAKE_SMTP_URL": mail.url,
                                                "CIFAKE_PUBLIC_URL": f"http://127.0.0.1:{port}/"})
        yield f"http://127.0.0.1:{port}/", mail
        stop_server(process)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser):
    """new_page(width, height) -> a page in a context of its own; every context is closed after the test
    (an open Gradio page keeps Chromium busy, which the rest of the suite would pay for)."""
    contexts = []

    def make(width: int, height: int):
        contexts.append(browser.new_context(viewport={"width": width, "height": height}))
        return contexts[-1].new_page()

    yield make
    for context in contexts:
        context.close()


def expect(locator):
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def _field(page, elem_id: str):
    return page.locator(f"#{elem_id}").locator("input, textarea").first


def _tab(page, name: str):
    page.get_by_role("tab", name=name).click(timeout=60000)


def _open(page, url: str, who: str = "Visitor"):
    """Load the app and wait until the server has said who is signed in (tabs are set by then)."""
    page.goto(url)
    page.locator("#header").get_by_text(who).wait_for(timeout=300000)


def _sign_in(page, url: str, name: str, password: str):
    _open(page, url)
    _tab(page, "Sign in")
    page.locator("#signin-form input[name=username]").fill(name)
    page.locator("#signin-form input[name=password]").fill(password)
    page.locator("#signin-form button").click()
    page.locator("#header").get_by_text("Signed in as").wait_for(timeout=300000)


def _analyse(page, picture: Path):
    """Upload a picture (it runs on upload) and wait for its card and its heatmap."""
    _tab(page, "Home")
    clear = page.locator("#upload").get_by_label("Clear")
    if clear.count():  # a picture is still there from the last analysis
        clear.first.click()
    page.locator("#upload input[type=file]").set_input_files(str(picture))
    page.locator("#verdict .verdict-file").get_by_text(picture.name).wait_for(timeout=120000)
    page.locator("#heatmap img").wait_for(timeout=300000)  # the first heatmap loads TensorFlow


def test_the_product_from_visitor_to_disabled_user(app, new_page, shots, sample_paths, tmp_path):
    url, mail = app
    user_page = new_page(1400, 1100)
    # a visitor predicts with a heatmap, without an account
    _open(user_page, url)
    _analyse(user_page, sample_paths["FAKE"][0])
    assert any(w in user_page.locator("#verdict").inner_text() for w in ("AI-generated", "Real photograph", "Uncertain"))
    user_page.locator("#details").get_by_text("Details").first.click()
    user_page.locator("#explanation").get_by_text("evidence").wait_for(timeout=30000)
    user_page.screenshot(path=str(shots / "predict.png"), full_page=True)

    # registers: every problem shows beside its field at once, then with every profile field it works
    _tab(user_page, "Register")
    _field(user_page, "reg-username").fill("carol")
    _field(user_page, "reg-password").fill(PASSWORD)
    _field(user_page, "reg-repeat").fill(PASSWORD + "x")
    user_page.locator("#reg-submit").click()
    user_page.locator("#reg-fullname-error").get_by_text("full name").wait_for(timeout=60000)
    user_page.locator("#reg-repeat-error").get_by_text("differ").wait_for(timeout=10000)
    assert "full name" in user_page.locator("#reg-email-error").inner_text() or \
        "e-mail" in user_page.locator("#reg-email-error").inner_text()
    assert _field(user_page, "reg-age").input_value() == ""  # optional, and not pre-filled with 0
    for elem_id, value in (("reg-username", "carol"), ("reg-fullname", "Carol Example"),
                           ("reg-email", "carol@example.org"), ("reg-mobile", "+44 7700 900456"), ("reg-age", "41"),
                           ("reg-address", "2 Browser Lane"), ("reg-password", PASSWORD), ("reg-repeat", PASSWORD)):
        _field(user_page, elem_id).fill(value)
    user_page.locator("#reg-picture input[type=file]").set_input_files(str(sample_paths["REAL"][0]))
    user_page.wait_for_timeout(1000)
    user_page.screenshot(path=str(shots / "register.png"), full_page=True)
    user_page.locator("#reg-submit").click()
    user_page.locator("#header").get_by_text("Signed in as").wait_for(timeout=120000)  # signed in at once

    # signs in with the e-mail address, then forgets the password and resets it through the e-mailed link
    user_page.locator("#signout-top").click()
    user_page.locator("#header").get_by_text("Visitor").wait_for(timeout=300000)
    _sign_in(user_page, url, "carol@example.org", PASSWORD)
    user_page.locator("#signout-top").click()
    user_page.locator("#header").get_by_text("Visitor").wait_for(timeout=300000)
    _tab(user_page, "Sign in")
    user_page.get_by_role("link", name="Forgot password?").click()
    user_page.locator("input[name=username]").fill("carol@example.org")
    user_page.get_by_role("button", name="Send me a reset link").click()
    user_page.get_by_text("reset link is on its way").wait_for(timeout=30000)
    user_page.goto(mail.wait_for_link())
    user_page.locator("input[name=password]").fill(NEW_PASSWORD)
    user_page.locator("input[name=repeat]").fill(NEW_PASSWORD)
    user_page.get_by_role("button", name="Set the new password").click()
    user_page.get_by_text("is changed").wait_for(timeout=30000)
    _sign_in(user_page, url, "carol@example.org", NEW_PASSWORD)
    for visitors_only in ("Sign in", "Register"):  # signed in: the visitor's tabs are gone
        expect(user_page.get_by_role("tab", name=visitors_only)).to_have_count(0)

    # predicts, sees the prediction in History at once, flags it
    _analyse(user_page, sample_paths["FAKE"][1])
    _tab(user_page, "History")
    expect(user_page.locator("#history-table")).to_contain_text(sample_paths["FAKE"][1].name, timeout=120000)
    user_page.screenshot(path=str(shots / "history.png"), full_page=True)
    _tab(user_page, "Home")
    user_page.locator("#say-real").click()
    user_page.locator("#feedback-msg").get_by_text("Thanks").wait_for(timeout=30000)
    _tab(user_page, "History")  # the flag's status, confidences in %, a click reopens the result
    expect(user_page.locator("#history-table")).to_contain_text("waiting for review", timeout=120000)
    expect(user_page.locator("#history-table")).to_contain_text(" %")
    user_page.locator("#history-table").get_by_text(sample_paths["FAKE"][1].name).locator("visible=true").first.click()
    user_page.locator("#history-reopened .verdict-label").wait_for(timeout=30000)
    assert user_page.locator("#history-reopened img").evaluate("img => img.naturalWidth") == 32
    _tab(user_page, "Profile")  # an API token is revoked from its own row, no id to type
    user_page.get_by_text("API tokens (for gradio_client)").click()
    user_page.get_by_label("What the token is for").fill("laptop script")
    user_page.get_by_role("button", name="Create token").click()
    user_page.locator("#token-shown").get_by_text("cft_").wait_for(timeout=30000)
    user_page.locator("#tokens-table").get_by_text("laptop script").locator("visible=true").first.click()
    user_page.locator("#token-revoke").click()
    user_page.locator("#token-shown").get_by_text("revoked").wait_for(timeout=30000)

    # the admin signs in, sees the flag, accepts it by clicking, and disables the user
    admin_page = new_page(1400, 1100)
    _sign_in(admin_page, url, *ADMIN)
    _tab(admin_page, "Admin · Retraining")
    admin_page.locator("#flags-gallery img").first.click(timeout=60000)
    admin_page.locator("#flag-selected").get_by_text("carol says REAL").wait_for(timeout=30000)
    assert sample_paths["FAKE"][1].name in admin_page.locator("#flag-selected").inner_text()  # which picture
    assert "model said" in admin_page.locator("#flag-selected").inner_text()
    admin_page.screenshot(path=str(shots / "admin_retraining.png"), full_page=True)
    admin_page.locator("#flag-accept").click()
    expect(admin_page.locator("#feedback-table")).to_contain_text("accepted", timeout=120000)
    admin_page.locator("#retrain-ask").click()  # retraining says what it would learn from and asks first
    expect(admin_page.locator("#retrain-confirm-text")).to_contain_text("on 1 accepted picture (1 REAL, 0 FAKE)",
                                                                         timeout=30000)
    admin_page.locator("#retrain-back").click()
    expect(admin_page.locator("#retrain-confirm")).to_be_hidden(timeout=30000)
    expect(admin_page.locator("#retrain-status")).not_to_contain_text("running")
    _tab(admin_page, "Admin · Model")  # whether the test data is there is said before any click
    expect(admin_page.locator("#model-data-check")).to_contain_text("Test data", timeout=30000)
    _tab(admin_page, "Admin · Users")
    expect(admin_page.locator("#users-table")).to_contain_text("2 Browser Lane", timeout=60000)  # whole profile
    admin_page.locator("#users-table").get_by_text("carol", exact=True).first.click()  # a click selects
    admin_page.locator("#users-selected").get_by_text("carol").wait_for(timeout=30000)
    assert _field(admin_page, "admin-username").input_value() == "carol"
    admin_page.once("dialog", lambda dialog: dialog.dismiss())  # asked first: declined, nothing happens
    admin_page.locator("#admin-disable").click()
    admin_page.wait_for_timeout(1500)
    expect(admin_page.locator("#users-table")).not_to_contain_text("disabled")
    _field(admin_page, "admin-username").fill("CAROL")  # any case, as at registration
    admin_page.once("dialog", lambda dialog: dialog.accept())
    admin_page.locator("#admin-disable").click()
    admin_page.locator("#users-msg").get_by_text("carol disabled").wait_for(timeout=30000)
    admin_page.screenshot(path=str(shots / "admin_users.png"), full_page=True)

    # the user's next request is refused
    _tab(user_page, "Batch")
    user_page.locator("#batch-files input[type=file]").set_input_files(str(sample_paths["REAL"][1]))
    user_page.wait_for_timeout(1000)
    user_page.get_by_role("button", name="Classify all").click()
    user_page.get_by_text("Please sign in.").first.wait_for(timeout=30000)
    assert (shots / "predict.png").stat().st_size > 10_000


def _pictures_by_band(tmp_path) -> dict[str, Path]:
    """One committed CIFAKE picture the shipped model calls confident, one leaning, one uncertain (the
    ONNX classifier decides, so the test follows the model), each copied under a neutral name."""
    from inference.classifier import Classifier

    clf, found = Classifier(), {}
    candidates = sorted((PROJECT_ROOT / "examples").glob("*.jpg")) + sorted(
        (PROJECT_ROOT / "examples" / "replay").rglob("*.jpg"))
    for path in candidates:
        band = clf.predict(str(path)).band
        if band not in found:
            found[band] = tmp_path / f"picture-{band}.jpg"
            shutil.copy(path, found[band])
        if len(found) == 3:
            break
    return found


def _expected_card(prediction) -> tuple[str, str]:
    from webapp.views import verdict_parts

    headline, confidence, _ = verdict_parts(prediction)
    return headline, confidence


@pytest.mark.parametrize("viewport", [(1280, 900), (390, 844)], ids=["desktop", "phone"])
def test_the_result_card_says_one_thing_and_is_in_view(app, new_page, shots, tmp_path, viewport):
    from inference.classifier import Classifier

    url, _ = app
    width, height = viewport
    page = new_page(width, height)
    _open(page, url)
    clf = Classifier()
    for band, picture in _pictures_by_band(tmp_path).items():
        prediction = clf.predict(str(picture))
        _analyse(page, picture)
        card = page.locator("#verdict .result-card")
        assert card.get_attribute("data-band") == band and card.get_attribute("data-label") == prediction.label
        headline, confidence = _expected_card(prediction)
        assert card.locator(".verdict-label").inner_text() == headline
        assert card.locator(".verdict-confidence").inner_text() == confidence
        if band == "uncertain":  # says why, no percentage that reads like certainty
            assert "%" not in confidence
        else:
            assert f"{prediction.confidence * 100:.0f} %" in confidence
        assert card.locator("img.result-picture").evaluate("img => img.naturalWidth") > 0
        box = card.bounding_box()
        assert box is not None and 0 <= box["y"] and box["y"] + 40 <= height, f"{band}: card at {box}"
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # nothing pushes the page sideways
        page.screenshot(path=str(shots / f"card_{band}_{width}.png"))


def test_the_sign_in_form_is_visible_and_a_wrong_password_comes_back_with_the_name_kept(app, new_page):
    url, _ = app
    page = new_page(1280, 900)
    _open(page, url)
    _tab(page, "Sign in")
    name = page.locator("#signin-form input[name=username]")
    border = name.evaluate("e => parseFloat(getComputedStyle(e).borderTopWidth)")
    box = name.bounding_box()
    assert border >= 1 and box["height"] >= 30 and box["width"] >= 200, (border, box)
    name.fill("nobody-here")
    page.locator("#signin-form input[name=password]").fill("not-the-password")
    page.locator("#signin-form button").click()
    page.locator("#signin-error").get_by_text("Wrong user name").wait_for(timeout=60000)
    assert page.locator("#signin-form input[name=username]").input_value() == "nobody-here"
    assert "/login" not in page.url  # back in the styled app, not a bare page


def test_the_header_buttons_open_sign_in_and_register_on_a_phone(app, new_page):
    url, _ = app
    page = new_page(390, 844)
    _open(page, url)
    page.locator("#header-register").click()
    _field(page, "reg-username").wait_for(timeout=60000)
    assert _field(page, "reg-username").is_visible()
    page.locator("#header-signin").click()
    page.locator("#signin-form input[name=username]").wait_for(timeout=60000)
