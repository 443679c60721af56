"""Compare trained models on the CIFAKE *validation* split only (never the test split):
`python -m bench.compare_validation exported/model.keras runs/v2/best.keras`

For each Keras model (a run's best.keras or an exported model.keras): accuracy at logit 0, accuracy after
Platt scaling fitted on validation, ROC-AUC, the share with calibrated confidence >= 0.9, and the same
with left-right flip test-time augmentation (mean of the two logits); with two or more models also
their ensemble (mean of the members' logits, plain and with flips). This is how the shipped backbone
was chosen. Writes `bench/results/compare_validation.json`.

`--redelivered` also turns every validation picture into each upload of `bench.robustness` (re-encoded,
enlarged then shrunk by the app's preprocessing, flipped) and reports each model's accuracy there (flips,
Platt fitted on clean validation), so the robustness goal (every row within 2 points of clean) can be
checked before a run is exported and the test split is looked at.
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

    from training.calibration import fit_platt

    a, b = fit_platt(logits, labels)
    p = 1 / (1 + np.exp(-(a * logits + b)))
    return {"accuracy_at_0": float(((logits > 0) == (labels == 1)).mean()),
            "accuracy_platt": float(((p >= 0.5) == (labels == 1)).mean()),
            "roc_auc": float(roc_auc_score(labels, logits)),
            "confident_share": float((np.maximum(p, 1 - p) >= 0.9).mean())}


def redelivered_uploads(images: np.ndarray) -> dict[str, np.ndarray]:
    """Each of bench.robustness's uploads of the pictures, through the app's own preprocessing."""
    from bench.robustness import TRANSFORMS
    from inference.preprocess import preprocess_image

    return {name: np.stack([preprocess_image(transform(x)) for x in images]).astype(np.float32)
            for name, transform in TRANSFORMS.items() if transform is not None}


def redelivered_accuracy(probe, clean_logits: np.ndarray, uploads: dict, labels: np.ndarray) -> dict:
    """Accuracy (flips, Platt fitted on the clean pictures) per upload, and the worst drop from clean."""
    from training.calibration import fit_platt

    a, b = fit_platt(clean_logits, labels)
    accuracy = lambda logits: float(((a * logits + b >= 0) == (labels == 1)).mean())  # noqa: E731
    rows = {"clean": accuracy(clean_logits)}
    for name, pixels in uploads.items():
        logits = (probe.predict(pixels, batch_size=1024, verbose=0).reshape(-1)
                  + probe.predict(pixels[:, :, ::-1], batch_size=1024, verbose=0).reshape(-1)) / 2
        rows[name] = accuracy(logits)
    return {"rows": rows, "worst_drop_points": max((rows["clean"] - v) * 100 for v in rows.values())}


def main(argv: list[str] | None = None) -> dict:
    import keras

    from training.data import load_cifake
    from training.model import LOGIT_LAYER

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="Keras model files")
    parser.add_argument("--data", default=None, help="CIFAKE folder (default ../shared/datasets/cifake)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "compare_validation.json"))
    parser.add_argument("--redelivered", action="store_true",
                        help="also the accuracy on bench.robustness's uploads of the validation pictures")
    args = parser.parse_args(argv)
    val = load_cifake(args.data).val
    images, labels = val.images.astype(np.float32), val.labels
    uploads = redelivered_uploads(val.images) if args.redelivered else {}
    result = {"validation_images": int(len(labels))}
    members = []
    for path in args.models:
        model = keras.models.load_model(path)
        probe = keras.Model(model.input, model.get_layer(LOGIT_LAYER).output)
        plain = probe.predict(images, batch_size=1024, verbose=0).reshape(-1)
        flipped = probe.predict(images[:, :, ::-1], batch_size=1024, verbose=0).reshape(-1)
        result[path] = {"plain": scores(plain, labels), "flip_tta": scores((plain + flipped) / 2, labels)}
        if uploads:
            result[path]["redelivered"] = redelivered_accuracy(probe, (plain + flipped) / 2, uploads, labels)
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
