"""`model.json`, the exported model's card: what the graph takes and returns, how it was fitted and
measured, and where it came from (`training.export` writes it; `inference.model_card` reads it)."""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from inference.model_card import SCHEMA_VERSION
from inference.preprocess import DEFAULT_RESAMPLE
from training.data import CLASS_NAMES
from training.graph import CALIBRATED_LOGIT, ONNX_INPUT, ONNX_OUTPUTS

INPUT = {"name": ONNX_INPUT, "shape": [None, 32, 32, 3], "dtype": "float32",
         "range": "0-255 (scaled to [0, 1] inside the graph)", "colour_order": "RGB"}
OUTPUTS = [
    {"index": 0, "name": ONNX_OUTPUTS[0], "shape": [None, 1],
     "meaning": "P(FAKE): calibrated probability that the picture is AI-generated"},
    {"index": 1, "name": ONNX_OUTPUTS[1], "shape": [None, 1],
     "meaning": "ood_score: max of the out-of-domain head's logit and the Mahalanobis distance of "
                "the pooled features, each scaled so that 0 is its threshold (higher = less like "
                "CIFAKE); out of domain above decision.ood_threshold"},
]
PREPROCESSING = {"input_size": [32, 32], "resize": DEFAULT_RESAMPLE, "aspect": "squash (not kept)",
                 "antialias": "Pillow reducing_gap=3.0 box pre-reduction; JPEG DCT draft for large files",
                 "alpha": "composited on white", "exif_orientation": "applied",
                 "animated": "first frame", "colour_order": "RGB", "function": "inference.preprocess.preprocess_image"}


def model_card(*, version: int, parent: int | None, run_dir: Path, train_config: dict, state: dict,
               architecture: dict, graph, measured: dict, config, data, files: dict, versions: dict,
               provenance: dict) -> dict:
    """`graph`: training.export.ServedGraph; `measured`: training.export.save_and_measure's result."""
    metrics = measured["metrics"]
    return {
        "schema_version": SCHEMA_VERSION,
        "version": version,
        "parent_version": parent,
        "model_name": train_config["model"],
        "architecture": architecture,
        "ensemble": {"backbones": [str(run_dir / "best.keras"), *config.members], "flip_tta": config.flip_tta,
                     "passes_per_picture": graph.passes,
                     "rule": "mean of the backbones' logits over each picture (and its mirror image), "
                             "then Platt scaling",
                     "gradcam": "the first backbone's unmirrored pass (its last_conv)"},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "class_names": list(CLASS_NAMES),
        "positive_class": "FAKE",
        "input": INPUT,
        "outputs": OUTPUTS,
        "preprocessing": PREPROCESSING,
        "decision": graph.decision,
        "out_of_domain": graph.domain_report,
        "calibration": {"method": "Platt scaling sigmoid(a * logit + b), fitted on validation",
                        "a": graph.platt[0], "b": graph.platt[1], "temperature": 1.0 / graph.platt[0],
                        "validation_ece_before": measured["validation_ece_before"],
                        "validation_ece_after": metrics["validation"]["ece"],
                        "test_ece_after": metrics["test"]["ece"]},
        "gradcam": {"layer": "last_conv", "logit_layer": CALIBRATED_LOGIT},
        "metrics": metrics,
        "bands": measured["bands"],
        "parity": measured["parity"],
        "training": {"config": train_config, "epochs_run": state["epoch"], "best_epoch": state["best_epoch"],
                     "best_val_accuracy_uncalibrated": state["best_val_accuracy"],
                     "train_minutes": round(state["train_seconds"] / 60, 1),
                     "teacher_minutes": round(state.get("teacher_seconds", 0.0) / 60, 1),  # distillation's pass
                     "history": state["history"]},
        "export_config": asdict(config),
        "provenance": provenance,
        "data": {"fingerprint": data.fingerprint, "dedup": data.dedup_report,
                 "validation": f"{train_config['val_fraction']} of deduplicated train, stratified, seed "
                               f"{train_config['seed']}"},
        "plots": measured["plots"],
        "files": files,
        "versions": versions,
    }
