"""Text and tables that more than one page shows (pages never import each other): the metric table of
Admin · Model and Admin · Evaluate, the verdict bands of About and Admin · Model."""
from __future__ import annotations

from inference.bands import BANDS, Decision

METRIC_HEADERS = ["data", "n", "accuracy", "precision", "recall", "F1", "ROC-AUC", "ECE"]


def metrics_row(data: str, values: dict) -> list:
    """One row under METRIC_HEADERS from `evaluation.metrics.compute_metrics`' dict."""
    return [data, values["n"], f"{values['accuracy'] * 100:.2f} %", f"{values['precision']:.4f}",
            f"{values['recall']:.4f}", f"{values['f1']:.4f}",
            f"{values['roc_auc']:.4f}" if values.get("roc_auc") is not None else "—", f"{values['ece']:.4f}"]


def metrics_rows(metadata: dict) -> list[list]:
    """One row per data set the model's metadata has metrics for."""
    return [metrics_row(split, values) for split, values in metadata.get("metrics", {}).items()]


def bands_markdown(metadata: dict) -> str:
    """The verdict bands measured on the CIFAKE test split, each with its rule from the model's Decision."""
    bands = metadata.get("bands", {}).get("test")
    if not bands:
        return ""
    rules = Decision.from_dict(metadata["decision"]).band_rules()
    lines = ["| band | rule | share of CIFAKE test | error rate |", "|---|---|---|---|"]
    for band in BANDS:
        row = bands[band]
        error = "—" if row["error_rate"] is None else f"{row['error_rate'] * 100:.1f} %"
        lines.append(f"| {band} | {rules[band]} | {row['share'] * 100:.1f} % | {error} |")
    return "\n".join(lines)
