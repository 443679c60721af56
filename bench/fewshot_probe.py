"""Can a few labelled pictures teach this backbone a new generator? A nearest-neighbour probe of its features:
`python -m bench.fewshot_probe [--model exported/model.keras] [--shares 0.1 0.3]`

Same split as `bench.retrain` (per generator a share labelled; real photos labelled by whole source).
Features: the pooled moments every retraining method reads (`training.features`), standardised and
unit-normalised. Reported per share: the parent's held-out detection (mean over generators) and real-photo
false positives; k-nearest-labelled-neighbour votes (k = 1, 3, 5) alone; and per generator how often a
held-out picture's nearest labelled picture is one of the labelled fakes rather than a labelled photo. If
that is near the share of fakes among the labelled pictures, the features hold no few-shot signal for that
generator, whatever head is fitted on them.

The ceiling for any head on these features (`--ceiling-seeds`, splits 0..K-1): a class-balanced logistic
regression on the standardised moments plus the parent's logit, fitted on the labelled pictures, then
- its ROC AUC on the held-out fakes versus the held-out real photos (and the parent's);
- its detection (mean over generators) at the parent's real-photo false-positive rate, with the threshold
  chosen *on the held-out pictures themselves* - an oracle no product can have. If that stays under the
  goal (50 % at the parent's false positives), no linear head on this backbone meets it;
- leave-generators-out: the same probe in 5-fold cross-validation grouped by generator / photo source,
  i.e. how far anything it learns carries to a generator it has never seen.
Results: bench/results/fewshot_probe.json.
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


def unit_features(features: dict) -> tuple[np.ndarray, np.ndarray]:
    """(served logit (N,), unit-normalised standardised pooled moments (N, M)) from
    `training.incremental.extract_features`, as the retraining methods read them."""
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


def linear_probe_ceiling(logit: np.ndarray, moments: np.ndarray, data: dict, share: float, real_share: float,
                         seeds: int) -> dict:
    """See the module docstring: held-out AUC, oracle-threshold detection at the parent's false positives,
    averaged over scenario splits; and leave-generators-out AUC on all pictures."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold

    labels = data["label"]
    x = np.c_[(moments - moments.mean(axis=0)) / (moments.std(axis=0) + 1e-6), logit]

    def detection_at(score: np.ndarray, split: dict, false_positives: float) -> float:
        threshold = np.quantile(score[split["held_real"]], 1 - false_positives)
        return float(np.mean([(score[i] > threshold).mean() for i in split["held_fake"].values()]))

    rows = []
    for seed in range(seeds):
        split = split_scenario(data, share, real_share, seed)
        labelled = split["labelled"]
        probe = LogisticRegression(C=0.03, max_iter=5000, class_weight="balanced").fit(x[labelled], labels[labelled])
        score = probe.decision_function(x)
        held = np.concatenate([*split["held_fake"].values(), split["held_real"]])
        parent_fp = float((logit[split["held_real"]] > 0).mean())
        rows.append({"seed": seed, "auc_probe": float(roc_auc_score(labels[held], score[held])),
                     "auc_parent": float(roc_auc_score(labels[held], logit[held])), "parent_false_positives": parent_fp,
                     "parent_detection": float(np.mean([(logit[i] > 0).mean() for i in split["held_fake"].values()])),
                     "oracle_detection_probe": detection_at(score, split, parent_fp),
                     "oracle_detection_parent": detection_at(logit, split, parent_fp)})
    mean = {key: float(np.mean([r[key] for r in rows])) for key in rows[0] if key != "seed"}
    unseen = np.zeros(len(labels))
    for train, test in GroupKFold(5).split(x, labels, data["group"]):
        unseen[test] = LogisticRegression(C=0.03, max_iter=5000, class_weight="balanced").fit(
            x[train], labels[train]).decision_function(x[test])
    return {"splits": rows, "mean": mean, "leave_generators_out_auc": float(roc_auc_score(labels, unseen))}


def main(argv: list[str] | None = None) -> dict:
    import keras

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "exported" / "model.keras"))
    parser.add_argument("--shares", nargs="+", type=float, default=[0.1, 0.3])
    parser.add_argument("--real-share", type=float, default=0.35)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ceiling-seeds", type=int, default=5, help="scenario splits for the linear-probe ceiling")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "fewshot_probe.json"))
    args = parser.parse_args(argv)
    from training.incremental import extract_features

    data = load_offdomain()
    features = extract_features(keras.models.load_model(args.model), data["images"])
    logit, unit = unit_features(features)
    report = {"model": args.model, "shares": {}}
    for share in args.shares:
        split = split_scenario(data, share, args.real_share, args.seed)
        report["shares"][str(share)] = result = probe_share(logit, unit, data["label"], split)
        print(f"share {share}: {json.dumps({k: v for k, v in result.items() if k != 'nearest_labelled_is_fake'})}")
        print("  nearest labelled picture is a fake:", json.dumps({k: round(v, 2) for k, v in
                                                                   result["nearest_labelled_is_fake"].items()}))
        result["linear_probe_ceiling"] = ceiling = linear_probe_ceiling(
            features["logit"], features["moments"], data, share, args.real_share, args.ceiling_seeds)
        print(f"  linear-probe ceiling over {args.ceiling_seeds} splits: {json.dumps(ceiling['mean'])}; "
              f"leave-generators-out AUC {ceiling['leave_generators_out_auc']:.3f}")
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
