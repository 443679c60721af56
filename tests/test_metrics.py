"""Metrics against values computed by hand."""
import numpy as np
import pytest

from evaluation.metrics import compute_metrics, expected_calibration_error, save_plots


def test_metrics_match_hand_computed_values():
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    p_fake = np.array([0.1, 0.2, 0.6, 0.3, 0.9, 0.8, 0.4, 0.7, 0.95, 0.35])
    m = compute_metrics(labels, p_fake)
    # predicted FAKE: idx 2, 4, 5, 7, 8 -> tp = 4 (4, 5, 7, 8), fp = 1 (2); fn = 2 (6, 9); tn = 3
    assert m["confusion_matrix"] == {"tn": 3, "fp": 1, "fn": 2, "tp": 4}
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["precision"] == pytest.approx(4 / 5)
    assert m["recall"] == pytest.approx(4 / 6)
    assert m["f1"] == pytest.approx(2 * (0.8 * 4 / 6) / (0.8 + 4 / 6))
    # AUC: pairs (pos, neg) where pos score > neg score, out of 6 * 4 = 24
    pos, neg = p_fake[labels == 1], p_fake[labels == 0]
    wins = sum((p > n) for p in pos for n in neg)
    assert m["roc_auc"] == pytest.approx(wins / 24)


def test_ece_by_hand_on_two_bins():
    labels = np.array([1, 1, 0, 0])
    p_fake = np.array([0.9, 0.9, 0.4, 0.3])  # confidences 0.9, 0.9, 0.6, 0.7; all correct
    # bins of width 1/30: 0.9 -> one bin (acc 1, conf 0.9), 0.6 and 0.7 in two others (acc 1)
    expected = 0.5 * 0.1 + 0.25 * 0.4 + 0.25 * 0.3
    assert expected_calibration_error(labels, p_fake) == pytest.approx(expected)


def test_perfectly_calibrated_certain_predictions_have_zero_ece():
    assert expected_calibration_error(np.array([0, 1, 1]), np.array([0.0, 1.0, 1.0])) == pytest.approx(0.0)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="3 entries but p_fake has 2"):
        compute_metrics(np.array([0, 1, 1]), np.array([0.1, 0.2]))


def test_plots_are_written(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    paths = save_plots(labels, np.clip(labels * 0.6 + rng.uniform(0, 0.4, 200), 0, 1), tmp_path)
    assert set(paths) == {"confusion_matrix", "roc", "reliability"}
    assert all((tmp_path / f"{k}.png").stat().st_size > 1000 for k in paths)
