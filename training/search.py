"""Topology search, as Bird & Lotfi did with 36 networks: `python -m training.search`.

Trains a grid of small CNNs for a few epochs on a subset of train (same augmentation and schedule as
the real run), scores each on the validation split, measures its ONNX Runtime throughput (batch 256,
2 threads) and writes `runs/search/leaderboard.csv` and `leaderboard.png` (the committed copy is in
`bench/results/`). The test split is never
touched here.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from training.train import RUNS_DIR, TrainConfig, train

GRID = {  # name: (filters per stage, convs per stage)
    "A 32-64-128 x1-1-1": ((32, 64, 128), (1, 1, 1)),
    "B 32-64-128 x1-2-2": ((32, 64, 128), (1, 2, 2)),
    "C 32-64-128 x2-2-2": ((32, 64, 128), (2, 2, 2)),
    "D 24-48-96 x1-2-2": ((24, 48, 96), (1, 2, 2)),
    "E 16-32-64 x1-2-2": ((16, 32, 64), (1, 2, 2)),
    "F 16-32-64-128 x1-2-2-2": ((16, 32, 64, 128), (1, 2, 2, 2)),
    "G 32-64 x1-2": ((32, 64), (1, 2)),
    "H 48-96-192 x1-1-1": ((48, 96, 192), (1, 1, 1)),
}


def ort_images_per_second(keras_path: Path, batch: int = 256, repeats: int = 7) -> float:
    import keras
    import onnxruntime as ort

    model = keras.models.load_model(keras_path)
    pixels = np.random.default_rng(0).integers(0, 256, (batch, 32, 32, 3)).astype("float32")
    model(pixels[:1])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        model.export(str(path), format="onnx", verbose=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    session.run(None, {name: pixels})
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        session.run(None, {name: pixels})
        times.append(time.perf_counter() - started)
    return batch / float(np.median(times))


def plot_leaderboard(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        ax.scatter(row["mflops"], row["val_accuracy"] * 100, s=40)
        ax.annotate(row["name"].split()[0], (row["mflops"], row["val_accuracy"] * 100),
                    textcoords="offset points", xytext=(5, 3))
    ax.set(xlabel="MFLOPs per image", ylabel="validation accuracy (%)", xscale="log",
           title="Topology search (subset, few epochs)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subset", type=int, default=20000, help="training images per candidate")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per candidate")
    parser.add_argument("--only", nargs="*", default=None, help="letters of GRID entries to run (default all)")
    parser.add_argument("--data", default="", help="CIFAKE zip or folder")
    parser.add_argument("--out", default=str(RUNS_DIR / "search"), help="output folder")
    args = parser.parse_args(argv)

    import keras

    from training.model import CNNConfig, build_cnn, count_flops

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, (filters, convs) in GRID.items():
        if args.only and name.split()[0] not in args.only:
            continue
        config = replace(TrainConfig(), filters=filters, convs=convs, epochs=args.epochs, subset=args.subset,
                         patience=args.epochs, data=args.data, run_dir=str(out / name.split()[0]))
        started = time.time()
        run_dir = train(config)
        state = json.loads((run_dir / "state.json").read_text())
        best = max(state["history"], key=lambda h: h["val_accuracy"])
        model = build_cnn(CNNConfig(filters, convs))
        rows.append({
            "name": name, "filters": "-".join(map(str, filters)), "convs": "-".join(map(str, convs)),
            "params": model.count_params(), "mflops": round(count_flops(model) / 1e6, 1),
            "val_accuracy": round(best["val_accuracy"], 4), "val_auc": round(best["val_auc"], 4),
            "train_seconds": round(time.time() - started), "ort_images_per_s": round(ort_images_per_second(run_dir / "best.keras")),
        })
        keras.backend.clear_session()
        print(rows[-1], flush=True)
        rows.sort(key=lambda r: -r["val_accuracy"])
        with (out / "leaderboard.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        plot_leaderboard(rows, out / "leaderboard.png")
    print(f"leaderboard: {out / 'leaderboard.csv'}")


if __name__ == "__main__":
    main()
