"""How good is a model on labelled pictures: read labelled zips and folders, compute metrics, draw plots.

Both sides need this: training evaluates and exports (`training.evaluate`, `training.export`), retraining
judges a new version, and the admin's *Evaluate* page measures the served model on an uploaded zip. So it
lives in its own package that imports only `inference` (the one preprocessing function), and `training`,
`retraining` and `webapp` all import it; it imports none of them (tests/test_architecture.py).

- `evaluation.labelled`: a labelled zip or folder (REAL/ and FAKE/, optionally under train/ or test/)
  -> `Split` of (N, 32, 32, 3) uint8 pictures and labels, REAL = 0, FAKE = 1.
- `evaluation.metrics`: accuracy, precision, recall, F1, ROC-AUC, ECE, Brier, log loss; the plots.
"""
