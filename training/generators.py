"""CIFAR-size generators as extra FAKE sources: `cifar-generators-dev` read by *source*, folded by source.

The set holds native 32×32 samples of 12 CIFAR-10 generative models (`../shared/datasets/
cifar-generators-dev`, its README). Several folders come from one repository (`progan-chainer` and
`sndcgan-chainer`), so a *source* is a repository, and every split made here — the leave-generators-out
folds that choose the recipe, the held-out part a retraining benchmark measures — keeps a source whole.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference.preprocess import preprocess_image
from training.data import PROJECT_ROOT

GENERATORS_DIR = PROJECT_ROOT.parent / "shared" / "datasets" / "cifar-generators-dev"


@dataclass
class GeneratedPictures:
    images: np.ndarray  # (N, 32, 32, 3) uint8 RGB, the published pixels
    generators: np.ndarray  # (N,) str, folder name, e.g. "ddpm-floros"
    sources: np.ndarray  # (N,) str, source repository, e.g. "andreasfloros/diffusion"
    names: np.ndarray  # (N,) str, "ddpm-floros/ddpm-floros_0000.png"

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, keep: np.ndarray) -> "GeneratedPictures":
        return GeneratedPictures(self.images[keep], self.generators[keep], self.sources[keep], self.names[keep])

    def without_sources(self, sources: tuple[str, ...] | list[str]) -> "GeneratedPictures":
        return self.subset(~np.isin(self.sources, list(sources)))

    def of_sources(self, sources: tuple[str, ...] | list[str]) -> "GeneratedPictures":
        return self.subset(np.isin(self.sources, list(sources)))


def resolve_generators_dir(path: str | Path | None = None) -> Path:
    root = Path(path) if path else GENERATORS_DIR
    if not (root / "manifest.csv").is_file():
        raise FileNotFoundError(
            f"No manifest.csv in {root}: expected the cifar-generators-dev folder "
            "(one folder of 32x32 PNGs per generator and a manifest.csv with generator and repo columns)."
        )
    return root


def load_generators(path: str | Path | None = None) -> GeneratedPictures:
    """Every picture listed in the manifest, decoded by the product's preprocessing (a no-op at 32×32)."""
    root = resolve_generators_dir(path)
    with (root / "manifest.csv").open(newline="") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda r: r["file"])
    if not rows:
        raise ValueError(f"{root / 'manifest.csv'} lists no pictures.")
    images = np.stack([preprocess_image((root / r["file"]).read_bytes(), name=r["file"]) for r in rows])
    return GeneratedPictures(images, np.array([r["generator"] for r in rows]), np.array([r["repo"] for r in rows]),
                             np.array([r["file"] for r in rows]))


def source_folds(pictures: GeneratedPictures, n_folds: int = 4) -> list[tuple[str, ...]]:
    """Sources split into `n_folds` groups of similar size (largest source first into the smallest
    group; ties broken by name), so each fold holds out whole repositories. Deterministic."""
    sources, counts = np.unique(pictures.sources, return_counts=True)
    if n_folds < 2 or n_folds > len(sources):
        raise ValueError(f"n_folds must be between 2 and the number of sources ({len(sources)}), got {n_folds}.")
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    sizes = [0] * n_folds
    for source, count in sorted(zip(sources, counts), key=lambda sc: (-sc[1], sc[0])):
        smallest = min(range(n_folds), key=lambda k: (sizes[k], k))
        folds[smallest].append(str(source))
        sizes[smallest] += int(count)
    return [tuple(sorted(f)) for f in folds]


def jpeg_round_trip(images: np.ndarray, quality: int) -> np.ndarray:
    """(N, 32, 32, 3) uint8 -> same, each encoded as JPEG at `quality` (4:2:0, as CIFAKE's files) and decoded."""
    from PIL import Image

    from training.augment import reencode

    return np.stack([np.asarray(reencode(Image.fromarray(pixels), "JPEG", quality)) for pixels in images])


def fingerprint(pictures: GeneratedPictures) -> str:
    """sha256 of the pixels and names, so a run records exactly which pictures it trained on."""
    digest = hashlib.sha256(pictures.images.tobytes())
    digest.update("\n".join(pictures.names.tolist()).encode())
    return digest.hexdigest()
