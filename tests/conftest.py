"""Shared fixtures. Tests make their own tiny data; a few real CIFAKE files ship in examples/."""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

for _name, _value in (("GRADIO_ANALYTICS_ENABLED", "False"), ("ORT_DISABLE_TELEMETRY", "1"),
                      ("HF_HUB_DISABLE_TELEMETRY", "1"), ("TF_CPP_MIN_LOG_LEVEL", "2"),
                      ("CUDA_VISIBLE_DEVICES", "")):
    os.environ.setdefault(_name, _value)

import numpy as np
import pytest
from PIL import Image

PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = PROJECT_ROOT / "examples"
EXPORTED = PROJECT_ROOT / "exported"
SHARED_CIFAKE = PROJECT_ROOT.parent / "shared" / "datasets" / "cifake"


def synthetic_image(label: int, rng: np.random.Generator) -> np.ndarray:
    """(32, 32, 3) uint8. REAL: noisy texture; FAKE: smooth gradients. Learnable in one epoch."""
    if label == 0:
        base = rng.integers(60, 200, (1, 1, 3))
        return np.clip(base + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:32, :32] / 31.0
    colour = rng.uniform(0, 255, (2, 3))
    image = colour[0] * xx[..., None] + colour[1] * yy[..., None]
    return np.clip(image * 0.6 + rng.normal(0, 3, (32, 32, 3)), 0, 255).astype(np.uint8)


def jpeg_bytes(pixels: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def write_tiny_cifake(root: Path, n_train: int = 160, n_test: int = 40, seed: int = 0,
                      duplicate: bool = True) -> Path:
    """A CIFAKE-layout folder: train/{REAL,FAKE}, test/{REAL,FAKE}; half of each class."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", n_train), ("test", n_test)):
        for label, cls in enumerate(("REAL", "FAKE")):
            folder = root / split / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count // 2):
                (folder / f"{i:04d}.jpg").write_bytes(jpeg_bytes(synthetic_image(label, rng)))
    if duplicate:  # one duplicate inside train/FAKE, one test/FAKE file leaked into train/FAKE
        (root / "train" / "FAKE" / "dup.jpg").write_bytes((root / "train" / "FAKE" / "0000.jpg").read_bytes())
        (root / "train" / "FAKE" / "leak.jpg").write_bytes((root / "test" / "FAKE" / "0000.jpg").read_bytes())
    return root


def zip_folder(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return target


@pytest.fixture(scope="session")
def tiny_cifake(tmp_path_factory) -> Path:
    return write_tiny_cifake(tmp_path_factory.mktemp("cifake") / "data")


@pytest.fixture(scope="session")
def tiny_cifake_zip(tiny_cifake, tmp_path_factory) -> Path:
    return zip_folder(tiny_cifake, tmp_path_factory.mktemp("zip") / "cifake.zip")


def write_tiny_offdomain(root: Path, per_source: int = 3, seed: int = 0) -> Path:
    """An offdomain-dev-layout folder (manifest.csv + pictures): 96x128 pictures from two photo sources
    and two generators the domain split counts as fitting sources, and one of each it holds out."""
    rng = np.random.default_rng(seed)
    rows = ["file,label,generator,repo,path,commit,licence,box,note"]
    sources = [("real", "", "cszn/KAIR"), ("real", "", "pjreddie/darknet"), ("real", "", "mdn/learning-area"),
               ("fake", "sd1", "CompVis/stable-diffusion"), ("fake", "ldm", "CompVis/latent-diffusion"),
               ("fake", "sd2", "Stability-AI/stablediffusion")]
    for label, generator, repo in sources:
        folder = root / ("real_photos" if label == "real" else f"fake_images/{generator}")
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_source):
            yy, xx = np.mgrid[:96, :128]
            waves = 127 + 100 * np.sin(xx[..., None] * rng.uniform(0.05, 0.5, 3) + yy[..., None] * rng.uniform(0, 0.3, 3))
            pixels = np.clip(waves + rng.normal(0, 20 if label == "real" else 2, waves.shape), 0, 255).astype(np.uint8)
            name = f"{repo.replace('/', '_')}_{i}.png"
            Image.fromarray(pixels).save(folder / name)
            rows.append(f"{folder.relative_to(root).as_posix()}/{name},{label},{generator},{repo},x,0,MIT,,")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="session")
def tiny_offdomain(tmp_path_factory) -> Path:
    return write_tiny_offdomain(tmp_path_factory.mktemp("offdomain"))


@pytest.fixture(scope="session")
def sample_paths() -> dict[str, list[Path]]:
    """Real CIFAKE test files committed in examples/: {"REAL": [...], "FAKE": [...]}."""
    return {"REAL": sorted(EXAMPLES.glob("real_*.jpg")), "FAKE": sorted(EXAMPLES.glob("fake_*.jpg"))}


@pytest.fixture(scope="session")
def classifier():
    from inference.classifier import Classifier

    return Classifier(EXPORTED)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Tests never write decoded caches into the project (or into ../shared)."""
    import training.data as data

    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "cache")


