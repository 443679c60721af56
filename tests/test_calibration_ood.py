"""Calibration (Platt scaling), the out-of-domain head and the verdict-band rule."""
import numpy as np
import pytest

from training.calibration import fit_platt
from evaluation.metrics import expected_calibration_error


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


def test_domain_head_separates_shifted_features_and_folds_into_a_dense_layer():
    from training.domain import fit_domain_head

    rng = np.random.default_rng(1)
    inside, outside = rng.normal(0, 1, (2000, 6)), rng.normal(0, 1, (300, 6)) + [3, 0, 0, 0, 0, -2]
    head = fit_domain_head(inside, outside)
    assert (head.logits(outside) > np.quantile(head.logits(inside), 0.95)).mean() > 0.9
    kernel, bias = head.folded()
    np.testing.assert_allclose(outside @ kernel[:, 0] + bias[0], head.logits(outside), rtol=1e-4, atol=1e-4)


def test_export_graph_computes_the_same_ood_score_as_numpy():
    from training.domain import fit_domain_head
    from training.graph import build_export_model
    from training.features import extract
    from training.model import CNNConfig, build_cnn

    base = build_cnn(CNNConfig((8, 16), (1, 1)))
    rng = np.random.default_rng(2)
    images = rng.integers(0, 256, (64, 32, 32, 3)).astype(np.float32)
    moments = extract(base, images)["moments"]
    assert moments.shape == (64, 2 * (8 + 16))
    head = fit_domain_head(moments[:32], moments[32:] * 1.5)
    model = build_export_model(base, (1.0, 0.0), head)
    p_fake, ood = model.predict(images, verbose=0)
    np.testing.assert_allclose(ood[:, 0], head.logits(moments), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(p_fake, base.predict(images, verbose=0), atol=1e-5)  # a = 1, b = 0: unchanged


DECISION = {"threshold": 0.5, "leaning_from": 0.7, "confident_from": 0.9, "ood_threshold": 2.0,
            "guard_threshold": 1.0, "guarded_confident_from": 0.99}


@pytest.mark.parametrize("p_fake, ood, band", [
    (0.95, 0.0, "confident"),   # in domain, confident
    (0.95, 1.5, "leaning"),     # near the edge: 0.95 < the guarded bar 0.99
    (0.995, 1.5, "confident"),  # near the edge but sure enough
    (0.02, 0.0, "confident"),   # confident REAL
    (0.80, 0.0, "leaning"),
    (0.60, 0.0, "uncertain"),   # too close to 0.5
    (0.999, 2.5, "uncertain"),  # out of domain: never confident
    (0.999, float("nan"), "uncertain"),  # a broken score is never trusted
])
def test_verdict_band_rule(p_fake, ood, band):
    from inference.bands import verdict_bands

    bands, _ = verdict_bands([p_fake], [ood], DECISION)
    assert bands[0] == band


def test_band_rule_without_ood_or_guard_is_the_plain_rule():
    from inference.bands import verdict_bands

    plain = {"threshold": 0.5, "leaning_from": 0.7, "confident_from": 0.9}
    bands, out = verdict_bands([0.95, 0.8, 0.55], None, plain)
    assert list(bands) == ["confident", "leaning", "uncertain"] and not out.any()
