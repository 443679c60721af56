"""CIFAKE loading: Kaggle-layout zip or folder -> decoded uint8 arrays, deduplicated, cached.

Layout expected (zip or folder): `train/REAL/*.jpg`, `train/FAKE/*.jpg`, `test/REAL/*.jpg`,
`test/FAKE/*.jpg`. A folder holding `train.zip` and `test.zip` (as `../shared/datasets/cifake/`)
works too. Labels: REAL = 0, FAKE = 1. Reading one split (and any labelled zip) is
`evaluation.labelled`, shared with the web side; this module adds the cache, deduplication and the
train / validation / test split that training uses.

Duplicates (see the dataset README): byte-identical copies inside a split are dropped (the first in
name order is kept); train images that also appear in test are dropped from train, so nothing the
model trains on is measured as "unseen". The test split itself is kept whole (the official split),
and `leaked_test_mask` marks the test images that also occur in the original train split, so both
figures can be reported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evaluation import labelled
from evaluation.labelled import CLASS_NAMES, DatasetLayoutError, Split  # noqa: F401 - training's modules read them here
from inference.model_card import PROJECT_ROOT

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "datasets" / "cifake"
CACHE_DIR = labelled.DEFAULT_CACHE_DIR  # tests point it at a temporary folder


@dataclass
class Cifake:
    train: Split
    val: Split
    test: Split
    leaked_test_mask: np.ndarray  # (len(test),) bool: test image also occurs in the original train
    fingerprint: dict = field(default_factory=dict)  # source files and their sha256
    dedup_report: dict = field(default_factory=dict)


def resolve_data_path(data: str | Path | None) -> Path:
    """`--data` value (or None for the default location) -> an existing path."""
    if data is None:
        if DEFAULT_DATA.exists():
            return DEFAULT_DATA
        raise FileNotFoundError(
            f"No CIFAKE data at the default location {DEFAULT_DATA}; pass --data PATH "
            "(the Kaggle zip, or a folder with train/REAL, train/FAKE, test/REAL, test/FAKE)."
        )
    path = Path(data).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"--data {path} does not exist.")
    return path


def read_split(source: Path, split: str, use_cache: bool = True) -> tuple[Split, dict]:
    """Decode every image of `split` ("train" or "test"); cached in `CACHE_DIR` by the source's sha256."""
    return labelled.read_split(source, split, CACHE_DIR if use_cache else None)


def first_occurrences(digests: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of each distinct digest, in original order."""
    _, first = np.unique(digests, return_index=True)
    return np.sort(first)


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices), `fraction` of each class in validation, fixed seed."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    train_idx, val_idx = train_test_split(index, test_size=fraction, random_state=seed, stratify=labels)
    return np.sort(train_idx), np.sort(val_idx)


def load_cifake(
    data: str | Path | None = None, val_fraction: float = 0.1, seed: int = 0, use_cache: bool = True
) -> Cifake:
    """Train (deduplicated, leakage removed) / validation (carved from train) / official test."""
    source = resolve_data_path(data)
    train_all, train_fp = read_split(source, "train", use_cache)
    test, test_fp = read_split(source, "test", use_cache)
    keep = first_occurrences(train_all.digests)
    in_test = np.isin(train_all.digests[keep], test.digests)
    train_clean = train_all.subset(keep[~in_test])
    train_idx, val_idx = stratified_split(train_clean.labels, val_fraction, seed)
    leaked = np.isin(test.digests, train_all.digests)
    report = {
        "train_files": len(train_all),
        "train_duplicates_dropped": int(len(train_all) - len(keep)),
        "train_dropped_as_in_test": int(in_test.sum()),
        "train_used": int(len(train_idx)),
        "val_used": int(len(val_idx)),
        "test_files": len(test),
        "test_internal_duplicates": int(len(test) - len(first_occurrences(test.digests))),
        "test_leaked_from_train": int(leaked.sum()),
    }
    return Cifake(
        train_clean.subset(train_idx),
        train_clean.subset(val_idx),
        test,
        leaked,
        {"train": train_fp, "test": test_fp},
        report,
    )
