"""CIFAKE detector — the web app. `python app.py` serves http://127.0.0.1:7860 with the shipped model.

Settings come from environment variables (README: Settings); the pages live in `webapp/pages/`.
"""
from __future__ import annotations

import os
import tempfile

for _name, _value in (("GRADIO_ANALYTICS_ENABLED", "False"), ("ORT_DISABLE_TELEMETRY", "1"),
                      ("HF_HUB_DISABLE_TELEMETRY", "1"), ("TF_CPP_MIN_LOG_LEVEL", "2")):
    os.environ.setdefault(_name, _value)
# Gradio's upload cache is content-addressed and swept (delete_cache): a cache shared with other Gradio
# processes on the machine would lose files they share when one of them sweeps or stops.
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="cifake-gradio-"))

import logging


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def configure_logging() -> None:
    """Warnings and errors only, ours and every library's; `CIFAKE_LOG_LEVEL=INFO` (or DEBUG) asks for
    the libraries' INFO lines too (Alembic's plugin set-up and each migration step at every start)."""
    level = os.environ.get("CIFAKE_LOG_LEVEL", "WARNING").upper()
    if level not in LOG_LEVELS:
        raise SystemExit(f"CIFAKE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}; got {level!r}.")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main() -> None:
    configure_logging()  # first: a wrong setting is named at once, before Gradio's seconds of imports
    from webapp.settings import Settings

    settings = Settings.from_env()
    from webapp.context import AppContext
    from webapp.server import create_app, serve
    from webapp.ui import build_app

    ctx = AppContext.create(settings)
    generated = ctx.service.store.ensure_admin()
    if generated:
        print(f"\n*** First start: created admin '{os.environ.get('CIFAKE_ADMIN_USER', 'admin')}' with password: "
              f"{generated}\n*** It is shown only this once; change it under Profile.\n", flush=True)
    if settings.warm_up:
        ctx.service.warm_up()
    demo = build_app(ctx)
    demo.queue(max_size=settings.queue_size, default_concurrency_limit=2)
    print(f"* Serving on http://{settings.host}:{settings.port}/", flush=True)
    serve(create_app(ctx, demo), settings)


if __name__ == "__main__":
    main()
