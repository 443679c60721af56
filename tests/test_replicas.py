"""Two app processes (`python app.py`) on one PostgreSQL database and one shared data folder, as behind a
reverse proxy: an account made on one signs in on the other, and an admin's model switch on one is
served by the other within a few seconds. Real servers, driven with the real gradio_client."""
import os
import shutil
import socket
import subprocess
import sys
import time

import httpx
import pytest

from conftest import EXAMPLES, EXPORTED, PROJECT_ROOT
from db_fixtures import fresh_postgres_database

ADMIN = ("admin", "admin-password-123")
NEW_USER = ("dave", "dave-password-123")
SWITCH_WITHIN = 5.0  # seconds the second replica may take to serve a version switched on the first


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(data_dir, database_url: str, name: str) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "CIFAKE_DATA_DIR": str(data_dir), "CIFAKE_DATABASE_URL": database_url,
           "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1", "CIFAKE_ADMIN_USER": ADMIN[0],
           "CIFAKE_ADMIN_PASSWORD": ADMIN[1], "CIFAKE_WARMUP": "0", "PYTHONUNBUFFERED": "1",
           "CIFAKE_SHUTDOWN_SECONDS": "2"}
    log = open(data_dir.parent / f"{name}.log", "w")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}/"


def _wait_until_up(process: subprocess.Popen, url: str, log_path) -> None:
    deadline = time.time() + 600  # a busy shared machine starts slowly (minutes under a niced load)
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited:\n{log_path.read_text()}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not start in 600 s:\n{log_path.read_text()}")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    """Two replicas started at the same moment (both migrate the new database: one waits for the other)."""
    root = tmp_path_factory.mktemp("replicas")
    shared = root / "data"
    (shared / "models").mkdir(parents=True)
    shutil.copytree(EXPORTED, shared / "models" / "v2", ignore=shutil.ignore_patterns("report"))  # a 2nd version
    with fresh_postgres_database() as database_url:
        started = [_start(shared, database_url, name) for name in ("replica_a", "replica_b")]
        try:
            for (process, url), name in zip(started, ("replica_a", "replica_b")):
                _wait_until_up(process, url, root / f"{name}.log")
            yield [url for _, url in started], database_url
        finally:
            for process, _ in started:
                process.terminate()
            for process, _ in started:
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()


def _client(url: str, auth: tuple[str, str]):
    from gradio_client import Client

    return Client(url, auth=auth, verbose=False, httpx_kwargs={"timeout": 120})  # a busy machine answers slowly


def test_a_user_created_on_one_replica_signs_in_on_the_other(replicas):
    (first, second), _ = replicas
    _client(first, ADMIN).predict(*NEW_USER, "user", api_name="/admin_create_user")
    on_second = _client(second, NEW_USER)
    verdict, *_ = on_second.predict(_file(), api_name="/predict")
    assert verdict
    history_on_first = _client(first, NEW_USER).predict(api_name="/history")
    assert [row["username"] for row in history_on_first] == [NEW_USER[0]]  # made on B, seen on A


def test_a_model_switch_on_one_replica_is_served_by_the_other(replicas):
    (first, second), database_url = replicas
    user_on_second = _client(second, ADMIN)
    assert _served_version(user_on_second) == 1
    message, _ = _client(first, ADMIN).predict(2, api_name="/admin_activate")
    assert "v2 is now serving" in message
    deadline = time.monotonic() + SWITCH_WITHIN
    while _served_version(user_on_second) != 2:
        assert time.monotonic() < deadline, f"replica B still serves v1 {SWITCH_WITHIN} s after the switch on A"
        time.sleep(0.2)
    import sqlalchemy as sa

    from webapp.state import read_state

    engine = sa.create_engine(database_url)
    assert read_state(engine, "active_model")["version"] == 2  # the switch is recorded in the database
    engine.dispose()


def _file():
    from gradio_client import handle_file

    return handle_file(str(EXAMPLES / "fake_169_6.jpg"))


def _served_version(client) -> int:
    """Classify a picture, then read the model version the server recorded for it."""
    client.predict(_file(), api_name="/predict")
    return client.predict(api_name="/history")[0]["model_version"]
