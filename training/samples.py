"""Copy the few CIFAKE files the repo ships: `python -m training.samples`.

- `examples/*.jpg`: 4 REAL and 4 FAKE files of the official test split (UI examples, API tests),
  chosen by a fixed random seed, not by how the model does on them.
- `examples/replay/{train,val}/{REAL,FAKE}/`: 150 per class from the deduplicated train split and from
  the validation split (the same carving as training), so retraining has replay data and a held-out
  original slice on machines without the dataset.
Files are copied byte for byte (CIFAKE is MIT-licensed).
"""
from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

import numpy as np

from training.data import PROJECT_ROOT, load_cifake, resolve_data_path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="CIFAKE folder with train.zip and test.zip")
    parser.add_argument("--out", default=str(PROJECT_ROOT / "examples"))
    parser.add_argument("--per-class", type=int, default=150)
    args = parser.parse_args(argv)
    source = resolve_data_path(args.data)
    out = Path(args.out)
    data = load_cifake(source)
    rng = np.random.default_rng(2024)
    with zipfile.ZipFile(source / "test.zip") as archive:
        for label, cls in enumerate(("REAL", "FAKE")):
            idx = rng.choice(np.flatnonzero(data.test.labels == label), 4, replace=False)
            for i in sorted(idx):
                name = data.test.names[i]
                (out / f"{cls.lower()}_{Path(name).stem.replace(' ', '_').replace('(', '').replace(')', '')}.jpg"
                 ).write_bytes(archive.read(f"test/{name}"))
    with zipfile.ZipFile(source / "train.zip") as archive:
        for part, split in (("train", data.train), ("val", data.val)):
            for label, cls in enumerate(("REAL", "FAKE")):
                folder = out / "replay" / part / cls
                folder.mkdir(parents=True, exist_ok=True)
                idx = rng.choice(np.flatnonzero(split.labels == label), args.per_class, replace=False)
                for i in sorted(idx):
                    name = split.names[i]
                    (folder / Path(name).name.replace(" ", "_")).write_bytes(archive.read(f"train/{name}"))
    print(f"wrote samples under {out}")


if __name__ == "__main__":
    main()
