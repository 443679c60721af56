"""The verdict-band rule, in one place: the classifier's verdicts and the export's band table use it.

    uncertain  confidence < leaning_from, or out of domain (ood_score > ood_threshold)
    confident  confidence >= the confident bar, and in domain
    leaning    otherwise

`confidence` is the calibrated probability of the more likely class, in [0.5, 1]. The confident bar is
`confident_from`, raised to `guarded_confident_from` for pictures near the edge of the training domain
(ood_score > guard_threshold): there the model's calibration, measured on CIFAKE, is least trustworthy.
All thresholds come from the `decision` block of model.json; models without an out-of-domain score or
without a guard simply skip those parts of the rule.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

BANDS = ("confident", "leaning", "uncertain")


def confidence_of(p_fake, threshold: float = 0.5) -> np.ndarray:
    """Probability of the more likely class (FAKE when p_fake >= threshold), same shape as p_fake."""
    p_fake = np.asarray(p_fake, dtype=np.float64)
    return np.where(p_fake >= threshold, p_fake, 1.0 - p_fake)


def out_of_domain(ood_score, decision: Mapping) -> np.ndarray:
    """(N,) bool: ood_score above the exported threshold (all False when the model has no threshold)."""
    scores = np.asarray(ood_score, dtype=np.float64)
    threshold = decision.get("ood_threshold")
    if threshold is None:
        return np.zeros(scores.shape, dtype=bool)
    return np.where(np.isnan(scores), True, scores > threshold)  # NaN: never trust the verdict


def confident_bar(ood_score, decision: Mapping, n: int) -> np.ndarray:
    """(N,) confidence needed for the confident band: raised near the domain's edge when a guard is set."""
    bar = np.full(n, float(decision["confident_from"]))
    guard = decision.get("guard_threshold")
    if ood_score is not None and guard is not None:
        bar = np.where(np.asarray(ood_score, dtype=np.float64) > guard,
                       float(decision["guarded_confident_from"]), bar)
    return bar


def verdict_bands(p_fake, ood_score, decision: Mapping) -> tuple[np.ndarray, np.ndarray]:
    """p_fake (N,) and ood_score (N,) or None -> (bands (N,) str, out_of_domain (N,) bool)."""
    p_fake = np.atleast_1d(np.asarray(p_fake, dtype=np.float64))
    if ood_score is not None:
        ood_score = np.atleast_1d(np.asarray(ood_score, dtype=np.float64))
    confidence = confidence_of(p_fake, float(decision["threshold"]))
    out = out_of_domain(ood_score, decision) if ood_score is not None else np.zeros(len(p_fake), bool)
    bar = confident_bar(ood_score, decision, len(p_fake))
    bands = np.where(out | (confidence < float(decision["leaning_from"])), "uncertain",
                     np.where(confidence >= bar, "confident", "leaning"))
    return bands, out
