"""Does averaging over shifted copies help? Validation split only:
`python -m bench.shift_tta runs/v2/best.keras [more.keras ...]`

Each picture is scored as itself and as copies shifted by whole pixels (reflect padding, as in training's
shifts), each with its mirror image; the logits are averaged, Platt scaling is fitted on validation, and
the accuracy is reported per view set (and for the mean of the members' logits when several models are
given). Writes `bench/results/shift_tta.json`.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
VIEW_SETS = {
    "flip": [(0, 0)],
    "flip+4x1px": [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)],
    "flip+8x1px": [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)],
    "flip+4x2px": [(0, 0), (2, 0), (-2, 0), (0, 2), (0, -2)],
    "flip+8x2px": [(dy, dx) for dy in (-2, 0, 2) for dx in (-2, 0, 2)],
}


def shifted(images: np.ndarray, dy: int, dx: int, pad: int = 2) -> np.ndarray:
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="reflect")
    h, w = images.shape[1:3]
    return padded[:, pad + dy: pad + dy + h, pad + dx: pad + dx + w]


def main(argv: list[str] | None = None) -> dict:
    import keras

    from bench.compare_validation import scores
    from training.data import load_cifake
    from training.model import LOGIT_LAYER

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="Keras model files")
    parser.add_argument("--data", default=None, help="CIFAKE folder (default ../shared/datasets/cifake)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "shift_tta.json"))
    args = parser.parse_args(argv)
    val = load_cifake(args.data).val
    images, labels = val.images.astype(np.float32), val.labels
    offsets = sorted({o for views in VIEW_SETS.values() for o in views})
    result: dict = {"validation_images": int(len(labels)), "view_sets": {k: v for k, v in VIEW_SETS.items()}}
    per_model = []
    for path in args.models:
        model = keras.models.load_model(path)
        probe = keras.Model(model.input, model.get_layer(LOGIT_LAYER).output)
        logits = {}
        for dy, dx in offsets:
            view = shifted(images, dy, dx)
            logits[(dy, dx)] = (probe.predict(view, batch_size=1024, verbose=0).reshape(-1)
                                + probe.predict(view[:, :, ::-1], batch_size=1024, verbose=0).reshape(-1)) / 2
        per_model.append(logits)
        result[path] = {name: scores(np.mean([logits[o] for o in views], axis=0), labels)
                        for name, views in VIEW_SETS.items()}
        print(path, json.dumps({k: round(v["accuracy_platt"], 5) for k, v in result[path].items()}), flush=True)
    if len(per_model) > 1:
        result["ensemble"] = {name: scores(np.mean([np.mean([m[o] for o in views], axis=0) for m in per_model], axis=0),
                                           labels) for name, views in VIEW_SETS.items()}
        print("ensemble", json.dumps({k: round(v["accuracy_platt"], 5) for k, v in result["ensemble"].items()}), flush=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
