"""Helpers for tests that run the real app: start `python app.py` on a free port, sign in as a
browser or as gradio_client does, and call any event (also the UI-only ones) over Gradio's HTTP API."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager

import httpx

from bench.load import stop_server
from conftest import PROJECT_ROOT

ADMIN = ("admin", "admin-password-123")
USER = ("alice", "alice-password-123")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir, port: int, extra_env: dict | None = None, log_name: str = "server.log") -> subprocess.Popen:
    env = {**os.environ, "CIFAKE_DATA_DIR": str(data_dir), "GRADIO_SERVER_PORT": str(port),
           "GRADIO_SERVER_NAME": "127.0.0.1", "CIFAKE_ADMIN_USER": ADMIN[0], "CIFAKE_ADMIN_PASSWORD": ADMIN[1],
           "PYTHONUNBUFFERED": "1", "CIFAKE_SHUTDOWN_SECONDS": "2",
           "CIFAKE_FAILED_SIGN_IN_DELAY": "0.05", **(extra_env or {})}  # the tests' many refusals wait less
    log = open(data_dir / log_name, "w")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    deadline = time.time() + 900  # a busy shared machine starts slowly
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError("app.py exited:\n" + (data_dir / log_name).read_text())
        try:
            if httpx.get(f"http://127.0.0.1:{port}/config", timeout=60).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("app.py did not start in 900 s:\n" + (data_dir / log_name).read_text())


@contextmanager
def running_app(data_dir, extra_env: dict | None = None, users: tuple = ()):
    """`python app.py` on a free port with these accounts ((name, password[, e-mail]), made after the
    start, as an admin would); yields (url, process) and stops the server afterwards."""
    port = free_port()
    process = start_server(data_dir, port, extra_env)
    try:
        from webapp.store import Store

        store = Store(folder=data_dir)
        for name, password, *email in users:
            store.create_user(name, password, **({"email": email[0]} if email else {}))
        store.engine.dispose()
        yield f"http://127.0.0.1:{port}/", process
    finally:
        stop_server(process)


def sign_in(url: str, name: str, password: str, local_address: str | None = None) -> httpx.Client:
    """An httpx client holding a session cookie (as gradio_client's auth= does); raises if refused."""
    transport = httpx.HTTPTransport(local_address=local_address) if local_address else None
    client = httpx.Client(base_url=url, transport=transport, timeout=60)
    client.get("/")  # the CSRF cookie a browser gets with the first page
    response = client.post("/login", data={"username": name, "password": password})
    if response.status_code != 200:
        raise PermissionError(f"sign-in refused ({response.status_code}): {response.text}")
    return client


def gradio_client(url: str, auth: tuple[str, str] | None = None, token: str | None = None):
    from gradio_client import Client

    headers = {"Authorization": f"Bearer {token}"} if token else None
    return Client(url, auth=auth, headers=headers, verbose=False, httpx_kwargs={"timeout": 900})


def call_event(http: httpx.Client, api_name: str, data: list, headers: dict | None = None,
               session: str | None = None, event_data: dict | None = None) -> tuple[bool, object]:
    """Run one event by its api_name (UI-only ones too) as `http`'s browser would. Events of one page
    load share `session` (gr.State lives there); `event_data` is what a select event sends (e.g. the index).

    Returns (True, output data) or (False, the error message shown to the user)."""
    config = http.get("/config").json()
    dependency = next(d for d in config["dependencies"] if d.get("api_name") == api_name)
    session = session or uuid.uuid4().hex[:11]
    join = http.post("/gradio_api/queue/join", headers=headers or {}, json={
        "data": data, "event_data": event_data, "fn_index": dependency["id"],
        "trigger_id": dependency["targets"][0][0], "session_hash": session})
    if join.status_code != 200:
        return False, f"HTTP {join.status_code}: {join.text}"
    with http.stream("GET", f"/gradio_api/queue/data?session_hash={session}", headers=headers or {}) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("msg") == "process_completed":
                output = message.get("output") or {}
                if message.get("success"):
                    return True, output.get("data")
                return False, output.get("error") or output.get("title") or "error"
    return False, "the stream ended without a result"


def upload(http: httpx.Client, path) -> dict:
    """Upload a file the way the browser does; returns the FileData an event takes."""
    from pathlib import Path

    path = Path(path)
    with open(path, "rb") as handle:
        response = http.post("/gradio_api/upload", files={"files": (path.name, handle)})
    response.raise_for_status()
    return {"path": response.json()[0], "orig_name": path.name, "meta": {"_type": "gradio.FileData"}}


class MailCatcher:
    """A real SMTP server on a free port (aiosmtpd) that keeps what it receives, for reset-link tests."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages: list[str] = []
        self.port = free_port()
        catcher = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                import email
                import email.policy

                message = email.message_from_bytes(envelope.content, policy=email.policy.default)
                catcher.messages.append(message.get_content())  # decoded (quoted-printable, ...)
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?from=cifake@example.org"

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()

    def wait_for_link(self, count: int = 1, timeout: float = 30.0) -> str:
        """The reset link in the `count`-th message (waits for it)."""
        import re

        deadline = time.time() + timeout
        while len(self.messages) < count and time.time() < deadline:
            time.sleep(0.2)
        assert len(self.messages) >= count, "no e-mail arrived"
        return re.search(r"http://\S+/reset\?token=\S+", self.messages[count - 1]).group(0)
