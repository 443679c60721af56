"""The web side's own package: `webapp/` (store, registry, service, users CLI, pages), kept apart from
the pure picture -> verdict code in `inference/`."""
import ast
import os
import subprocess
import sys
import time

from conftest import PROJECT_ROOT


def _imported_modules(path) -> list[str]:
    tree = ast.parse(path.read_text())
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(node.module or "")
    return names


def test_inference_imports_nothing_of_the_web_side():
    for path in (PROJECT_ROOT / "inference").rglob("*.py"):
        web = [n for n in _imported_modules(path) if n.split(".")[0] in ("webapp", "app", "gradio", "fastapi")]
        assert not web, f"{path.relative_to(PROJECT_ROOT)} imports {web}"


def test_users_cli_creates_and_lists_accounts(tmp_path):
    env = {**os.environ, "CIFAKE_PASSWORD": "carol-password-123"}
    run = lambda *args: subprocess.run([sys.executable, "-m", "webapp.users", "--data-dir", str(tmp_path), *args],  # noqa: E731
                                       cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600)
    created = run("create", "carol")
    assert created.returncode == 0, created.stderr
    listed = run("list")
    assert "carol" in listed.stdout and "user" in listed.stdout
    assert run("create", "x").returncode == 2  # a bad user name is a clear error, not a traceback


# -- the parts behind the pages, without a server ------------------------------------------------------
def test_result_files_older_than_their_age_are_swept(tmp_path):
    from webapp.context import TempFiles

    temp = TempFiles(max_age=60)
    old, new = temp.write(b"old", ".csv"), temp.write(b"new", ".csv")
    os.utime(old, (0, 0))
    assert temp.sweep(force=True) == 1
    assert not os.path.exists(old) and os.path.exists(new)


def test_gradio_cache_is_swept_too():
    from webapp.ui import CACHE_SWEEP

    assert CACHE_SWEEP[0] > 0 and CACHE_SWEEP[1] > 0  # passed to gr.Blocks(delete_cache=...)
    assert "delete_cache=CACHE_SWEEP" in (PROJECT_ROOT / "webapp" / "ui.py").read_text()


def test_rate_limiter_allows_the_limit_then_says_how_long_to_wait():
    from webapp.limits import RateLimiter

    limiter = RateLimiter(2, 60.0)
    assert [limiter.wait_time("a", now=0), limiter.wait_time("a", now=1)] == [0.0, 0.0]
    assert limiter.wait_time("a", now=2) == 58.0
    assert limiter.wait_time("b", now=2) == 0.0  # another address is not affected
    assert limiter.wait_time("a", now=61) == 0.0



def test_byte_budget_counts_bytes_per_address_in_a_sliding_minute():
    from webapp.limits import ByteBudget

    budget = ByteBudget(1000, 60.0)
    assert [budget.charge("a", 600, now=0), budget.charge("a", 400, now=1)] == [0.0, 0.0]
    assert budget.charge("a", 1, now=2) == 58.0  # over: wait until the first charge leaves the window
    assert budget.charge("b", 1000, now=2) == 0.0
    assert budget.charge("a", 500, now=61.5) == 0.0  # the first two charges left the window


def test_upload_cache_sweep_deletes_the_oldest_uploads_down_to_its_size(tmp_path):
    from webapp.uploads import sweep_uploads

    uploads = set()
    for age, name in ((300, "old"), (200, "middle"), (100, "new")):
        path = tmp_path / name / "picture.jpg"
        path.parent.mkdir()
        path.write_bytes(bytes(1000))
        os.utime(path, (time.time() - age, time.time() - age))
        uploads.add(str(path))
    (tmp_path / "example.jpg").write_bytes(bytes(1000))  # not an upload: never swept
    assert sweep_uploads(tmp_path, 2500, uploads) == 2000
    assert sorted(p.parent.name for p in tmp_path.rglob("*.jpg")) == ["new", tmp_path.name]
    assert sweep_uploads(tmp_path, 2500, uploads) == 0


def test_behind_proxies_the_client_is_the_address_the_outermost_proxy_saw():
    from types import SimpleNamespace

    from webapp.auth import Auth
    from webapp.settings import _proxy_hops

    client = SimpleNamespace(host="10.0.0.1")
    forged = {"x-forwarded-for": "6.6.6.6, 203.0.113.7, 10.0.0.2"}  # the client wrote 6.6.6.6 itself
    assert Auth(None, b"k", trust_proxy=0).client_address(forged, client) == "10.0.0.1"
    assert Auth(None, b"k", trust_proxy=1).client_address(forged, client) == "10.0.0.2"
    assert Auth(None, b"k", trust_proxy=2).client_address(forged, client) == "203.0.113.7"
    assert Auth(None, b"k", trust_proxy=5).client_address(forged, client) == "6.6.6.6"  # fewer hops than proxies
    assert Auth(None, b"k", trust_proxy=1).client_address({}, client) == "10.0.0.1"
    assert [_proxy_hops(v) for v in ("0", "1", "true", "2", "off")] == [0, 1, 1, 2, 0]

def test_password_rules_name_the_problem():
    from webapp.store import password_problem

    assert "at least 10" in password_problem("short")
    assert "user name" in password_problem("Margaret-1", "margaret")
    assert "common" in password_problem("password123")
    assert "different" in password_problem("aaaaaaaaaa") or "common" in password_problem("aaaaaaaaaa")
    assert "different" in password_problem("abababababab")
    assert password_problem("harbour-lantern-97", "margaret") is None


