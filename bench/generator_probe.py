"""What a trained network learned from extra generator sources: `python -m bench.generator_probe RUN.keras --fold K`.

CIFAKE's REAL class is all JPEG (quality ~75) while cifar-generators-dev's samples are lossless PNGs, so a
network trained on both can learn the file format instead of the generators. For a Keras checkpoint (a
run's best.keras / last.keras) this reports, at the thresholds that give 1 / 3 / 5 % false positives on
CIFAKE validation REAL pictures: CIFAKE validation FAKE recall, and the share detected of the fold's
held-out generators and of its training generators, each as published (PNG) and re-encoded as JPEG q75.
A network that learned generators detects both copies alike; one that learned the format detects only
the PNGs. Validation only; raw network outputs (no calibration, no flips, no bands).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def detection_at(real_scores: np.ndarray, scores: np.ndarray, false_positive_rate: float) -> float:
    threshold = np.quantile(real_scores, 1 - false_positive_rate)
    return float((scores >= threshold).mean())


def main(argv: list[str] | None = None) -> dict:
    import keras

    from training.data import load_cifake
    from training.generators import jpeg_round_trip, load_generators, source_folds

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="Keras checkpoint")
    parser.add_argument("--fold", type=int, required=True, help="the fold the run held out")
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--out", default="", help="results JSON (default: printed only)")
    args = parser.parse_args(argv)
    model = keras.models.load_model(args.model, compile=False)
    score = lambda images: model.predict(images.astype("float32"), batch_size=512, verbose=0).reshape(-1)  # noqa: E731
    val = load_cifake().val
    val_scores = score(val.images)
    real, fake = val_scores[val.labels == 0], val_scores[val.labels == 1]
    pictures = load_generators()
    held_sources = source_folds(pictures, args.folds)[args.fold]
    groups = {"held-out": pictures.of_sources(held_sources), "training": pictures.without_sources(held_sources)}
    rows = {}
    for rate in (0.01, 0.03, 0.05):
        row = {"cifake_fake_recall": detection_at(real, fake, rate)}
        for name, group in groups.items():
            row[f"{name} as PNG"] = detection_at(real, score(group.images), rate)
            row[f"{name} as JPEG q75"] = detection_at(real, score(jpeg_round_trip(group.images, 75)), rate)
        rows[f"{rate:.0%} FP"] = row
    result = {"model": args.model, "fold": args.fold, "held_out_sources": list(held_sources), "rows": rows}
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
