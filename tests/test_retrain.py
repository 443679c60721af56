"""Retraining: new labelled pictures the model gets wrong are learned, the gate guards the original
data, promotion and rollback switch the served verdict, one worker runs at a time (across app
restarts), and a cancelled, crashed or orphaned worker leaves nothing half-written behind."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import PROJECT_ROOT

LONG_RUN = ["--method", "finetune", "--steps", "100000", "--cifake", "slice"]  # far longer than any test waits


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


def _wrong_set(classifier, n: int = 60, family=_pattern_images, seed: int = 1):
    """Synthetic pictures, labelled as the class the shipped model does NOT pick for most of them."""
    images = family(n, seed=seed)
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
    for i, pixels in enumerate(images):
        path = service.images_dir / f"new_{label}_{i}.png"
        Image.fromarray(pixels).save(path)
        service.store.add_feedback("admin", ("REAL", "FAKE")[label], str(path.relative_to(service.folder)),
                                   "upload", status="accepted")


def _wait_for(predicate, timeout: float, what: str, poll: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def _working(service):
    """True once the worker has imported TensorFlow, read its data and is computing (progress past 10 %:
    reading the parent's outputs, then fine-tuning); fails fast if it stopped instead."""
    status = service.retrain_status()
    assert status["state"] == "running", status
    return status["progress"] > 0.1


def _pid_alive(pid: int) -> bool:
    """A running process (a zombie, dead but not yet reaped by its parent, does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _nothing_half_written(service):
    models = service.registry.root
    assert service.registry.versions() == [1] and service.registry.active_version() == 1
    assert not list(models.glob("v*")) and not list(models.glob(".retrain-*"))


# -- learning ---------------------------------------------------------------------------------------
@pytest.mark.timeout(900)
@pytest.mark.parametrize("method", ["memory", "finetune"])
def test_every_method_keeps_the_onnx_contract(service, classifier, method):
    """Output 0 is P(FAKE) (N, 1) in [0, 1], output 1 the out-of-domain score (N, 1); methods that keep
    the parent frozen keep its out-of-domain score exactly."""
    import onnxruntime as ort

    from retraining.worker import RetrainConfig, retrain

    wrong, claimed = _wrong_set(classifier, family=_stripe_images)
    _add_labelled(service, wrong, claimed)
    metadata = retrain(service.folder, service.accepted_labels(), "admin", RetrainConfig(method=method, steps=3),
                       cifake="slice", activate=False)
    session = ort.InferenceSession(str(service.registry.version_dir(metadata["version"]) / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    images = np.concatenate([wrong[:4], _pattern_images(4, seed=3)]).astype(np.float32)
    p_fake, ood = session.run(None, {session.get_inputs()[0].name: images})
    assert p_fake.shape == (8, 1) and ood.shape == (8, 1) and ((p_fake >= 0) & (p_fake <= 1)).all()
    if method != "finetune":
        assert np.allclose(ood[:, 0], classifier.run(images)[1], rtol=1e-4, atol=1e-3)
    assert service.registry.active_version() == 1  # activate=False never switches


@pytest.mark.timeout(900)
def test_gate_refuses_a_version_that_does_not_help(service, classifier):
    from retraining.worker import RetrainConfig, retrain

    # labels the model already gets right: nothing to improve, so the new version must not be promoted
    images = _pattern_images(20, seed=5)
    p_fake, _ = classifier.run(images)
    for label in (0, 1):
        _add_labelled(service, images[(p_fake >= 0.5).astype(int) == label], label)
    if len(service.store.list_feedback("accepted")) < 4:
        pytest.skip("the model puts all pattern images in one class")
    metadata = retrain(service.folder, service.accepted_labels(), "admin", RetrainConfig(), cifake="slice")
    assert not metadata["retraining"]["gate"]["passed"]
    assert "not better" in metadata["retraining"]["gate"]["reason"]
    assert service.registry.active_version() == 1
    assert 2 in service.registry.versions()  # kept, not promoted


# -- worker lifecycle ---------------------------------------------------------------------------------
@pytest.mark.timeout(900)
def test_a_second_retrain_is_refused_also_from_a_restarted_app_and_cancel_leaves_nothing(service, classifier):
    from retraining.jobs import RetrainBusyError
    from retraining.labels import LABELS_NAME, read_labels
    from webapp.service import DetectorService

    wrong, claimed = _wrong_set(classifier)
    _add_labelled(service, wrong, claimed)
    expected = service.analyse(wrong[0], name="x").prediction.p_fake
    run_id = service.start_retrain("admin", extra_args=LONG_RUN)
    labels = read_labels(service.folder / LABELS_NAME)  # starting a run writes the accepted labels for the worker
    assert len(labels) == len(wrong) and set(labels.values()) == {("REAL", "FAKE")[claimed]}
    assert all((service.folder / path).is_file() for path in labels)
    with pytest.raises(RetrainBusyError, match="already in progress"):
        service.start_retrain("admin", extra_args=LONG_RUN)
    other = DetectorService(service.folder)  # another app process on the same data folder (a restart)
    with pytest.raises(RetrainBusyError, match=f"already in progress \\(run {run_id}"):
        other.start_retrain("admin", extra_args=LONG_RUN)
    _wait_for(lambda: _working(other), 600, "the worker to be computing")
    shown = other.retrain_status()  # the restarted app shows the live worker's real progress
    assert shown["run_id"] == run_id and shown["running"] and shown["progress"] > 0.1
    worker = shown["pid"]

    assert other.cancel_retrain()  # cancelled from the other app, by the pid in the status
    assert not _pid_alive(worker)
    status = service.retrain_status()
    assert status["state"] == "cancelled" and status["run_id"] == run_id and not status["running"]
    _nothing_half_written(service)
    assert service.analyse(wrong[0], name="x").prediction.p_fake == pytest.approx(expected, abs=1e-6)
    assert not service.cancel_retrain()  # nothing left to cancel


APP_SCRIPT = textwrap.dedent("""
    import sys, time
    from webapp.service import DetectorService
    service = DetectorService(sys.argv[1])
    print(service.start_retrain("admin", extra_args=sys.argv[2:]), flush=True)
    time.sleep(3600)
""")


@pytest.mark.timeout(900)
def test_killing_the_app_stops_its_worker_and_a_restarted_app_can_retrain(service, classifier):
    wrong, claimed = _wrong_set(classifier)
    _add_labelled(service, wrong, claimed)
    app = subprocess.Popen([sys.executable, "-c", APP_SCRIPT, str(service.folder), *LONG_RUN], cwd=PROJECT_ROOT,
                           stdout=subprocess.PIPE, text=True)
    try:
        run_id = app.stdout.readline().strip()
        _wait_for(lambda: _working(service), 600, "the worker to be computing")
        worker = service.retrain_status()["pid"]
        app.kill()  # the app dies without a chance to clean up
        app.wait(30)
    finally:
        if app.poll() is None:
            app.kill()
    from retraining.jobs import lock_is_held

    # the lock is the truth: the kernel drops it only once every thread of the worker is gone
    _wait_for(lambda: not _pid_alive(worker) and not lock_is_held(service.folder / "retrain.lock"), 120,
              "the orphaned worker to stop")
    status = service.retrain_status()
    assert status["run_id"] == run_id and status["state"] == "stopped" and not status["running"]
    assert "the app that started it exited" in status["message"]
    _nothing_half_written(service)

    from webapp.service import DetectorService

    restarted = DetectorService(service.folder)
    assert restarted.retrain_status()["state"] == "stopped"
    new_run = restarted.start_retrain("admin", extra_args=LONG_RUN)  # the lock is free again
    assert new_run != run_id
    assert restarted.cancel_retrain()
    _nothing_half_written(service)


@pytest.mark.timeout(900)
def test_a_killed_worker_leaves_the_served_model_and_registry_intact(service, classifier, sample_paths):
    wrong, claimed = _wrong_set(classifier)
    _add_labelled(service, wrong, claimed)
    expected = classifier.predict(sample_paths["FAKE"][0]).p_fake
    service.start_retrain("admin", extra_args=LONG_RUN)
    _wait_for(lambda: _working(service), 600, "the worker to be computing")
    os.killpg(service.retrain_status()["pid"], signal.SIGKILL)  # a crash, not a polite cancel
    status = service.wait_retrain(60)
    assert status["state"] == "failed" and "stopped before finishing" in status["message"]
    _nothing_half_written(service)
    assert service.analyse(sample_paths["FAKE"][0], name="x").prediction.p_fake == pytest.approx(expected, abs=1e-6)
    assert len(service.store.list_feedback("accepted")) == len(wrong)  # the labelled data is intact


def test_a_crashed_runs_staging_folder_is_removed_when_the_lock_is_free(tmp_path):
    from retraining.jobs import RetrainJobs, write_status

    models = tmp_path / "models"
    staging = models / ".retrain-abc123"
    staging.mkdir(parents=True)
    (staging / "model.onnx").write_bytes(b"half written")
    write_status(tmp_path / "retrain_status.json", "abc123", "running", 0.85, "exporting", new_run=True)
    status = RetrainJobs(tmp_path, models).status()
    assert status["state"] == "failed" and status["run_id"] == "abc123"
    assert not staging.exists()


def test_an_old_run_cannot_overwrite_a_newer_runs_status(tmp_path):
    from retraining.jobs import read_status, write_status

    path = tmp_path / "retrain_status.json"
    assert write_status(path, "old", "running", 0.5, "old run", new_run=True)
    assert write_status(path, "new", "running", 0.0, "new run", new_run=True, by="admin")
    assert not write_status(path, "old", "done", 1.0, "old run finished", version=2)
    status = read_status(path)
    assert status["run_id"] == "new" and status["state"] == "running" and "version" not in status
    assert write_status(path, "new", "running", 0.3, "step 10")
    assert read_status(path)["by"] == "admin"  # fields of the run are kept across its writes


def test_the_cli_refuses_while_another_worker_holds_the_lock(tmp_path):
    from retraining.jobs import try_lock, write_status

    folder = tmp_path / "d"
    folder.mkdir()
    write_status(folder / "retrain_status.json", "busy1", "running", 0.4, "step 5", new_run=True, pid=12345)
    fd = try_lock(folder / "retrain.lock")
    try:
        result = subprocess.run([sys.executable, "-m", "retraining", "--data-dir", str(folder),
                                 "--status", str(folder / "retrain_status.json")], cwd=PROJECT_ROOT,
                                capture_output=True, text=True, timeout=300)
    finally:
        os.close(fd)
    assert result.returncode == 3 and "already in progress (run busy1" in result.stderr
    assert json.loads((folder / "retrain_status.json").read_text())["run_id"] == "busy1"  # left alone


def test_retrain_cli_without_accepted_data_fails_cleanly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "retraining", "--data-dir", str(tmp_path / "d"),
                             "--status", str(tmp_path / "status.json")], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "failed"


def test_the_worker_learns_the_last_accepted_label_of_each_picture_from_the_labels_file(tmp_path):
    from retraining.labels import LABELS_NAME, latest_labels, load_new_images, read_labels, write_labels

    (tmp_path / "images").mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.full((32, 32, 3), 7, np.uint8)).save(tmp_path / "images" / f"{name}.png")
    accepted = [{"image_path": "images/a.png", "claimed_label": "FAKE"},
                {"image_path": "images/b.png", "claimed_label": "REAL"},
                {"image_path": "images/a.png", "claimed_label": "REAL"},  # re-labelled later: this one counts
                {"image_path": "images/gone.png", "claimed_label": "FAKE"}]  # deleted meanwhile: skipped
    write_labels(tmp_path / LABELS_NAME, latest_labels(accepted))
    new = load_new_images(tmp_path, read_labels(tmp_path / LABELS_NAME))
    assert list(new.names) == ["images/a.png", "images/b.png"] and list(new.labels) == [0, 0]
    assert new.images.shape == (2, 32, 32, 3) and new.images.dtype == np.uint8
    with pytest.raises(ValueError, match="REAL.*FAKE.*'fake'"):
        write_labels(tmp_path / LABELS_NAME, {"images/a.png": "fake"})


# -- the loop end to end, through the real server -------------------------------------------------------
def _stripe_zip(path, images, label: int):
    with zipfile.ZipFile(path, "w") as archive:
        for i, pixels in enumerate(images):
            png = path.parent / f"stripe_{i}.png"
            Image.fromarray(pixels).save(png)
            archive.write(png, f"{('REAL', 'FAKE')[label]}/stripe_{i}.png")
    return path


@pytest.mark.timeout(1500)
def test_flag_accept_retrain_promote_and_roll_back_through_the_app(tmp_path, classifier):
    """A user flags a verdict, the admin accepts the flag and adds labelled pictures of the same kind,
    retrains (the default method); the new version fixes the new mistakes, also on unseen pictures of the
    kind, keeps the old accuracy, is promoted and the user's same picture gets the new verdict; rolling
    back restores the old one. All through `python app.py` with gradio_client."""
    from gradio_client import handle_file

    from appserver import ADMIN, USER, free_port, gradio_client, start_server, stop_server
    from webapp.store import Store

    wrong, claimed = _wrong_set(classifier, n=80, family=_stripe_images)
    flagged, labelled = wrong[0], wrong[1:]
    picture = tmp_path / "flagged.png"
    Image.fromarray(flagged).save(picture)
    data_dir = tmp_path / "appdata"
    data_dir.mkdir()
    port = free_port()
    server = start_server(data_dir, port, {"CIFAKE_WARMUP": "0", "CIFAKE_RETRAIN_ORIGINAL": "slice"})
    try:
        Store(folder=data_dir).create_user(*USER, email="alice@example.org")
        url = f"http://127.0.0.1:{port}/"
        user, admin = gradio_client(url, USER), gradio_client(url, ADMIN)

        label, p_before, *_ = user.predict(handle_file(str(picture)), api_name="/predict")
        assert (p_before >= 0.5) != bool(claimed)  # the shipped model gets it wrong
        record = user.predict(api_name="/history")[0]["id"]
        assert user.predict(record, ("REAL", "FAKE")[claimed], api_name="/flag").startswith("Thanks")

        table, _ = admin.predict(api_name="/admin_feedback")
        flag = max(row[0] for row in table["data"] if row[4] == "pending")
        table, _ = admin.predict(flag, api_name="/admin_accept")
        assert [row[4] for row in table["data"] if row[0] == flag] == ["accepted"]
        message, *_ = admin.predict(handle_file(str(_stripe_zip(tmp_path / "more.zip", labelled, claimed))),
                                    api_name="/admin_add_labelled")
        assert message.startswith(f"Added {len(labelled)}")

        assert "running" in admin.predict(300, api_name="/admin_retrain")
        with pytest.raises(Exception, match="already in progress"):
            admin.predict(300, api_name="/admin_retrain")
        status = _wait_for(lambda: (lambda s: s if "running" not in s[0] else None)(
            admin.predict(api_name="/admin_retrain_status")), 1200, "the retraining run", poll=1)
        assert "v2 promoted" in status[0], status[0]
        metadata = json.loads((data_dir / "models" / "v2" / "model.json").read_text())
        gate = metadata["retraining"]["gate"]
        assert metadata["parent_version"] == 1 and metadata["retraining"]["method"] == "head"
        assert gate["passed"] and gate["new_after"] > gate["new_before"]
        assert gate["original_after"] >= gate["original_before"] - gate["tolerance"]
        probe = _stripe_images(30, seed=99)  # unseen pictures of the same kind
        from inference.classifier import Classifier

        before = ((classifier.run(probe)[0] >= 0.5).astype(int) == claimed).mean()
        after = ((Classifier(data_dir / "models" / "v2").run(probe)[0] >= 0.5).astype(int) == claimed).mean()
        assert after >= 0.8 and after > before  # fixes most mistakes of this kind, also on unseen ones

        _, p_after, *_ = user.predict(handle_file(str(picture)), api_name="/predict")
        assert (p_after >= 0.5) == bool(claimed)  # the same picture now gets the new verdict
        _, versions = admin.predict(1, api_name="/admin_activate")
        _, p_rolled_back, *_ = user.predict(handle_file(str(picture)), api_name="/predict")
        assert p_rolled_back == pytest.approx(p_before, abs=1e-6)  # rollback restores the old verdict
        assert [row[0] for row in versions["data"] if row[1] == "yes"] == [1]
        assert not (data_dir / "models" / "v1").exists()  # the shipped model is served from exported/, not copied
    finally:
        stop_server(server)
