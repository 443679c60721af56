"""The metrics live in `evaluation.metrics` (the web side's Evaluate page uses them too, and `webapp`
never imports `training`). Kept only for `training/export.py`, which still imports them from here;
new code imports `evaluation.metrics`."""
from evaluation.metrics import compute_metrics, expected_calibration_error, save_plots  # noqa: F401
