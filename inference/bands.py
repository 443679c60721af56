"""The verdict-band rule, in one place: the classifier's verdicts and the export's band table use it.

    confident  confidence >= confident_from and in domain
    leaning    leaning_from <= confidence < confident_from and in domain
    uncertain  confidence < leaning_from, or out of domain

`confidence` is the calibrated probability of the more likely class, in [0.5, 1].
"""
from __future__ import annotations

import numpy as np

BANDS = ("confident", "leaning", "uncertain")


def confidence_of(p_fake: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Probability of the more likely class (FAKE when p_fake >= threshold), same shape as p_fake."""
    p_fake = np.asarray(p_fake, dtype=np.float64)
    return np.where(p_fake >= threshold, p_fake, 1.0 - p_fake)


def verdict_bands(p_fake, out_of_domain, threshold: float, leaning_from: float, confident_from: float) -> np.ndarray:
    """Arrays of p_fake (N,) and out_of_domain (N,) bool -> (N,) array of band names."""
    confidence = confidence_of(p_fake, threshold)
    out = np.asarray(out_of_domain, dtype=bool)
    return np.where(out | (confidence < leaning_from), "uncertain",
                    np.where(confidence >= confident_from, "confident", "leaning"))
