"""The shipped model through the inference package: ONNX classification without TensorFlow, the CLI,
Grad-CAM, overlays and explanations."""
import json
import subprocess
import sys
import threading

import numpy as np
import pytest
from PIL import Image

from conftest import EXPORTED, PROJECT_ROOT, SHARED_CIFAKE

BLOCK_TENSORFLOW = (
    "import sys\n"
    "class _Block:\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('tensorflow', 'keras', 'tf_keras'):\n"
    "            raise ImportError('TensorFlow is blocked in this test')\n"
    "sys.meta_path.insert(0, _Block())\n"
)


def _run_without_tensorflow(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", BLOCK_TENSORFLOW + code, *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=120)


def test_classify_does_not_import_tensorflow(tmp_path, sample_paths):
    photo = tmp_path / "big_photo.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (3000, 4000, 3), dtype=np.uint8)).save(photo, quality=85)
    code = ("import sys, runpy\n"
            "sys.argv = ['inference', '--json'] + sys.argv[1:]\n"
            "try:\n    runpy.run_module('inference', run_name='__main__')\n"
            "except SystemExit as e:\n    code = e.code\n"
            "assert 'tensorflow' not in sys.modules\n"
            "sys.exit(code)\n")
    result = _run_without_tensorflow(code, str(sample_paths["FAKE"][0]), str(photo))
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 2 and all(r["error"] is None and 0 <= r["p_fake"] <= 1 for r in rows)


def test_ood_score_comes_from_onnx_without_tensorflow(sample_paths):
    code = ("import numpy as np\n"
            "from inference.classifier import Classifier\n"
            f"clf = Classifier({str(EXPORTED)!r})\n"
            "noise = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype(np.uint8)\n"
            "p, ood = clf.run(noise)\n"
            "import sys; assert 'tensorflow' not in sys.modules\n"
            "print(float(np.median(ood)), clf.ood_threshold)\n")
    result = _run_without_tensorflow(code)
    assert result.returncode == 0, result.stderr
    noise_ood, threshold = map(float, result.stdout.split())
    assert noise_ood > threshold  # random noise is unlike any training picture


def test_samples_get_the_models_verdict_and_probabilities_are_consistent(classifier, sample_paths):
    for label, paths in sample_paths.items():
        for path in paths:
            prediction = classifier.predict(path)
            assert prediction.likely_label in ("REAL", "FAKE")
            assert prediction.confidence == pytest.approx(max(prediction.p_fake, 1 - prediction.p_fake))
            assert prediction.confidence >= 0.5


def test_batch_and_single_predictions_agree(classifier, sample_paths):
    paths = sample_paths["REAL"] + sample_paths["FAKE"]
    batch = classifier.predict_many(paths)
    single = [classifier.predict(p) for p in paths]
    for a, b in zip(batch, single):
        assert a.p_fake == pytest.approx(b.p_fake, abs=1e-5)


def test_session_is_safe_to_share_between_threads(classifier, sample_paths):
    path = sample_paths["FAKE"][0]
    expected = classifier.predict(path).p_fake
    results, errors = [], []

    def work():
        try:
            for _ in range(20):
                results.append(classifier.predict(path).p_fake)
        except Exception as err:  # noqa: BLE001
            errors.append(err)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 80
    assert np.allclose(results, expected, atol=1e-6)


def test_bands_follow_the_documented_thresholds(classifier):
    inside = classifier.ood_threshold - 1.0  # below the exported out-of-domain threshold
    assert classifier.decide(0.99, inside).band == "confident"
    assert classifier.decide(0.80, inside).band == "leaning"
    assert classifier.decide(0.55, inside).label == "UNCERTAIN"
    far = classifier.decide(0.99, classifier.ood_threshold + 10.0)
    assert far.label == "UNCERTAIN" and far.out_of_domain and far.likely_label == "FAKE"


def test_cli_writes_csv_and_reports_unreadable_files(tmp_path, sample_paths):
    bad = tmp_path / "not_an_image.jpg"
    bad.write_text("hello")
    out_csv = tmp_path / "out.csv"
    result = subprocess.run([sys.executable, "-m", "inference", str(sample_paths["REAL"][0]), str(bad),
                             "--csv", str(out_csv)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ERROR" in result.stdout and "not a picture" in result.stdout
    lines = out_csv.read_text().splitlines()
    assert lines[0].startswith("file,label,p_fake") and len(lines) == 3


# -- Grad-CAM ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cam():
    from inference.gradcam import GradCAM

    return GradCAM(EXPORTED)


def _samples_array(sample_paths) -> np.ndarray:
    from inference.preprocess import preprocess_image

    return np.stack([preprocess_image(p) for p in sample_paths["REAL"] + sample_paths["FAKE"]])


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "hirescam"])
def test_maps_are_finite_and_in_unit_range(cam, sample_paths, method):
    maps, p_fake = cam.compute(_samples_array(sample_paths), method=method)
    assert maps.shape == (8, 32, 32)
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1
    assert (maps.max(axis=(1, 2)) > 0.99).sum() >= 6  # normalised maps reach 1 unless flat


def test_gradients_are_never_none(cam, sample_paths):
    import tensorflow as tf

    x = tf.constant(_samples_array(sample_paths)[:2].astype(np.float32))
    activations, gradients, _ = cam._gradients(x, tf.constant([1.0, -1.0]))
    assert gradients is not None and float(tf.reduce_sum(tf.abs(gradients))) > 0


@pytest.mark.parametrize("value", [0, 128, 255])
def test_heatmap_of_constant_image_has_no_nan(cam, value):
    maps, _ = cam.compute(np.full((1, 32, 32, 3), value, np.float32))
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


def test_switching_the_target_class_changes_the_map(cam, sample_paths):
    x = _samples_array(sample_paths)[4:6]
    fake_maps, _ = cam.compute(x, target="FAKE")
    real_maps, _ = cam.compute(x, target="REAL")
    assert np.abs(fake_maps - real_maps).mean() > 0.05


def _keras_onnx_agreement(cam, classifier, images):
    onnx_p, _ = classifier.run(images)
    keras_p = np.concatenate([cam.compute(images[i:i + 100])[1] for i in range(0, len(images), 100)])
    return ((onnx_p >= 0.5) == (keras_p >= 0.5)).mean(), np.abs(onnx_p - keras_p).max()


def test_keras_and_onnx_agree_on_the_samples(cam, classifier, sample_paths):
    agree, max_diff = _keras_onnx_agreement(cam, classifier, _samples_array(sample_paths).astype(np.float32))
    assert agree == 1.0 and max_diff < 1e-4


@pytest.mark.skipif(not (SHARED_CIFAKE / "test.zip").exists(), reason="needs the CIFAKE test split")
def test_keras_and_onnx_agree_on_500_test_images(cam, classifier):
    from training.data import read_split

    test = read_split(SHARED_CIFAKE, "test", use_cache=False)[0]
    idx = np.random.default_rng(0).permutation(len(test))[:500]
    agree, max_diff = _keras_onnx_agreement(cam, classifier, test.images[idx].astype(np.float32))
    assert agree == 1.0 and max_diff < 1e-4


def test_explain_refuses_a_verdict_the_keras_model_does_not_share(cam, sample_paths):
    from inference.gradcam import ModelDisagreementError
    from inference.preprocess import preprocess_image

    pixels = preprocess_image(sample_paths["FAKE"][0])
    _, keras_p = cam.compute(pixels[None])
    with pytest.raises(ModelDisagreementError):
        cam.explain(pixels, 1.0 - float(keras_p[0]))


def test_faithfulness_score_is_reported(cam, classifier, sample_paths):
    from inference.gradcam import deletion_faithfulness
    from inference.preprocess import preprocess_image

    pixels = preprocess_image(sample_paths["FAKE"][0])
    p = classifier.predict(pixels).p_fake
    heatmap = cam.explain(pixels, p)
    result = deletion_faithfulness(pixels, heatmap, p, lambda x: classifier.run(x)[0], "FAKE" if p >= 0.5 else "REAL")
    assert -1 <= result["score"] <= 1
    assert result["score"] == pytest.approx(result["drop_most_relevant"] - result["drop_least_relevant"])


# -- overlay and explanation ------------------------------------------------------------------------
def test_overlays_have_the_expected_sizes():
    from inference.overlay import overlay_on_model_input, overlay_on_original

    pixels = np.zeros((32, 32, 3), np.uint8)
    heat = np.linspace(0, 1, 32 * 32).reshape(32, 32)
    assert overlay_on_model_input(pixels, heat, scale=8).size == (256, 256)
    big = Image.new("RGB", (4000, 3000))
    assert max(overlay_on_original(big, heat).size) == 768
    with pytest.raises(ValueError, match="opacity"):
        overlay_on_model_input(pixels, heat, opacity=2)
    with pytest.raises(ValueError, match="colormap"):
        overlay_on_model_input(pixels, heat, colormap="nope")


def test_explanation_follows_the_heatmap_and_the_prediction(classifier):
    from inference.explain import explain, locate_evidence

    border = np.zeros((32, 32))
    border[:3, :] = 1
    centre = np.zeros((32, 32))
    centre[12:20, 12:20] = 1
    assert locate_evidence(border).main_region == "edges"
    assert locate_evidence(centre).main_region == "centre"
    confident_fake = classifier.decide(0.98, 0.0)
    text_a = explain(confident_fake, border).text
    text_b = explain(confident_fake, centre).text
    assert text_a != text_b and "edges" in text_a and "middle" in text_b
    assert "confidently" in text_a and "AI-generated" in text_a
    squashed = explain(classifier.decide(0.8, 0.0), centre, original_size=(4000, 3000)).text
    assert "4000×3000" in squashed and "Caveat" in squashed
    assert "Uncertain" in explain(classifier.decide(0.52, 0.0)).text


def test_all_zero_heatmap_counts_as_spread_evenly():
    from inference.explain import locate_evidence

    evidence = locate_evidence(np.zeros((32, 32)))
    assert evidence.centre + evidence.background + evidence.edges == pytest.approx(1.0)


def test_inference_never_imports_training():
    """Training and serving meet only at the artifacts."""
    import ast

    for path in (PROJECT_ROOT / "inference").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] == "training" for n in names), f"{path.name} imports {names}"
