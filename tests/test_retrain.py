"""Retraining: new labelled images the model gets wrong are learned, the gate guards the original
data, promotion and rollback switch the served verdict, and a killed worker leaves nothing behind."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import EXPORTED, PROJECT_ROOT


def _pattern_images(n: int, seed: int) -> np.ndarray:
    """A picture family unlike CIFAKE: coloured checkerboards with noise. (n, 32, 32, 3) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32]
    out = []
    for _ in range(n):
        size = rng.integers(3, 7)
        board = ((yy // size + xx // size) % 2)[..., None]
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        image = np.where(board, a, b) + rng.normal(0, 6, (32, 32, 3))
        out.append(np.clip(image, 0, 255).astype(np.uint8))
    return np.stack(out)


def _stripe_images(n: int, seed: int) -> np.ndarray:
    """Another family unlike CIFAKE: noisy two-colour stripes, vertical or diagonal. (n, 32, 32, 3) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32]
    out = []
    for _ in range(n):
        width, slant = rng.integers(2, 5), rng.integers(0, 2)
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        image = np.where(((xx + yy * slant) // width % 2)[..., None], a, b) + rng.normal(0, 8, (32, 32, 3))
        out.append(np.clip(image, 0, 255).astype(np.uint8))
    return np.stack(out)


def _wrong_set(classifier, n: int = 60, family=_pattern_images):
    """Synthetic pictures, labelled as the class the shipped model does NOT pick for most of them."""
    images = family(n, seed=1)
    p_fake, _ = classifier.run(images)
    majority = int((p_fake >= 0.5).mean() >= 0.5)  # what the model mostly says
    claimed = 1 - majority
    wrong = (p_fake >= 0.5).astype(int) != claimed
    return images[wrong], claimed


@pytest.fixture
def service(tmp_path):
    from webapp.service import DetectorService

    return DetectorService(tmp_path / "data")


def _add_labelled(service, images, label: int):
    from webapp.store import Store

    for i, pixels in enumerate(images):
        path = service.images_dir / f"new_{label}_{i}.png"
        Image.fromarray(pixels).save(path)
        service.store.add_feedback("admin", ("REAL", "FAKE")[label], str(path.relative_to(service.folder)),
                                   "upload", status="accepted")


@pytest.mark.timeout(900)
def test_retraining_fixes_new_mistakes_keeps_old_accuracy_and_switches_the_api(service, classifier):
    from inference.preprocess import preprocess_image
    from training.retrain import RetrainConfig, retrain

    wrong, claimed = _wrong_set(classifier, family=_stripe_images)
    assert len(wrong) >= 20
    _add_labelled(service, wrong, claimed)
    probe = _stripe_images(30, seed=99)  # unseen pictures of the same family
    before = ((classifier.run(probe)[0] >= 0.5).astype(int) == claimed).mean()

    metadata = retrain(service.folder, "admin", RetrainConfig(steps=300),
                       cifake="slice")
    gate = metadata["retraining"]["gate"]
    assert metadata["version"] == 2 and metadata["parent_version"] == 1
    assert gate["new_after"] > gate["new_before"]
    assert gate["original_after"] >= gate["original_before"] - gate["tolerance"]
    assert gate["passed"] and service.registry.active_version() == 2

    new_clf, version = service.classifier()
    assert version == 2
    after = ((new_clf.run(probe)[0] >= 0.5).astype(int) == claimed).mean()
    assert after >= 0.8 and after > before  # fixes most mistakes of this kind, also on unseen ones

    sample = wrong[0]
    assert service.classify(sample, "x").prediction.likely_label == ("REAL", "FAKE")[claimed]
    service.activate(1, "admin", "rollback")  # roll back: the shipped model's verdict returns
    assert service.classify(sample, "x").prediction.likely_label != ("REAL", "FAKE")[claimed]
    assert service.registry.active_version() == 1
    assert (EXPORTED / "model.json").exists() and not (service.registry.root / "v1").exists()


def test_gate_refuses_a_version_that_does_not_help(service, classifier, tmp_path):
    from training.retrain import RetrainConfig, retrain

    # labels the model already gets right: nothing to improve, so the new version must not be promoted
    images = _pattern_images(20, seed=5)
    p_fake, _ = classifier.run(images)
    for label in (0, 1):
        _add_labelled(service, images[(p_fake >= 0.5).astype(int) == label], label)
    if len(service.store.list_feedback("accepted")) < 4:
        pytest.skip("the model puts all pattern images in one class")
    metadata = retrain(service.folder, "admin", RetrainConfig(steps=5), cifake="slice")
    assert not metadata["retraining"]["gate"]["passed"]
    assert "not better" in metadata["retraining"]["gate"]["reason"]
    assert service.registry.active_version() == 1
    assert 2 in service.registry.versions()  # kept, not promoted


def test_killed_worker_leaves_the_served_model_and_registry_intact(service, classifier, sample_paths):
    wrong, claimed = _wrong_set(classifier)
    _add_labelled(service, wrong, claimed)
    expected = classifier.predict(sample_paths["FAKE"][0]).p_fake
    service.start_retrain("admin", steps=100000, extra_args=["--cifake", "slice"])  # far longer than we wait
    deadline = time.time() + 180
    while time.time() < deadline:
        status = service.retrain_status()
        if "fine-tuning step" in status.get("message", ""):
            break
        assert status["state"] == "running", status
        time.sleep(0.5)
    else:
        pytest.fail("retraining never reached the fine-tuning stage")
    os.killpg(service._retrain.pid, signal.SIGKILL)  # a crash, not a polite cancel
    service.wait_retrain(30)
    assert service.retrain_status()["state"] == "failed"
    assert service.registry.versions() == [1] and service.registry.active_version() == 1
    assert not list(service.registry.root.glob("v*"))  # no partial version in the registry
    from webapp.registry import Registry

    Registry(service.registry.root)  # the next start removes any staging folder the worker left
    assert not list(service.registry.root.glob(".staging-*"))
    assert service.classify(sample_paths["FAKE"][0], "x").prediction.p_fake == pytest.approx(expected, abs=1e-6)
    assert len(service.store.list_feedback("accepted")) == len(wrong)  # the labelled data is intact


def test_cancel_stops_the_worker(service, classifier):
    wrong, claimed = _wrong_set(classifier)
    _add_labelled(service, wrong, claimed)
    service.start_retrain("admin", steps=100000, extra_args=["--cifake", "slice"])
    time.sleep(3)
    assert service.cancel_retrain()
    assert service.retrain_status()["state"] == "cancelled"
    assert service.registry.versions() == [1]


def test_retrain_cli_without_accepted_data_fails_cleanly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "training.retrain", "--data-dir", str(tmp_path / "d"),
                             "--status", str(tmp_path / "status.json")], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "failed"
