"""A one-epoch train + export on ~200 tiny images: ONNX parity, metadata schema and hash checks."""
import json
import shutil

import numpy as np
import pytest

from inference.model_card import ModelMetadataError, SCHEMA_VERSION, load_metadata


@pytest.fixture(scope="module")
def tiny_export(tiny_cifake, tiny_offdomain, tmp_path_factory):
    import training.data as data
    from training.export import ExportConfig, export
    from training.train import TrainConfig, train

    root = tmp_path_factory.mktemp("tiny_run")
    old_cache = data.CACHE_DIR
    data.CACHE_DIR = root / "cache"
    try:
        config = TrainConfig(epochs=1, batch_size=32, variants=1, data=str(tiny_cifake), run_dir=str(root / "run"),
                             val_fraction=0.25)
        run_dir = train(config)
        metadata = export(run_dir, root / "exported", ExportConfig(parity_images=40, ood_fit_images=100, domain_views=6,
                                                                          offdomain=str(tiny_offdomain)))
    finally:
        data.CACHE_DIR = old_cache
    return root / "exported", metadata


def test_training_writes_checkpoints_history_and_curves(tiny_export):
    run_dir = tiny_export[0].parent / "run"
    for name in ("best.keras", "last.keras", "state.json", "history.json", "curves.png", "config.json"):
        assert (run_dir / name).exists(), name
    assert json.loads((run_dir / "state.json").read_text())["epoch"] == 1


def test_export_records_parity_and_onnx_matches_keras(tiny_export):
    folder, metadata = tiny_export
    assert metadata["parity"]["max_abs_diff_p_fake"] <= 1e-4
    import keras
    import onnxruntime as ort

    x = np.random.default_rng(0).integers(0, 256, (7, 32, 32, 3)).astype(np.float32)
    keras_p, keras_ood = keras.models.load_model(folder / "model.keras").predict(x, verbose=0)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    onnx_p, onnx_ood = session.run(None, {session.get_inputs()[0].name: x})
    assert onnx_p.shape == (7, 1) and onnx_ood.shape == (7, 1)  # dynamic batch
    np.testing.assert_allclose(onnx_p, keras_p, atol=1e-4)
    np.testing.assert_allclose(onnx_ood, keras_ood, rtol=1e-3, atol=1e-2)


def test_metadata_describes_the_artifacts(tiny_export):
    folder, _ = tiny_export
    meta = load_metadata(folder, check_files=("model.onnx", "model.keras"))
    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["class_names"] == ["REAL", "FAKE"]
    assert meta["input"]["shape"] == [None, 32, 32, 3] and meta["input"]["colour_order"] == "RGB"
    assert meta["preprocessing"]["input_size"] == [32, 32]
    assert meta["gradcam"]["layer"] == "last_conv"
    assert meta["metrics"]["test"]["n"] == 40 and meta["metrics"]["validation"]["n"] > 0
    assert meta["calibration"]["temperature"] > 0
    assert meta["data"]["fingerprint"]["train"]["sha256"]
    assert {"tensorflow", "keras", "onnxruntime"} <= set(meta["versions"])
    ood = meta["out_of_domain"]
    assert ood["fit_sources"] == ["cszn/KAIR", "ldm", "pjreddie/darknet", "sd1"]  # held-out sources never fitted
    assert ood["rule_selection"] and meta["decision"]["ood_threshold"] is not None


def test_tampered_model_file_is_refused(tiny_export, tmp_path):
    folder, _ = tiny_export
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    with (copy / "model.onnx").open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelMetadataError, match="model.onnx has sha256"):
        load_metadata(copy)


def test_other_schema_version_is_refused(tiny_export, tmp_path):
    folder, _ = tiny_export
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    meta = json.loads((copy / "model.json").read_text())
    meta["schema_version"] = 99
    (copy / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelMetadataError, match="schema_version 99"):
        load_metadata(copy)


