"""Retraining: the worker that learns accepted labelled pictures, and the plumbing the app uses to run it.

The job sits between training and serving, so it is its own package: it imports `training` (the methods
that grow a version from its parent), `evaluation` and `inference`; `webapp` imports it to start, watch
and cancel runs and to serve the versions it writes. It never imports `webapp`, and `webapp` never
imports `training` (tests/test_architecture.py). The app and the worker meet only at files in the data
folder:

- `retrain_labels.json` (`retraining.labels`): the pictures an admin accepted and their labels, written
  by the app when a run starts; the worker never opens the app's database.
- `retrain.lock` and `retrain_status.json` (`retraining.jobs`): one worker at a time, its progress.
- `models/v<N>/` and `models/active.json` (`retraining.versions`): the versions and the served one.

    python -m retraining --data-dir data          # what the admin page's Retrain button runs
"""
