"""Arrows point one way: training -> exported artifacts -> inference -> webapp, with the jobs both sides
need (evaluation, retraining) in packages of their own. Every import of every module, top-level or
inside a function, is read with `ast` and checked against the allowed directions below."""
import ast

import pytest

from conftest import PROJECT_ROOT

# package -> the packages of ours it may import (besides itself); None: anything (benchmarks)
ALLOWED = {
    "inference": set(),
    "evaluation": {"inference"},
    "training": {"inference", "evaluation"},
    "retraining": {"training", "evaluation", "inference"},
    "webapp": {"inference", "evaluation", "retraining"},
    "app": {"webapp"},
    "bench": None,
}
NOT_PACKAGES = {"tests", "examples", "exported", "docs"}


def _our_packages() -> set[str]:
    folders = {p.parent.name for p in PROJECT_ROOT.glob("*/__init__.py")} - NOT_PACKAGES
    return folders | {p.stem for p in PROJECT_ROOT.glob("*.py")}


def _modules(package: str) -> list:
    if (PROJECT_ROOT / f"{package}.py").is_file():
        return [PROJECT_ROOT / f"{package}.py"]
    return sorted((PROJECT_ROOT / package).rglob("*.py"))


def _imported_packages(path) -> set[str]:
    """Top-level names of every absolute import in the file (relative ones stay inside its package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_package_has_a_place_in_the_import_rules():
    assert _our_packages() == set(ALLOWED), "add the new package to ALLOWED with the packages it may import"


@pytest.mark.parametrize("package", sorted(p for p, allowed in ALLOWED.items() if allowed is not None))
def test_package_imports_only_what_lies_below_it(package):
    ours = set(ALLOWED)
    wrong = {}
    for path in _modules(package):
        bad = (_imported_packages(path) & ours) - ALLOWED[package] - {package}
        if bad:
            wrong[str(path.relative_to(PROJECT_ROOT))] = sorted(bad)
    assert not wrong, f"{package} may import only {sorted(ALLOWED[package]) or 'nothing of ours'}; found {wrong}"


def test_the_rules_have_no_cycle():
    """Each package's allowed imports lie strictly below it: no two packages may import each other."""
    def below(package, seen=()):
        if package in seen:
            raise AssertionError(f"cycle: {' -> '.join((*seen, package))}")
        for lower in ALLOWED[package] or ():
            below(lower, (*seen, package))

    for package, allowed in ALLOWED.items():
        if allowed is not None:
            below(package)


def test_only_the_ui_imports_pages():
    """Shared helpers live in webapp/views.py (text), webapp/forms.py (forms) and webapp/actions.py
    (handlers), not in a page: no page imports another, and of the rest only webapp/ui.py (which renders
    the pages) imports one."""
    found = set()
    for path in sorted((PROJECT_ROOT / "webapp").rglob("*.py")):
        if path.name == "ui.py" or path.parent.name == "pages" and path.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("webapp.pages."):
                found.add((str(path.relative_to(PROJECT_ROOT)), node.module))
    assert not found, f"pages import other pages: {sorted(found)}"


def test_the_import_reader_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from training.data import load_cifake\n    import webapp.store\n")
    assert _imported_packages(module) == {"training", "webapp"}
