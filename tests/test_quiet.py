"""`python app.py` starts without library INFO lines (Alembic's plugin set-up, its migration steps)
unless CIFAKE_LOG_LEVEL asks for them."""
import os
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT

START = ("import sys, app\n"
         "app.configure_logging()\n"
         "from webapp.store import Store\n"
         "Store(folder=sys.argv[1])\n")  # what start-up does first: open (and migrate) the database


def _start(tmp_path, **env):
    return subprocess.run([sys.executable, "-c", START, str(tmp_path / "data")], cwd=PROJECT_ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300)


def test_start_up_prints_no_library_info_lines(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "CIFAKE_LOG_LEVEL"}
    result = subprocess.run([sys.executable, "-c", START, str(tmp_path / "data")], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and result.stdout == ""


def test_log_level_info_shows_the_migrations(tmp_path):
    result = _start(tmp_path, CIFAKE_LOG_LEVEL="info")
    assert result.returncode == 0, result.stderr
    assert "INFO alembic.runtime.migration: Running upgrade" in result.stderr


@pytest.mark.parametrize("level", ["LOUD", "5"])
def test_an_unknown_log_level_is_named(tmp_path, level):
    result = _start(tmp_path, CIFAKE_LOG_LEVEL=level)
    assert result.returncode == 1 and f"CIFAKE_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR; got {level!r}" \
        in result.stderr
