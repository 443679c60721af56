"""Compare trained models on the CIFAKE *validation* split only (never the test split):
`python -m bench.compare_validation exported/model.keras runs/v2/best.keras`

For each Keras model (a run's best.keras or an exported model.keras): accuracy at logit 0, accuracy after
Platt scaling fitted on validation, ROC-AUC, the share with calibrated confidence >= 0.9, and the same
with left-right flip test-time augmentation (mean of the two logits); with two or more models also
their ensemble (mean of the members' logits, plain and with flips). This is how the shipped backbone
was chosen. Writes `bench/results/compare_validation.json`.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def scores(logits: np.ndarray, labels: np.ndarray) -> dict:
    from sklearn.metrics import roc_auc_score

    from training.export import fit_platt

    a, b = fit_platt(logits, labels)
    p = 1 / (1 + np.exp(-(a * logits + b)))
    return {"accuracy_at_0": float(((logits > 0) == (labels == 1)).mean()),
            "accuracy_platt": float(((p >= 0.5) == (labels == 1)).mean()),
            "roc_auc": float(roc_auc_score(labels, logits)),
            "confident_share": float((np.maximum(p, 1 - p) >= 0.9).mean())}


def main(argv: list[str] | None = None) -> dict:
    import keras

    from training.data import load_cifake
    from training.model import LOGIT_LAYER

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="Keras model files")
    parser.add_argument("--data", default=None, help="CIFAKE folder (default ../shared/datasets/cifake)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "compare_validation.json"))
    args = parser.parse_args(argv)
    val = load_cifake(args.data).val
    images, labels = val.images.astype(np.float32), val.labels
    result = {"validation_images": int(len(labels))}
    members = []
    for path in args.models:
        model = keras.models.load_model(path)
        probe = keras.Model(model.input, model.get_layer(LOGIT_LAYER).output)
        plain = probe.predict(images, batch_size=1024, verbose=0).reshape(-1)
        flipped = probe.predict(images[:, :, ::-1], batch_size=1024, verbose=0).reshape(-1)
        result[path] = {"plain": scores(plain, labels), "flip_tta": scores((plain + flipped) / 2, labels)}
        members.append((plain, flipped))
        print(path, json.dumps(result[path]), flush=True)
    if len(members) > 1:
        plain = np.mean([m[0] for m in members], axis=0)
        both = np.mean([(m[0] + m[1]) / 2 for m in members], axis=0)
        result["ensemble"] = {"members": args.models, "plain": scores(plain, labels), "flip_tta": scores(both, labels)}
        print("ensemble", json.dumps(result["ensemble"]), flush=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
