"""Can a network trained from scratch learn CIFAR-size generators once the file format cannot tell?

`python -m bench.generator_feasibility [--folds 0,1,2,3] [--with-sd] --out bench/results/X.json`

The question behind issue 21 (model v3): fine-tuning v2 with the dev generators re-encoded as JPEG q75
(as CIFAKE's REAL pictures are) did not even fit its own training generators. Is that the stage (a few
epochs from v2's backbone) or the data (after JPEG q75 at 32×32, these generators look like CIFAR-10)?
For each leave-generators-out fold (`training.generators.source_folds`, whole repositories), this trains
the shipped network's topology from scratch, with flips and shifts only, on CIFAKE training REAL pictures
against the fold's training generators (JPEG q75, repeated so both classes weigh alike; `--with-sd` adds
as many CIFAKE FAKE pictures, as the product would), and reports at the thresholds that give 1 / 3 / 5 %
false positives on CIFAKE *validation* REAL: the share detected of its training generators (fit) and of
the held-out generators (generalisation), both as JPEG q75 and as published (PNG), and CIFAKE validation
FAKE recall. Validation data only; a research probe, not the product path (no calibration, no bands).
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from bench import mean_rows, save_partial
from bench.generator_probe import detection_at


def _dataset(real: np.ndarray, fake: np.ndarray, rng: np.random.Generator):
    images = np.concatenate([real, fake])
    labels = np.concatenate([np.zeros(len(real)), np.ones(len(fake))]).astype("float32")
    order = rng.permutation(len(images))
    return images[order], labels[order]


def run_fold(fold: int, args, cifake, pictures, folds) -> dict:
    import keras

    from training.augment import flip_and_shift
    from training.generators import jpeg_round_trip
    from training.model import ANCHOR_CONFIG, build_cnn

    rng = np.random.default_rng(args.seed + fold)
    keras.utils.set_random_seed(args.seed + fold)
    held = pictures.of_sources(folds[fold])
    seen = pictures.without_sources(folds[fold])
    seen_jpeg, held_jpeg = jpeg_round_trip(seen.images, 75), jpeg_round_trip(held.images, 75)
    train = cifake.train
    real = train.images[train.labels == 0]
    real = real[rng.choice(len(real), size=min(args.real, len(real)), replace=False)]
    repeats = max(1, round((args.real if not args.with_sd else args.real // 2) / len(seen_jpeg)))
    fakes = [np.tile(seen_jpeg, (repeats, 1, 1, 1))]
    if args.with_sd:
        sd = train.images[train.labels == 1]
        fakes.append(sd[rng.choice(len(sd), size=args.real // 2, replace=False)])
    fake = np.concatenate(fakes)

    model = build_cnn(ANCHOR_CONFIG, name="feasibility")
    steps = (len(real) + len(fake)) // args.batch_size
    schedule = keras.optimizers.schedules.CosineDecay(args.learning_rate, steps * args.epochs, alpha=0.01)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="binary_crossentropy")
    start = time.perf_counter()
    for _ in range(args.epochs):
        images, labels = _dataset(real, fake, rng)
        images = flip_and_shift(images, rng, max_shift=2)
        model.fit(images.astype("float32"), labels, batch_size=args.batch_size, epochs=1, verbose=0)
    seconds = time.perf_counter() - start

    def score(images):
        return model.predict(images.astype("float32"), batch_size=512, verbose=0).reshape(-1)

    val = cifake.val
    val_scores = score(val.images)
    real_scores, sd_scores = val_scores[val.labels == 0], val_scores[val.labels == 1]
    groups = {"training gens JPEG": score(seen_jpeg), "held-out gens JPEG": score(held_jpeg),
              "held-out gens PNG": score(held.images), "training gens PNG": score(seen.images)}
    rows = {}
    for rate in (0.01, 0.03, 0.05):
        row = {"cifake_val_fake_recall": detection_at(real_scores, sd_scores, rate)}
        row.update({name: detection_at(real_scores, s, rate) for name, s in groups.items()})
        rows[f"{rate:.0%} FP"] = row
    per_generator = {}
    held_scores = groups["held-out gens JPEG"]
    for generator in sorted(set(held.generators)):
        mask = held.generators == generator
        per_generator[generator] = detection_at(real_scores, held_scores[mask], 0.03)
    result = {"fold": fold, "held_out_sources": list(folds[fold]), "train_seconds": round(seconds, 1),
              "n_real": len(real), "n_fake": len(fake), "generator_repeats": repeats, "rows": rows,
              "held_out_per_generator_at_3pct_fp_jpeg": per_generator}
    print(json.dumps(result, indent=2), flush=True)
    return result


def main(argv: list[str] | None = None) -> dict:
    from training.data import load_cifake
    from training.generators import load_generators, source_folds

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", default="0,1,2,3", help="which leave-generators-out folds to run")
    parser.add_argument("--n-folds", type=int, default=4)
    parser.add_argument("--real", type=int, default=8000, help="CIFAKE training REAL pictures per fold")
    parser.add_argument("--with-sd", action="store_true", help="add CIFAKE FAKE (Stable Diffusion) pictures too")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="", help="results JSON, rewritten after every fold")
    args = parser.parse_args(argv)
    cifake, pictures = load_cifake(), load_generators()
    folds = source_folds(pictures, args.n_folds)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    results = {"settings": settings, "folds": []}
    for fold in (int(f) for f in args.folds.split(",")):
        results["folds"].append(run_fold(fold, args, cifake, pictures, folds))
        rows = [f["rows"]["3% FP"] for f in results["folds"]]
        results["mean_at_3pct_fp"] = mean_rows(rows, rows[0])
        save_partial(results, args.out)
    print(json.dumps(results["mean_at_3pct_fp"], indent=2))
    return results


if __name__ == "__main__":
    main()
