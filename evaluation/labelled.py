"""Labelled pictures from a zip or a folder -> a `Split` of decoded uint8 arrays.

Layouts: `train/REAL/*.jpg`, `train/FAKE/*.jpg`, `test/REAL/*.jpg`, `test/FAKE/*.jpg` (Kaggle's CIFAKE
layout; a folder holding `train.zip` and `test.zip`, as `../shared/datasets/cifake/`, works too), or
REAL/ and FAKE/ folders anywhere (`load_labelled`). Labels: REAL = 0, FAKE = 1. Every picture goes
through `inference.preprocess.preprocess_image`, the function the app and the CLI use.

Reading the whole CIFAKE split (and caching it, deduplicating it) is training's business and lives in
`training.data`, which builds on `read_split` here.
"""
from __future__ import annotations

import hashlib
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from inference.archive import IMAGE_SUFFIXES
from inference.model_card import PROJECT_ROOT
from inference.preprocess import preprocess_image

CLASS_NAMES = ("REAL", "FAKE")  # label 0, label 1
DEFAULT_CACHE_DIR = PROJECT_ROOT / ".cache" / "cifake"  # decoded splits, by the source's sha256
_ENTRY = re.compile(r"(?:^|/)(train|test)/(real|fake)/([^/]+)$", re.IGNORECASE)
_FLAT_ENTRY = re.compile(r"(?:^|/)(real|fake)/([^/]+)$", re.IGNORECASE)


class DatasetLayoutError(ValueError):
    """The data does not have the expected layout (the message names what was found)."""


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


def _is_picture(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def _list_entries(source: Path, split: str) -> tuple[list[tuple[str, int]], Callable[[str], bytes], str]:
    """Find `split`'s image entries in a zip or folder: [(relative name, label)], a reader, a description."""
    if source.is_dir() and (source / f"{split}.zip").is_file():
        source = source / f"{split}.zip"
    names, reader = _open_source(source)
    where = str(source)
    entries = []
    for name in sorted(names):
        match = _ENTRY.search(name)
        if match and match.group(1).lower() == split and _is_picture(name):
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


def _open_source(path: Path) -> tuple[list[str], Callable[[str], bytes]]:
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


def count_split(source: Path, split: str) -> dict[str, int]:
    """How many REAL and FAKE pictures `split` has, from the file names alone (no decoding): a check an
    admin page can afford on every visit. DatasetLayoutError if the source is missing or laid out wrong."""
    source = Path(source)
    if not source.exists():
        raise DatasetLayoutError(f"There is no data at {source}.")
    entries = _list_entries(source, split)[0]
    fake = sum(label for _, label in entries)
    return {"REAL": len(entries) - fake, "FAKE": fake}


def read_split(source: Path, split: str, cache_dir: Path | None = None) -> tuple[Split, dict]:
    """Decode every image of `split` ("train" or "test") -> (Split, {"path", "sha256"} of the source).
    With `cache_dir`, the decoded arrays are kept there by the source's sha256 and read back next time."""
    entries, reader, where = _list_entries(Path(source), split)
    origin = Path(where)
    fingerprint = {"path": str(origin), "sha256": _fingerprint(origin)}
    cache = None if cache_dir is None else Path(cache_dir) / f"{split}-{fingerprint['sha256'][:16]}.npz"
    if cache is not None and cache.exists():
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
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, images=images, labels=labels, names=split_data.names, digests=split_data.digests)
        tmp.replace(cache)  # atomic: an interrupted run leaves no half-written cache
    return split_data, fingerprint


def load_labelled(path: str | Path, cache_dir: Path | None = None) -> Split:
    """Any labelled zip or folder with REAL/ and FAKE/ (under train/ or test/, or at its top)."""
    path = Path(path)
    for split in ("test", "train"):
        try:
            return read_split(path, split, cache_dir)[0]
        except DatasetLayoutError:
            continue
    return _read_flat(path)


def _read_flat(path: Path) -> Split:
    """A zip or folder with REAL/ and FAKE/ folders anywhere (no train/test level)."""
    names, reader = _open_source(path)
    entries = [(n, m.group(1).upper()) for n in sorted(names) if (m := _FLAT_ENTRY.search(n))]
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