def test_served_probability_ignores_mirroring_and_gradcam_still_explains_it(tiny_export):
    """Flip test-time augmentation is inside the graph: a picture and its mirror image get the same P(FAKE)."""
    import onnxruntime as ort

    from inference.gradcam import GradCAM

    folder, metadata = tiny_export
    assert metadata["ensemble"]["flip_tta"] and metadata["ensemble"]["passes_per_picture"] == 2
    x = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3)).astype(np.float32)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    p, _ = session.run(None, {"pixels": x})
    p_mirror, _ = session.run(None, {"pixels": x[:, :, ::-1].copy()})
    np.testing.assert_allclose(p, p_mirror, atol=1e-6)
    maps, keras_p = GradCAM(folder).compute(x)
    assert maps.shape == (5, 32, 32) and np.isfinite(maps).all()
    np.testing.assert_allclose(keras_p, p[:, 0], atol=1e-4)


def test_ensemble_member_is_averaged_in_and_recovered_for_re_export(tiny_export, tiny_offdomain, tmp_path):
    import keras
    import onnxruntime as ort

    import training.data as data
    from training.export import ExportConfig, export, run_dir_from_export
    from training.model import LOGIT_LAYER

    folder, _ = tiny_export
    run_dir = folder.parent / "run"
    member = tmp_path / "member.keras"  # a second backbone: the first with its logit shifted by +1
    other = keras.models.load_model(run_dir / "best.keras")
    kernel, bias = other.get_layer(LOGIT_LAYER).get_weights()
    other.get_layer(LOGIT_LAYER).set_weights([kernel, bias + 1.0])
    other.save(member)
    old = data.CACHE_DIR
    data.CACHE_DIR = run_dir.parent / "cache"
    try:
        meta = export(run_dir, tmp_path / "exported", ExportConfig(parity_images=40, ood_fit_images=100, domain_views=6,
                                                                   offdomain=str(tiny_offdomain),
                                                                   members=(str(member),)))
    finally:
        data.CACHE_DIR = old
    assert meta["ensemble"]["passes_per_picture"] == 4 and meta["architecture"]["served"]["backbones"] == 2
    base = keras.models.load_model(run_dir / "best.keras")
    x = np.random.default_rng(2).integers(0, 256, (6, 32, 32, 3)).astype(np.float32)
    probe = keras.Model(base.input, base.get_layer(LOGIT_LAYER).output)
    expected = (probe.predict(x, verbose=0) + probe.predict(x[:, :, ::-1], verbose=0)) / 2 + 0.5  # mean of 4 passes
    a, b = meta["calibration"]["a"], meta["calibration"]["b"]
    session = ort.InferenceSession(str(tmp_path / "exported" / "model.onnx"), providers=["CPUExecutionProvider"])
    p, _ = session.run(None, {"pixels": x})
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-(a * expected + b))), atol=1e-4)
    _, members = run_dir_from_export(tmp_path / "exported", tmp_path / "again")
    assert len(members) == 1
    recovered = keras.models.load_model(members[0])
    np.testing.assert_allclose(recovered.predict(x, verbose=0), probe.predict(x, verbose=0) + 1.0, atol=1e-4)


def test_resume_continues_after_the_last_epoch(tiny_export, tiny_cifake):
    import training.data as data
    from training.train import TrainConfig, train

    run_dir = tiny_export[0].parent / "run"
    old = data.CACHE_DIR
    data.CACHE_DIR = run_dir.parent / "cache"
    try:
        config = TrainConfig(epochs=2, batch_size=32, variants=1, data=str(tiny_cifake), run_dir=str(run_dir),
                             val_fraction=0.25)
        train(config, resume=True)
    finally:
        data.CACHE_DIR = old
    state = json.loads((run_dir / "state.json").read_text())
    assert [h["epoch"] for h in state["history"]] == [1, 2]


