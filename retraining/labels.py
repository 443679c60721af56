"""The worker's input: the labelled pictures an admin accepted, as a JSON file in the data folder.

The app writes `retrain_labels.json` when a run starts (holding the worker lock, so two starts cannot
interleave): `{"images/ab12….png": "FAKE", …}`, paths relative to the data folder. The worker reads
only this file, never the app's database, so it needs no database driver and no `webapp` code.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
from PIL import Image

from evaluation.labelled import CLASS_NAMES, Split

LABELS_NAME = "retrain_labels.json"


def latest_labels(accepted: Iterable[Mapping]) -> dict[str, str]:
    """Accepted feedback rows, oldest first ({"image_path", "claimed_label"}) -> {image path: label}.
    One label per picture: the last accepted decision wins."""
    labels = {}
    for row in accepted:
        labels[row["image_path"]] = row["claimed_label"]
    return labels


def write_labels(path: Path, labels: Mapping[str, str]) -> None:
    """Store `labels` ({relative path: "REAL" | "FAKE"}) atomically at `path`."""
    unknown = sorted({label for label in labels.values() if label not in CLASS_NAMES})
    if unknown:
        raise ValueError(f"Labels must be one of {CLASS_NAMES}; got {unknown}.")
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(dict(labels), indent=0))
    tmp.replace(path)


def read_labels(path: Path) -> dict[str, str]:
    if not path.exists():
        raise FileNotFoundError(f"No labelled pictures to learn from: {path} does not exist (the app writes it "
                                "when an admin starts a run; accept flags or add a labelled zip first).")
    return json.loads(path.read_text())


def load_new_images(folder: Path, labels: Mapping[str, str]) -> Split:
    """{path relative to `folder`: label} -> Split of the (32, 32, 3) uint8 pictures that still exist."""
    images, classes, names = [], [], []
    for relative, label in labels.items():
        file = Path(folder) / relative
        if not file.exists():  # deleted with its user meanwhile
            continue
        with Image.open(file) as picture:
            images.append(np.asarray(picture.convert("RGB"), np.uint8))
        classes.append(CLASS_NAMES.index(label))
        names.append(relative)
    if not images:
        raise ValueError("No accepted labelled images to learn from.")
    return Split(np.stack(images), np.array(classes, np.uint8), np.array(names), np.array(names))
