"""Can a few labelled pictures teach this backbone a new generator? A nearest-neighbour probe of its features:
`python -m bench.fewshot_probe [--model exported/model.keras] [--shares 0.1 0.3]`

Same split as `bench.retrain` (per generator a share labelled; real photos labelled by whole source).
Features: the pooled moments every retraining method reads (`training.features`), standardised and
unit-normalised. Reported per share: the parent's held-out detection (mean over generators) and real-photo
false positives; k-nearest-labelled-neighbour votes (k = 1, 3, 5) alone; and per generator how often a
held-out picture's nearest labelled picture is one of the labelled fakes rather than a labelled photo. If
that is near the share of fakes among the labelled pictures, the features hold no few-shot signal for that
generator, whatever head is fitted on them. Results: bench/results/fewshot_probe.json.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from bench.retrain import load_offdomain, split_scenario

ROOT = Path(__file__).resolve().parent.parent


def unit_features(model, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(served logit (N,), unit-normalised standardised pooled moments (N, M)), read by
    `training.retrain.extract_features` as the retraining methods read them."""
    from training.retrain import extract_features

    features = extract_features(model, images)
    moments = features["moments"]
    z = (moments - moments.mean(axis=0)) / (moments.std(axis=0) + 1e-6)
    return features["logit"], z / np.linalg.norm(z, axis=1, keepdims=True)


def probe_share(logit: np.ndarray, unit: np.ndarray, labels: np.ndarray, split: dict) -> dict:
    labelled = split["labelled"]
    held_real, held_fake = split["held_real"], split["held_fake"]
    similarity = unit @ unit[labelled].T

    def detection(called: np.ndarray) -> dict:
        return {"detection_mean_over_generators": float(np.mean([called[i].mean() for i in held_fake.values()])),
                "real_false_positives": float(called[held_real].mean())}

    out = {"labelled": int(len(labelled)), "labelled_fakes": int(labels[labelled].sum()),
           "parent": detection(logit > 0)}
    for k in (1, 3, 5):
        nearest = np.argsort(-similarity, axis=1)[:, :k]
        out[f"knn_{k}"] = detection(labels[labelled][nearest].mean(axis=1) > 0.5)
    fakes, reals = labelled[labels[labelled] == 1], labelled[labels[labelled] == 0]
    nearer_fake = (unit @ unit[fakes].T).max(axis=1) > (unit @ unit[reals].T).max(axis=1)
    out["nearest_labelled_is_fake"] = {g: float(nearer_fake[i].mean()) for g, i in held_fake.items()}
    out["nearest_labelled_is_fake"]["held-out real photos"] = float(nearer_fake[held_real].mean())
    return out


def main(argv: list[str] | None = None) -> dict:
    import keras

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "exported" / "model.keras"))
    parser.add_argument("--shares", nargs="+", type=float, default=[0.1, 0.3])
    parser.add_argument("--real-share", type=float, default=0.35)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "fewshot_probe.json"))
    args = parser.parse_args(argv)
    data = load_offdomain()
    logit, unit = unit_features(keras.models.load_model(args.model), data["images"])
    report = {"model": args.model, "shares": {}}
    for share in args.shares:
        split = split_scenario(data, share, args.real_share, args.seed)
        report["shares"][str(share)] = result = probe_share(logit, unit, data["label"], split)
        print(f"share {share}: {json.dumps({k: v for k, v in result.items() if k != 'nearest_labelled_is_fake'})}")
        print("  nearest labelled picture is a fake:", json.dumps({k: round(v, 2) for k, v in
                                                                   result["nearest_labelled_is_fake"].items()}))
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
