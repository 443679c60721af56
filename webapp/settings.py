"""The app's settings, read once from environment variables (README: Settings)."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace

from inference.model_card import PROJECT_ROOT


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
    failed_sign_in_delay: float = 0.5  # seconds before a refused sign-in is answered: a flood gets slow answers
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
        """Each field from its variable in ENV (README: Settings); unset or empty keeps the default."""
        values = {}
        for item in fields(cls):
            raw = os.environ.get(ENV[item.name], "").strip()
            if raw:
                values[item.name] = PARSE.get(item.name, TYPE_PARSE[item.type])(raw)
        if "trust_proxy" not in values and os.environ.get("SPACE_HOST"):
            values["trust_proxy"] = 1  # Spaces runs one proxy in front
        settings = cls(**values)
        if not settings.public_url:
            settings = replace(settings, public_url=f"http://{settings.host}:{settings.port}/")
        return settings


ENV = {  # field -> environment variable
    "data_dir": "CIFAKE_DATA_DIR", "database_url": "CIFAKE_DATABASE_URL", "host": "GRADIO_SERVER_NAME",
    "port": "GRADIO_SERVER_PORT", "public_url": "CIFAKE_PUBLIC_URL", "allow_signup": "CIFAKE_ALLOW_SIGNUP",
    "smtp_url": "CIFAKE_SMTP_URL", "secret_key": "CIFAKE_SECRET_KEY",
    "session_idle_minutes": "CIFAKE_SESSION_IDLE_MINUTES", "reset_link_minutes": "CIFAKE_RESET_LINK_MINUTES",
    "trust_proxy": "CIFAKE_TRUST_PROXY", "visitor_predictions_per_minute": "CIFAKE_VISITOR_PER_MINUTE",
    "registrations_per_hour": "CIFAKE_REGISTRATIONS_PER_HOUR", "messages_per_hour": "CIFAKE_MESSAGES_PER_HOUR",
    "login_address_budget": "CIFAKE_LOGIN_ADDRESS_BUDGET", "failed_sign_in_delay": "CIFAKE_FAILED_SIGN_IN_DELAY", "max_file_mb": "CIFAKE_MAX_FILE_MB",
    "upload_request_mb": "CIFAKE_UPLOAD_REQUEST_MB", "visitor_upload_mb_per_minute": "CIFAKE_VISITOR_UPLOAD_MB_PER_MINUTE",
    "cache_max_mb": "CIFAKE_CACHE_MAX_MB", "batch_max_files": "CIFAKE_BATCH_MAX_FILES",
    "zip_max_mb": "CIFAKE_ZIP_MAX_MB", "queue_size": "CIFAKE_QUEUE_SIZE",
    "classify_concurrency": "CIFAKE_CLASSIFY_CONCURRENCY", "ort_threads": "CIFAKE_ORT_THREADS",
    "eval_data": "CIFAKE_EVAL_DATA", "warm_up": "CIFAKE_WARMUP", "space_host": "SPACE_HOST",
    "shutdown_seconds": "CIFAKE_SHUTDOWN_SECONDS",
}
TYPE_PARSE = {"str": str, "str | None": str, "int": int, "float": float,
              "bool": lambda value: value.lower() in ("1", "true", "yes", "on")}
PARSE = {"trust_proxy": _proxy_hops, "warm_up": lambda value: value != "0"}
