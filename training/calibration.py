"""Calibration and distance fits on held-out features (NumPy/SciPy/scikit-learn; no TensorFlow).

Platt scaling turns the served logit into a calibrated P(FAKE); the Mahalanobis fit is one half of the
out-of-domain score (`training.graph.OODCombination`).
"""
from __future__ import annotations

import numpy as np


def fit_platt(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(a, b) minimising the log loss of sigmoid(a * logit + b) on held-out data (Platt scaling).

    `a` alone would be temperature scaling (T = 1/a); the bias `b` also removes the threshold drift
    of a model whose scores all shifted a little towards one class.
    """
    from scipy.optimize import minimize

    logits = logits.astype(np.float64).reshape(-1)
    labels = labels.astype(np.float64).reshape(-1)

    def nll(params: np.ndarray) -> float:
        z = params[0] * logits + params[1]
        return float(np.mean(np.logaddexp(0.0, z) - labels * z))  # = BCE(sigmoid(z), y), stable

    result = minimize(nll, x0=np.array([1.0, 0.0]), method="L-BFGS-B", bounds=[(0.01, 100.0), (-20.0, 20.0)])
    return float(result.x[0]), float(result.x[1])


def fit_mahalanobis(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class means (2, D) and whitening matrix L (D, D) with L @ L.T = inverse shared covariance."""
    from sklearn.covariance import LedoitWolf

    features = features.astype(np.float64)
    means = np.stack([features[labels == k].mean(axis=0) for k in (0, 1)])
    centred = features - means[labels.astype(int)]
    precision = np.linalg.inv(LedoitWolf().fit(centred).covariance_)
    return means, np.linalg.cholesky((precision + precision.T) / 2)


def mahalanobis_numpy(features: np.ndarray, means: np.ndarray, whitening: np.ndarray) -> np.ndarray:
    """(N, D) -> (N,) squared distance to the nearer class mean."""
    return np.min([(((features - means[k]) @ whitening) ** 2).sum(axis=1) for k in (0, 1)], axis=0)
