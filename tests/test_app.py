"""The real app: `python app.py` on a free port with a real SQLite file, driven with gradio_client."""
import os
import socket
import subprocess
import sys
import time
import zipfile

import httpx
import pytest

from conftest import EXPORTED, PROJECT_ROOT

ADMIN = ("admin", "admin-password-123")
USER = ("alice", "alice-password-123")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir, port: int, extra_env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "CIFAKE_DATA_DIR": str(data_dir), "GRADIO_SERVER_PORT": str(port),
           "GRADIO_SERVER_NAME": "127.0.0.1", "CIFAKE_ADMIN_USER": ADMIN[0], "CIFAKE_ADMIN_PASSWORD": ADMIN[1],
           "PYTHONUNBUFFERED": "1", **(extra_env or {})}
    log = open(data_dir / "server.log", "w")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError("app.py exited:\n" + (data_dir / "server.log").read_text())
        try:
            if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code < 500:
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("app.py did not start in 120 s:\n" + (data_dir / "server.log").read_text())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("appdata")
    port = _free_port()
    process = start_server(data_dir, port)
    from webapp.store import Store

    Store(folder=data_dir).create_user(*USER)
    yield f"http://127.0.0.1:{port}/", data_dir
    process.terminate()
    process.wait(30)


def client_for(url, auth):
    from gradio_client import Client

    return Client(url, auth=auth, verbose=False)


@pytest.fixture(scope="module")
def user_client(server):
    return client_for(server[0], USER)


def test_login_with_the_right_password(server):
    client = client_for(server[0], ADMIN)
    assert "/predict" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]


def test_login_with_a_wrong_password_is_refused(server):
    response = httpx.post(server[0] + "login", data={"username": USER[0], "password": "wrong-password"})
    assert response.status_code == 400 and "Incorrect credentials" in response.text
    with pytest.raises(Exception):
        client_for(server[0], (USER[0], "wrong-password"))


def test_repeated_failures_lock_the_account_even_for_the_right_password(server):
    from webapp.store import Store

    Store(folder=server[1]).create_user("mallory", "mallory-password-1")
    for _ in range(5):
        assert httpx.post(server[0] + "login", data={"username": "mallory", "password": "guess"}).status_code == 400
    locked = httpx.post(server[0] + "login", data={"username": "mallory", "password": "mallory-password-1"})
    assert locked.status_code == 400


def test_api_is_closed_without_login(server):
    from gradio_client import Client

    with pytest.raises(Exception):
        Client(server[0], verbose=False).predict(api_name="/history")


@pytest.mark.parametrize("label", ["FAKE", "REAL"])
def test_predict_returns_the_models_verdict(user_client, sample_paths, classifier, label):
    from gradio_client import handle_file

    path = sample_paths[label][0]
    verdict, probability, confidence, explanation = user_client.predict(handle_file(str(path)), api_name="/predict")
    expected = classifier.predict(path)
    assert verdict == expected.label
    assert probability == pytest.approx(expected.p_fake, abs=1e-5)
    assert confidence == pytest.approx(expected.confidence, abs=1e-5)
    assert "P(AI-generated)" in explanation


def test_predict_with_heatmap_returns_an_overlay(user_client, sample_paths):
    from gradio_client import handle_file
    from PIL import Image

    result = user_client.predict(handle_file(str(sample_paths["FAKE"][1])), "HiResCAM", api_name="/predict_heatmap")
    label, probability, confidence, explanation, overlay, report = result
    assert label in ("REAL", "FAKE", "UNCERTAIN") and "heatmap" in explanation
    assert Image.open(overlay).size[0] >= 128


def test_a_text_file_gets_a_readable_error(user_client, tmp_path):
    from gradio_client import handle_file

    fake = tmp_path / "notes.jpg"
    fake.write_text("not an image")
    with pytest.raises(Exception, match="not a picture"):
        user_client.predict(handle_file(str(fake)), api_name="/predict")


def test_history_records_the_calls(user_client, sample_paths):
    from gradio_client import handle_file

    before = len(user_client.predict(api_name="/history"))
    user_client.predict(handle_file(str(sample_paths["REAL"][1])), api_name="/predict")
    history = user_client.predict(api_name="/history")
    assert len(history) == before + 1
    assert history[0]["username"] == USER[0] and history[0]["file_name"] == sample_paths["REAL"][1].name
    assert {h["username"] for h in history} == {USER[0]}


