"""The web side's own package: `webapp/` (store, registry, service, users CLI, pages), kept apart from
the pure picture -> verdict code in `inference/`."""
import ast
import os
import subprocess
import sys

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
                                       cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)
    created = run("create", "carol")
    assert created.returncode == 0, created.stderr
    listed = run("list")
    assert "carol" in listed.stdout and "user" in listed.stdout
    assert run("create", "x").returncode == 2  # a bad user name is a clear error, not a traceback
