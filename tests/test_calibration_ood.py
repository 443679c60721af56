"""Calibration (Platt scaling) and the out-of-domain score's construction."""
import numpy as np
import pytest

from training.export import fit_mahalanobis, fit_platt
from training.metrics import expected_calibration_error


def test_platt_scaling_recovers_a_known_miscalibration():
    rng = np.random.default_rng(0)
    true_logit = rng.normal(0, 2, 20000)
    labels = (rng.random(20000) < 1 / (1 + np.exp(-true_logit))).astype(int)
    model_logit = (true_logit - 0.7) * 2.5  # over-confident and shifted: a = 0.4, b = 0.7
    a, b = fit_platt(model_logit, labels)
    assert a == pytest.approx(0.4, abs=0.03) and b == pytest.approx(0.7, abs=0.08)
    before = expected_calibration_error(labels, 1 / (1 + np.exp(-model_logit)))
    after = expected_calibration_error(labels, 1 / (1 + np.exp(-(a * model_logit + b))))
    assert after < before / 3


def test_mahalanobis_whitening_matches_the_textbook_distance():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(4000, 5)) @ rng.normal(size=(5, 5))
    labels = rng.integers(0, 2, 4000)
    features[labels == 1] += 2.0
    means, whitening = fit_mahalanobis(features, labels)
    x = rng.normal(size=(10, 5))
    precision = whitening @ whitening.T
    for k in (0, 1):
        textbook = np.einsum("nd,de,ne->n", x - means[k], precision, x - means[k])
        whitened = (((x - means[k]) @ whitening) ** 2).sum(axis=1)
        np.testing.assert_allclose(whitened, textbook, rtol=1e-8)


def test_export_graph_computes_the_same_ood_score_as_numpy():
    import keras

    from training.export import build_export_model
    from training.model import CNNConfig, build_cnn

    base = build_cnn(CNNConfig((8, 16), (1, 1)))
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (64, 32, 32, 3)).astype(np.float32)
    features = keras.Model(base.input, base.get_layer("features").output).predict(images, verbose=0)
    means, whitening = fit_mahalanobis(features, np.arange(64) % 2)
    model = build_export_model(base, (1.0, 0.0), means, whitening)
    p_fake, ood = model.predict(images, verbose=0)
    expected = np.min([(((features - means[k]) @ whitening) ** 2).sum(axis=1) for k in (0, 1)], axis=0)
    np.testing.assert_allclose(ood[:, 0], expected, rtol=1e-3, atol=1e-3)
    base_p = base.predict(images, verbose=0)
    np.testing.assert_allclose(p_fake, base_p, atol=1e-5)  # a = 1, b = 0 leaves the probability as is
