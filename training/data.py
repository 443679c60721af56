"""CIFAKE loading: Kaggle-layout zip or folder -> decoded uint8 arrays, deduplicated, cached.

Layout expected (zip or folder): `train/REAL/*.jpg`, `train/FAKE/*.jpg`, `test/REAL/*.jpg`,
`test/FAKE/*.jpg`. A folder holding `train.zip` and `test.zip` (as `../shared/datasets/cifake/`)
works too. Labels: REAL = 0, FAKE = 1.

Duplicates (see the dataset README): byte-identical copies inside a split are dropped (the first in
name order is kept); train images that also appear in test are dropped from train, so nothing the
model trains on is measured as "unseen". The test split itself is kept whole (the official split),
and `leaked_test_mask` marks the test images that also occur in the original train split, so both
figures can be reported.
"""
from __future__ import annotations

import hashlib
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inference.preprocess import preprocess_image

CLASS_NAMES = ("REAL", "FAKE")  # label 0, label 1
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "datasets" / "cifake"
CACHE_DIR = PROJECT_ROOT / ".cache" / "cifake"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
_ENTRY = re.compile(r"(?:^|/)(train|test)/(real|fake)/([^/]+)$", re.IGNORECASE)


class DatasetLayoutError(ValueError):
    """The data does not have the CIFAKE layout."""


@dataclass
class Split:
    images: np.ndarray  # (N, 32, 32, 3) uint8 RGB
    labels: np.ndarray  # (N,) uint8, REAL = 0, FAKE = 1
    names: np.ndarray  # (N,) str, "REAL/1234.jpg"
    digests: np.ndarray  # (N,) str, sha256 of the file bytes

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> "Split":
        return Split(self.images[index], self.labels[index], self.names[index], self.digests[index])


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


def _list_entries(source: Path, split: str) -> tuple[list[tuple[str, int]], callable, str]:
    """Find `split`'s image entries in a zip or folder: [(relative name, label)], a reader, a description."""
    if source.is_dir() and (source / f"{split}.zip").is_file():
        source = source / f"{split}.zip"
    names, reader = _open_source(source)
    where = str(source)
    entries = []
    for name in sorted(names):
        match = _ENTRY.search(name)
        if match and match.group(1).lower() == split and name.lower().endswith(IMAGE_SUFFIXES):
            entries.append((name, CLASS_NAMES.index(match.group(2).upper())))
    labels = {label for _, label in entries}
    if labels != {0, 1}:
        tops = sorted({n.split("/")[0] + "/" + (n.split("/")[1] if n.count("/") > 1 else "") for n in names})[:8]
        raise DatasetLayoutError(
            f"Expected {split}/REAL/*.jpg and {split}/FAKE/*.jpg in {where}; found "
            f"{len(entries)} matching images ({', '.join(CLASS_NAMES[l] for l in sorted(labels)) or 'no class'})"
            f" and these folders: {tops or 'none'}."
        )
    return entries, reader, where


def _open_source(path: Path) -> tuple[list[str], callable]:
    """A zip file or a folder -> (its file names, relative and '/'-separated; a function reading one)."""
    if path.is_file() and zipfile.is_zipfile(path):
        archive = zipfile.ZipFile(path)
        return [n for n in archive.namelist() if not n.endswith("/")], archive.read
    if path.is_dir():
        names = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
        return names, lambda n: (path / n).read_bytes()
    raise DatasetLayoutError(f"{path} is neither a zip file nor a folder.")


def _fingerprint(path: Path) -> str:
    """sha256 of a zip file, or of a folder's sorted (name, size) list."""
    digest = hashlib.sha256()
    if path.is_file():
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    else:
        for p in sorted(path.rglob("*")):
            if p.is_file():
                digest.update(f"{p.relative_to(path).as_posix()}\0{p.stat().st_size}\n".encode())
    return digest.hexdigest()


def read_split(source: Path, split: str, use_cache: bool = True) -> tuple[Split, dict]:
    """Decode every image of `split` ("train" or "test"); cached in .cache/ by the source's sha256."""
    entries, reader, where = _list_entries(source, split)
    origin = Path(where)
    fingerprint = {"path": str(origin), "sha256": _fingerprint(origin)}
    cache = CACHE_DIR / f"{split}-{fingerprint['sha256'][:16]}.npz"
    if use_cache and cache.exists():
        with np.load(cache, allow_pickle=False) as stored:
            return Split(stored["images"], stored["labels"], stored["names"], stored["digests"]), fingerprint
    images = np.empty((len(entries), 32, 32, 3), np.uint8)
    digests, names = [], []
    for i, (name, _) in enumerate(entries):
        data = reader(name)
        digests.append(hashlib.sha256(data).hexdigest())
        images[i] = preprocess_image(data, name=name)
        names.append("/".join(name.split("/")[-2:]))
    labels = np.array([label for _, label in entries], np.uint8)
    split_data = Split(images, labels, np.array(names), np.array(digests))
    if use_cache:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, images=images, labels=labels, names=split_data.names, digests=split_data.digests)
        tmp.replace(cache)  # atomic: an interrupted run leaves no half-written cache
    return split_data, fingerprint


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


def load_labelled(path: str | Path, use_cache: bool = False) -> Split:
    """Any labelled zip or folder with REAL/ and FAKE/ (under train/ or test/, or at its top)."""
    path = Path(path)
    for split in ("test", "train"):
        try:
            return read_split(path, split, use_cache)[0]
        except DatasetLayoutError:
            continue
    return _read_flat(path)


def _read_flat(path: Path) -> Split:
    """A zip or folder with REAL/ and FAKE/ folders anywhere (no train/test level)."""
    pattern = re.compile(r"(?:^|/)(real|fake)/([^/]+)$", re.IGNORECASE)
    names, reader = _open_source(path)
    entries = [(n, m.group(1).upper()) for n in sorted(names) if (m := pattern.search(n))]
    if not entries:
        raise DatasetLayoutError(f"Expected REAL/ and FAKE/ folders of images in {path}; found none.")
    images, labels, digests, kept = [], [], [], []
    for name, cls in entries:
        data = reader(name)
        images.append(preprocess_image(data, name=name))
        labels.append(CLASS_NAMES.index(cls))
        digests.append(hashlib.sha256(data).hexdigest())
        kept.append(name)
    return Split(np.stack(images), np.array(labels, np.uint8), np.array(kept), np.array(digests))