# Tests that start an app process, a browser, Ray, or train / export a network: `-m "not slow"` leaves them
# out for the inner loop; the README's command and `.ci/run` run everything.
SLOW_MODULES = {"test_app", "test_browser", "test_security", "test_replicas", "test_retrain", "test_train_export",
                "test_service", "test_model", "test_batch", "test_quiet"}
SLOW_TESTS = {"test_a_run_with_a_held_out_fold_never_trains_on_it"}


# The suite runs on pytest-xdist workers (pytest.ini). Tests that share a module-scoped fixture (an app
# server, a browser, a Ray cluster) run on one worker, so it starts once; every other test is scheduled on
# its own, which packs the workers better.
# xdist hands out the groups first, the largest first, then the single tests in collection order: of those the
# longest start first (pytest --durations=0; CIFAKE_TEST_TIMELINE below), the quick ones fill the gaps.
LONGEST_FIRST = ["test_security", "test_browser", "test_app", "test_train_export", "test_batch", "test_retrain",
                 "test_replicas", "test_inference", "test_model", "test_store"]


def _module(item) -> str:
    return item.module.__name__.rsplit(".", 1)[-1]


def _share_groups(items) -> dict:
    """item -> the name of its group: tests joined by the module-scoped fixtures they use (directly or
    through another fixture). Tests that use none are left out: they are scheduled one by one."""
    parent: dict = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    uses = {}
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        uses[item] = [f"{item.module.__name__}.{name}" for name, defs in (info.name2fixturedefs.items() if info else ())
                      if defs and defs[-1].scope == "module"]
        for one, other in zip(uses[item], uses[item][1:]):
            parent[root(one)] = root(other)
    return {item: root(keys[0]) for item, keys in uses.items() if keys}


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(config, items):
    """Marks first (xdist's own hook reads the groups); the order last, after pytest's reordering by shared
    fixtures, which would mix the modules again."""
    for item in items:
        if _module(item) in SLOW_MODULES or item.originalname in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
    for item, group in _share_groups(items).items():
        item.add_marker(pytest.mark.xdist_group(group))
    yield
    rank = {module: i for i, module in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(_module(item), len(rank)))  # stable


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """CIFAKE_TEST_TIMELINE=file: each worker appends when it ran which test, setup and teardown included,
    and the CPU seconds it took (its own, and its child processes' once they are reaped: an app server's
    count at the teardown that stops it), to see how the workers are packed and where the CPU goes."""
    import resource
    import time

    def cpu() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    started, cpu_before = time.time(), cpu()
    result = yield
    target = os.environ.get("CIFAKE_TEST_TIMELINE")
    if target:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with open(target, "a") as log:
            log.write(f"{worker}\t{started:.2f}\t{time.time():.2f}\t{cpu() - cpu_before:.2f}\t{item.nodeid}\n")
    return result
