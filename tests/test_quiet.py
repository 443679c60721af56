"""`python app.py` starts without library INFO lines (Alembic's plugin set-up, its migration steps,
TensorFlow's C++ notices while the warm-up loads it) unless CIFAKE_LOG_LEVEL asks for them. A real server's
log through the warm-up: test_app.py::test_the_log_stays_quiet_through_the_warm_up_a_heatmap_and_refusals."""
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


def test_the_filter_drops_only_native_info_lines_and_passes_everything_else():
    code = ("import os, sys\n"
            "from inference.quiet import native_info_dropped\n"
            "with native_info_dropped():\n"
            "    os.write(2, b'I0000 00:00:1796287132.501433   15285 port.cc:153] oneDNN custom operations\\n')\n"
            "    os.write(2, b'To enable the following instructions: AVX2 FMA\\n')\n"
            "    print('a warning of ours', file=sys.stderr, flush=True)\n"
            "    os.write(2, b'E0000 00:00:1796287132.5 15285 x.cc:1] a native error\\n')\n"
            "print('after', file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.stderr == "a warning of ours\nE0000 00:00:1796287132.5 15285 x.cc:1] a native error\nafter\n"