def test_a_second_stage_starts_from_a_trained_run_and_counts_its_time(tiny_export, tiny_cifake, tmp_path, monkeypatch):
    from dataclasses import replace

    import keras

    import training.data as data
    from training.train import TrainConfig, _start_from, make_model, train

    parent = tiny_export[0].parent / "run"
    spent = json.loads((parent / "state.json").read_text())["train_seconds"]
    config = TrainConfig(epochs=1, batch_size=32, variants=1, data=str(tiny_cifake), run_dir=str(tmp_path / "stage"),
                         val_fraction=0.25, init=str(parent / "best.keras"))
    model = make_model(config, steps_per_epoch=1)
    _start_from(model, parent / "best.keras")
    for loaded, trained in zip(model.get_weights(), keras.models.load_model(parent / "best.keras").get_weights()):
        np.testing.assert_array_equal(loaded, trained)
    with pytest.raises(ValueError, match="different network"):
        _start_from(make_model(replace(config, filters=(8, 16, 24)), steps_per_epoch=1), parent / "best.keras")
    monkeypatch.setattr(data, "CACHE_DIR", tmp_path / "cache")
    train(config)
    state = json.loads((tmp_path / "stage" / "state.json").read_text())
    assert state["parent"] == {"path": str(parent / "best.keras"), "train_seconds": spent}
    assert state["train_seconds"] > spent and [h["epoch"] for h in state["history"]] == [1]


def test_evaluate_cli_reports_metrics_and_plots(tiny_export, tiny_cifake, tmp_path):
    from training.evaluate import main

    folder, metadata = tiny_export
    metrics = main(["--model-dir", str(folder), "--data", str(tiny_cifake), "--out", str(tmp_path)])
    assert metrics["n"] == 40
    assert metrics["accuracy"] == pytest.approx(metadata["metrics"]["test"]["accuracy"], abs=1e-6)
    assert (tmp_path / "report.json").exists() and (tmp_path / "reliability.png").exists()
    without = main(["--model-dir", str(folder), "--data", str(tiny_cifake), "--exclude-leaked", "--out", str(tmp_path)])
    assert without["n"] == 39


def test_distillation_targets_are_the_teachers_probabilities_of_each_copy(tiny_export, tiny_cifake, tmp_path):
    import training.data as data
    from training.graph import run_onnx
    from training.train import TrainConfig, train

    old = data.CACHE_DIR
    data.CACHE_DIR = tmp_path / "cache"
    try:
        config = TrainConfig(epochs=1, batch_size=32, variants=1, data=str(tiny_cifake), run_dir=str(tmp_path / "run"),
                             val_fraction=0.25, teachers=(str(tiny_export[0]),), distill=0.5)
        run_dir = train(config)
        loaded = data.load_cifake(str(tiny_cifake), 0.25, 0)
    finally:
        data.CACHE_DIR = old
    record = json.loads((run_dir / "teachers.json").read_text())
    teacher = np.load(run_dir / record["cache"])
    assert teacher.shape == (2, len(loaded.train))  # the clean copy and one re-delivered variant per picture
    np.testing.assert_allclose(teacher[0], run_onnx(tiny_export[0] / "model.onnx", loaded.train.images)[0], atol=1e-5)
    assert json.loads((run_dir / "config.json").read_text())["distill"] == 0.5
    state = json.loads((run_dir / "state.json").read_text())
    assert state["teacher_seconds"] == record["seconds"]  # the teacher pass counts toward training time
    assert state["history"][0]["accuracy"] is None  # Keras' accuracy against soft targets means nothing


def test_compare_validation_reports_redelivered_uploads(tiny_export, tiny_cifake, tmp_path):
    import training.data as data
    from bench.compare_validation import main
    from bench.robustness import TRANSFORMS

    best = tiny_export[0].parent / "run" / "best.keras"
    old = data.CACHE_DIR
    data.CACHE_DIR = tmp_path / "cache"
    try:
        result = main([str(best), str(best), "--data", str(tiny_cifake), "--redelivered", "--out", str(tmp_path / "r.json")])
    finally:
        data.CACHE_DIR = old
    redelivered = result[str(best)]["redelivered"]
    assert set(redelivered["rows"]) == {"clean"} | {name for name, t in TRANSFORMS.items() if t is not None}
    assert redelivered["rows"]["clean"] == pytest.approx(result[str(best)]["flip_tta"]["accuracy_platt"])
    assert redelivered["rows"]["left-right flip"] == redelivered["rows"]["clean"]  # flip TTA is mirror-invariant
    assert json.loads((tmp_path / "r.json").read_text())["ensemble"]["members"] == [str(best), str(best)]
