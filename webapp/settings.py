"""The app's settings, read once from environment variables (README: Settings)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from inference.model_card import PROJECT_ROOT


def _flag(name: str, default: str) -> bool:
    return os.environ.get(name, default).strip().lower() in ("1", "true", "yes", "on")


def _proxy_hops(value: str) -> int:
    """CIFAKE_TRUST_PROXY: a number of proxies, or a flag (on = one proxy)."""
    value = value.strip().lower()
    return int(value) if value.isdigit() else int(value in ("true", "yes", "on"))


@dataclass(frozen=True)
class Settings:
    data_dir: str = str(PROJECT_ROOT / "data")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 7860
    public_url: str = ""  # where e-mailed links point; default http://host:port/
    allow_signup: bool = True  # CIFAKE_ALLOW_SIGNUP=0 closes registration (admins create accounts)
    smtp_url: str = ""  # smtp[s]://user:password@host:port?from=...&starttls=1; empty hides "Forgot password?"
    secret_key: str = ""  # signs cookies; default: a random key kept in the data folder
    session_idle_minutes: float = 120.0  # a session unused this long ends
    reset_link_minutes: float = 30.0
    trust_proxy: int = 0  # proxies in front of the app (Spaces: 1); the client is the address the outermost one saw
    visitor_predictions_per_minute: int = 10  # per address, for visitors (nothing stored)
    registrations_per_hour: int = 5  # per address
    messages_per_hour: int = 5  # contact messages per address
    login_address_budget: int = 30  # failed sign-ins per address per 15 minutes
    max_file_mb: int = 20
    upload_request_mb: int = 200  # all files of one upload request of a signed-in user (a batch's files come in one)
    visitor_upload_mb_per_minute: int = 60  # upload bytes per visitor address per minute
    cache_max_mb: int = 2048  # Gradio's upload cache is swept down to this (oldest files first)
    batch_max_files: int = 500  # pictures per batch request
    zip_max_mb: int = 500  # bytes actually unpacked from one zip
    queue_size: int = 64
    classify_concurrency: int = 4
    # ONNX Runtime threads per model run. 1: requests run side by side (classify_concurrency of them), and
    # spinning intra-op threads of concurrent runs starved the event loop on 2 cores (bench/README.md).
    ort_threads: int = 1
    eval_data: str = str(PROJECT_ROOT.parent / "shared" / "datasets" / "cifake")
    warm_up: bool = True
    space_host: str = ""  # SPACE_HOST on Hugging Face Spaces: the only host allowed to frame the app
    # on SIGTERM, requests in flight get this long; then open streams (an idle gradio_client, a browser tab's
    # event stream) are closed instead of holding the stop for as long as they stay open
    shutdown_seconds: int = 10

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ.get
        host, port = env("GRADIO_SERVER_NAME", "127.0.0.1"), int(env("GRADIO_SERVER_PORT", "7860"))
        return cls(
            data_dir=env("CIFAKE_DATA_DIR", cls.data_dir), database_url=env("CIFAKE_DATABASE_URL") or None,
            host=host, port=port, public_url=env("CIFAKE_PUBLIC_URL", "") or f"http://{host}:{port}/",
            allow_signup=_flag("CIFAKE_ALLOW_SIGNUP", "1"), smtp_url=env("CIFAKE_SMTP_URL", ""),
            secret_key=env("CIFAKE_SECRET_KEY", ""),
            session_idle_minutes=float(env("CIFAKE_SESSION_IDLE_MINUTES", "120")),
            reset_link_minutes=float(env("CIFAKE_RESET_LINK_MINUTES", "30")),
            trust_proxy=_proxy_hops(env("CIFAKE_TRUST_PROXY", "1" if env("SPACE_HOST") else "0")),
            visitor_predictions_per_minute=int(env("CIFAKE_VISITOR_PER_MINUTE", "10")),
            registrations_per_hour=int(env("CIFAKE_REGISTRATIONS_PER_HOUR", "5")),
            messages_per_hour=int(env("CIFAKE_MESSAGES_PER_HOUR", "5")),
            login_address_budget=int(env("CIFAKE_LOGIN_ADDRESS_BUDGET", "30")),
            max_file_mb=int(env("CIFAKE_MAX_FILE_MB", "20")),
            upload_request_mb=int(env("CIFAKE_UPLOAD_REQUEST_MB", "200")),
            visitor_upload_mb_per_minute=int(env("CIFAKE_VISITOR_UPLOAD_MB_PER_MINUTE", "60")),
            cache_max_mb=int(env("CIFAKE_CACHE_MAX_MB", "2048")),
            batch_max_files=int(env("CIFAKE_BATCH_MAX_FILES", "500")),
            zip_max_mb=int(env("CIFAKE_ZIP_MAX_MB", "500")),
            queue_size=int(env("CIFAKE_QUEUE_SIZE", "64")),
            classify_concurrency=int(env("CIFAKE_CLASSIFY_CONCURRENCY", "4")),
            ort_threads=int(env("CIFAKE_ORT_THREADS", "1")),
            eval_data=env("CIFAKE_EVAL_DATA", cls.eval_data), warm_up=env("CIFAKE_WARMUP", "1") != "0",
            space_host=env("SPACE_HOST", ""), shutdown_seconds=int(env("CIFAKE_SHUTDOWN_SECONDS", "10")),
        )