@pytest.mark.parametrize("endpoint", ["/admin_users", "/admin_model", "/admin_feedback", "/admin_retrain_status"])
def test_non_admin_is_refused_by_admin_endpoints(user_client, endpoint):
    with pytest.raises(Exception, match="Only administrators"):
        user_client.predict(api_name=endpoint)


def test_non_admin_cannot_create_users_or_switch_models(user_client):
    with pytest.raises(Exception, match="Only administrators"):
        user_client.predict("eve", "eve-password-123", "admin", api_name="/admin_create_user")
    with pytest.raises(Exception, match="Only administrators"):
        user_client.predict(1, api_name="/admin_activate")


def test_admin_sees_users_and_model_metrics(server):
    admin = client_for(server[0], ADMIN)
    users = admin.predict(api_name="/admin_users")
    names = [row[0] for row in users["data"]]
    assert ADMIN[0] in names and USER[0] in names
    summary, metrics, plots = admin.predict(api_name="/admin_model")
    assert "Model v1" in summary and len(metrics["data"]) >= 2


def test_batch_returns_a_csv(user_client, sample_paths, tmp_path):
    from gradio_client import handle_file

    archive = tmp_path / "batch.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sample_paths["REAL"][:2] + sample_paths["FAKE"][:2]:
            z.write(path, path.name)
        z.writestr("broken.jpg", b"nope")
    table, summary, csv_path = user_client.predict([handle_file(str(archive)), handle_file(str(sample_paths["FAKE"][3]))],
                                                   api_name="/batch")
    lines = open(csv_path).read().splitlines()
    assert lines[0] == "file,verdict,p_fake,confidence,band,error"
    assert len(lines) == 1 + 6
    assert "1 unreadable" in summary


def test_sqlite_file_holds_the_users_and_history(server):
    import sqlite3

    db = sqlite3.connect(server[1] / "cifake.sqlite3")
    assert db.execute("select count(*) from users where role='admin'").fetchone()[0] == 1
    assert db.execute("select count(*) from predictions").fetchone()[0] >= 1
    hashes = [row[0] for row in db.execute("select password_hash from users")]
    assert all(h.startswith("scrypt$") and ADMIN[1] not in h for h in hashes)


def test_first_start_without_a_password_generates_one_and_prints_it_once(tmp_path):
    port = _free_port()
    env = {"CIFAKE_ADMIN_PASSWORD": "", "CIFAKE_WARMUP": "0"}
    process = start_server(tmp_path, port, env)
    process.terminate()
    process.wait(30)
    log = (tmp_path / "server.log").read_text()
    assert "created admin 'admin' with password:" in log
    password = log.split("with password: ")[1].split()[0]
    assert len(password) >= 16
    from webapp.store import Store

    assert Store(folder=tmp_path).authenticate("admin", password)
    process = start_server(tmp_path, port, env)  # second start: no new password
    process.terminate()
    process.wait(30)
    assert "with password" not in (tmp_path / "server.log").read_text()


def test_self_registration_is_off_by_default(server):
    assert httpx.post(server[0] + "signup", data={"username": "newbie", "password": "newbie-password-1"}).status_code \
        in (404, 405)


def test_self_registration_when_enabled_creates_a_user_role(tmp_path):
    port = _free_port()
    process = start_server(tmp_path, port, {"CIFAKE_ALLOW_SIGNUP": "1", "CIFAKE_WARMUP": "0"})
    try:
        url = f"http://127.0.0.1:{port}/"
        short = httpx.post(url + "signup", data={"username": "newbie", "password": "short"})
        assert short.status_code == 400 and "at least" in short.text
        assert httpx.post(url + "signup", data={"username": "newbie", "password": "newbie-password-1"}).status_code == 200
        client = client_for(url, ("newbie", "newbie-password-1"))
        with pytest.raises(Exception, match="Only administrators"):
            client.predict(api_name="/admin_users")
    finally:
        process.terminate()
        process.wait(30)