def test_sign_in_delay_is_per_account_and_address(tmp_path):
    from webapp.auth import Auth, LoginPolicy, LoginRefused
    from webapp.store import Store

    store = Store(folder=tmp_path)
    store.create_user("margaret", "harbour-lantern-97", email="m@example.org")
    auth = Auth(store, b"k" * 32, policy=LoginPolicy(free_failures=2, address_budget=100))
    for _ in range(2):
        assert auth.sign_in("margaret", "wrong-password", "10.0.0.1") is None
    import pytest

    with pytest.raises(LoginRefused):
        auth.sign_in("margaret", "harbour-lantern-97", "10.0.0.1")  # that pair waits now ...
    assert auth.sign_in("M@example.org", "harbour-lantern-97", "10.0.0.2") == "margaret"  # ... others do not


def test_cookies_are_signed(tmp_path):
    from webapp.auth import Auth
    from webapp.store import Store

    auth = Auth(Store(folder=tmp_path), b"k" * 32)
    signed = auth.sign("token-value")
    assert auth.unsign(signed) == "token-value"
    assert auth.unsign(signed[:-1] + ("0" if signed[-1] != "0" else "1")) is None
    assert auth.unsign("token-value") is None


def test_zip_limits_count_the_bytes_actually_unpacked(tmp_path):
    import zipfile

    import pytest

    from inference.archive import ZipLimitError, ZipLimits, iter_zip_pictures

    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.jpg", bytes(3 * 2**20))
    with pytest.raises(ZipLimitError, match="zip bomb"):
        list(iter_zip_pictures(path, ZipLimits(max_ratio=10)))
    with pytest.raises(ZipLimitError, match="larger than 2 MB"):
        list(iter_zip_pictures(path, ZipLimits(max_entry_bytes=2 * 2**20, max_ratio=1e9)))
    assert [n for n, _ in iter_zip_pictures(path, ZipLimits(max_ratio=1e9))] == ["a.jpg"]


def test_csv_formulas_are_escaped():
    import io

    from inference.csvsafe import spreadsheet_safe, write_rows

    assert [spreadsheet_safe(v) for v in ("=1+1", "+1", "-1", "@A", "cat.jpg", 0.5)] == \
        ["'=1+1", "'+1", "'-1", "'@A", "cat.jpg", 0.5]
    buffer = io.StringIO()
    write_rows(buffer, ["file"], [["=HYPERLINK(1)"]])
    assert buffer.getvalue().splitlines() == ["file", "'=HYPERLINK(1)"]


def test_admin_pages_say_whether_the_test_split_is_there_before_the_click(tmp_path, tiny_cifake, tiny_cifake_zip):
    from types import SimpleNamespace

    from webapp.actions import official_test_check

    def check(where):
        return official_test_check(SimpleNamespace(settings=SimpleNamespace(eval_data=str(where))))

    assert check(tiny_cifake) == (True, f"**Test data ready:** 40 pictures (20 REAL, 20 FAKE) in `{tiny_cifake}`.")
    assert check(tiny_cifake_zip)[0]  # a zip holding test/REAL and test/FAKE
    missing, message = check(tmp_path / "nowhere")
    assert not missing and "Test data missing" in message and "nowhere" in message
    (tmp_path / "only-train" / "train" / "REAL").mkdir(parents=True)
    usable, message = check(tmp_path / "only-train")
    assert not usable and "test/REAL" in message


def test_old_failure_records_and_idle_sessions_are_pruned_at_most_once_a_minute(tmp_path):
    import sqlite3

    from webapp.auth import Auth
    from webapp.store import Store

    store = Store(folder=tmp_path)
    auth = Auth(store, b"k" * 32, idle_seconds=600)
    db = sqlite3.connect(tmp_path / "cifake.sqlite3")

    def age_rows():
        with db:
            db.executemany("insert into login_attempts (username, address, at) values (?, ?, ?)",
                           [("old", "10.0.0.1", 1000.0 + i) for i in range(50)])

    def old_rows() -> int:
        return db.execute("select count(*) from login_attempts where at < 2000").fetchone()[0]

    now = time.time()
    age_rows()
    auth.check_allowed("nobody", "127.0.0.5", now=now)
    assert old_rows() == 0  # the first check prunes
    age_rows()
    auth.check_allowed("nobody", "127.0.0.5", now=now + 30)
    assert old_rows() == 50  # not again within the minute
    auth.check_allowed("nobody", "127.0.0.5", now=now + 61)
    assert old_rows() == 0


def test_every_setting_has_its_variable_and_the_readme_names_each(monkeypatch):
    from dataclasses import fields

    from webapp.settings import ENV, Settings

    assert set(ENV) == {item.name for item in fields(Settings)}
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert [name for name in ENV.values() if f"`{name}`" not in readme] == []
    for name in ENV.values():
        monkeypatch.delenv(name, raising=False)
    for name, value in {"SPACE_HOST": "someone-cifake.hf.space", "CIFAKE_ALLOW_SIGNUP": "off", "CIFAKE_WARMUP": "0",
                        "CIFAKE_SESSION_IDLE_MINUTES": "0.25", "GRADIO_SERVER_PORT": "9999", "CIFAKE_SMTP_URL": ""}.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert (settings.trust_proxy, settings.allow_signup, settings.warm_up, settings.session_idle_minutes) == (1, False, False, 0.25)
    assert settings.public_url == "http://127.0.0.1:9999/" and settings.smtp_url == ""  # empty keeps the default
