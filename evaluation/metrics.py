"""Metrics (FAKE = positive class) and their plots. scikit-learn computes; ECE is binned here
because scikit-learn has no ECE (its `calibration_curve` gives the same bins).

Used by training (evaluate, export), retraining (a new version's metrics) and the admin's Evaluate page."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn import metrics as skm


def expected_calibration_error(labels: np.ndarray, p_fake: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the predicted class's confidence: sum over equal-width bins of |acc - conf| * share.

    labels (N,) in {0, 1}; p_fake (N,) in [0, 1].
    """
    labels = np.asarray(labels).astype(int)
    p_fake = np.asarray(p_fake, dtype=np.float64)
    predicted = (p_fake >= 0.5).astype(int)
    confidence = np.where(predicted == 1, p_fake, 1.0 - p_fake)  # in [0.5, 1]
    correct = (predicted == labels).astype(np.float64)
    edges = np.linspace(0.5, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(ece)


def compute_metrics(labels: np.ndarray, p_fake: np.ndarray, threshold: float = 0.5) -> dict:
    """Accuracy, precision, recall, F1 (FAKE positive), ROC-AUC, confusion matrix, ECE, Brier, log loss."""
    labels = np.asarray(labels).astype(int)
    p_fake = np.asarray(p_fake, dtype=np.float64).reshape(-1)
    if labels.shape != p_fake.shape:
        raise ValueError(f"labels has {labels.shape[0]} entries but p_fake has {p_fake.shape[0]}.")
    predicted = (p_fake >= threshold).astype(int)
    both_classes = len(np.unique(labels)) == 2
    tn, fp, fn, tp = skm.confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    return {
        "n": int(len(labels)),
        "threshold": float(threshold),
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "precision": float(skm.precision_score(labels, predicted, zero_division=0)),
        "recall": float(skm.recall_score(labels, predicted, zero_division=0)),
        "f1": float(skm.f1_score(labels, predicted, zero_division=0)),
        "roc_auc": float(skm.roc_auc_score(labels, p_fake)) if both_classes else None,
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        "ece": expected_calibration_error(labels, p_fake),
        "brier": float(skm.brier_score_loss(labels, p_fake)),
        "log_loss": float(skm.log_loss(labels, np.clip(p_fake, 1e-7, 1 - 1e-7), labels=[0, 1])),
    }


def save_plots(labels: np.ndarray, p_fake: np.ndarray, out_dir: Path, threshold: float = 0.5,
               title: str = "") -> dict[str, str]:
    """Confusion matrix, ROC curve and reliability diagram as PNGs; returns {kind: path}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = np.asarray(labels).astype(int)
    p_fake = np.asarray(p_fake, dtype=np.float64).reshape(-1)
    paths = {}

    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    skm.ConfusionMatrixDisplay.from_predictions(labels, (p_fake >= threshold).astype(int), labels=[0, 1],
                                                display_labels=["REAL", "FAKE"], cmap="Blues", ax=ax,
                                                values_format="d", colorbar=False)
    ax.set_title(f"Confusion matrix {title}".strip())
    paths["confusion_matrix"] = _save(fig, out_dir / "confusion_matrix.png")

    if len(np.unique(labels)) == 2:
        fig, ax = plt.subplots(figsize=(4.2, 3.8))
        skm.RocCurveDisplay.from_predictions(labels, p_fake, ax=ax, name="model", plot_chance_level=True)
        ax.set_title(f"ROC {title}".strip())
        paths["roc"] = _save(fig, out_dir / "roc.png")

    fig, ax = plt.subplots(figsize=(4.2, 3.8))
    prob_true, prob_pred = calibration_curve(labels, p_fake, n_bins=10, strategy="uniform")
    ax.plot([0, 1], [0, 1], "k:", label="perfect")
    ax.plot(prob_pred, prob_true, "o-", label=f"model (ECE {expected_calibration_error(labels, p_fake):.3f})")
    ax.set(xlabel="predicted P(FAKE)", ylabel="observed share FAKE", title=f"Reliability {title}".strip())
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    paths["reliability"] = _save(fig, out_dir / "reliability.png")
    return paths


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)
