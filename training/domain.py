"""The out-of-domain head: "is this picture unlike CIFAKE?", learned by outlier exposure.

CIFAKE's REAL class is only CIFAR-10 and its FAKE class only Stable Diffusion 1.4, so the classifier
cannot know what a modern photo or another generator's picture looks like; features of a network
trained on CIFAKE alone do not see such pictures as foreign (FINDINGS: distances in feature space barely
help). A logistic head on the frozen network's multi-layer pooled moments (`training.features`), fitted
on CIFAKE training images (in domain, clean and re-delivered) against views of real photos and other
generators' pictures from the *fitting sources* of `offdomain-dev` (out of domain), learns it. Its
logit is the ONNX graph's `ood_score`; its threshold is a quantile of CIFAKE validation scores.

Sources, never files, are split (whole repositories of photos, whole generators): the evaluation
sources are never seen while fitting or choosing, and `bench.offdomain` reports both parts.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from inference.preprocess import decode_image, resize_to_model_input
from training.data import PROJECT_ROOT

OFFDOMAIN_DIR = PROJECT_ROOT.parent / "shared" / "datasets" / "offdomain-dev"

# Fitting sources, chosen by hand before any measurement so that both parts hold faces, scenes,
# objects and old photos, and diffusion models as well as GANs; about half of the files on each side.
FIT_SOURCES = frozenset({
    # real photos (154 of 314)
    "dusty-nv/jetson-inference", "ageitgey/face_recognition", "cszn/KAIR", "pjreddie/darknet",
    "facebookresearch/segment-anything", "TencentARC/GFPGAN", "JingyunLiang/SwinIR", "elementary/wallpapers",
    "haotian-liu/LLaVA", "thumbor/thumbor",
    # generators (160 of 319)
    "sd1", "sdxl", "ldm", "stylegan2-lucidrains", "flux1", "deepfloyd-if", "biggan",
})


@dataclass(frozen=True)
class OffdomainPicture:
    path: Path
    label: str  # "REAL" or "FAKE"
    source: str  # repository for photos, generator folder for generated pictures
    part: str  # "fit" or "eval"


def list_offdomain(root: str | Path = OFFDOMAIN_DIR) -> list[OffdomainPicture]:
    """Every picture of offdomain-dev with its label, source and part (from `manifest.csv`)."""
    root = Path(root)
    manifest = root / "manifest.csv"
    if not manifest.exists():
        raise FileNotFoundError(f"No manifest.csv in {root}: is this the offdomain-dev folder?")
    pictures = []
    with manifest.open(newline="") as handle:
        for row in csv.DictReader(handle):
            source = row["generator"] or row["repo"]
            pictures.append(OffdomainPicture(root / row["file"], row["label"].upper(), source,
                                             "fit" if source in FIT_SOURCES else "eval"))
    return pictures


def picture_views(path: Path, n_views: int, rng: np.random.Generator) -> np.ndarray:
    """(n_views, 32, 32, 3) uint8: the whole picture as the app sees it, then random crops of it.

    Crops cover 10-100 % of the area with aspect 3:4-4:3 and are shrunk by the app's own resize, so the
    head sees the scales a user's crop or thumbnail would show; half of them are mirrored.
    """
    image, _, _ = decode_image(str(path))
    views = [resize_to_model_input(image)]
    width, height = image.size
    for _ in range(n_views - 1):
        area = rng.uniform(0.1, 1.0) * width * height
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        w = int(min(width, max(8, round(np.sqrt(area * aspect)))))
        h = int(min(height, max(8, round(np.sqrt(area / aspect)))))
        x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        crop = image.crop((x, y, x + w, y + h))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        views.append(resize_to_model_input(crop))
    return np.stack(views)


def views_of(pictures: list[OffdomainPicture], n_views: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """All views of `pictures` and, per view, the index of its picture: ((M, 32, 32, 3) uint8, (M,) int)."""
    rng = np.random.default_rng(seed)
    views, owner = [], []
    for i, picture in enumerate(pictures):
        v = picture_views(picture.path, n_views, rng)
        views.append(v)
        owner += [i] * len(v)
    return np.concatenate(views), np.asarray(owner)


@dataclass(frozen=True)
class DomainHeadConfig:
    views_per_picture: int = 48  # out-of-domain views per fitting picture (the whole picture + crops)
    in_domain_images: int = 20000  # CIFAKE training images (each also once re-delivered)
    regularisation: float = 0.1  # inverse L2 strength C of the logistic regression
    quantile: float = 0.97  # ood threshold = this quantile of CIFAKE validation scores
    seed: int = 0


@dataclass
class DomainHead:
    """logit = ((moments - mean) / scale) @ weights + bias; higher = less like CIFAKE."""

    mean: np.ndarray  # (M,)
    scale: np.ndarray  # (M,)
    weights: np.ndarray  # (M,)
    bias: float

    def logits(self, moments: np.ndarray) -> np.ndarray:
        return ((moments - self.mean) / self.scale) @ self.weights + self.bias

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """Dense-layer kernel (M, 1) and bias (1,) with the standardisation folded in."""
        kernel = (self.weights / self.scale).astype(np.float32)[:, None]
        bias = np.array([self.bias - float(np.sum(self.mean * self.weights / self.scale))], np.float32)
        return kernel, bias


def fit_domain_head(in_moments: np.ndarray, out_moments: np.ndarray, regularisation: float = 0.1) -> DomainHead:
    """Balanced logistic regression, in domain (label 0) versus out of domain (label 1)."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([in_moments, out_moments]).astype(np.float64)
    y = np.concatenate([np.zeros(len(in_moments)), np.ones(len(out_moments))])
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    model = LogisticRegression(C=regularisation, class_weight="balanced", max_iter=2000)
    model.fit((x - mean) / scale, y)
    return DomainHead(mean, scale, model.coef_[0].copy(), float(model.intercept_[0]))


def in_domain_images(train_images: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n clean CIFAKE training images plus one re-delivered copy of each: (2n, 32, 32, 3) uint8.

    Re-delivered uploads (enlarged, re-encoded, blurred) must stay in domain, so they are shown as such.
    """
    from training.augment import flip_and_shift, redeliver

    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(train_images))[:n]
    clean = train_images[pick]
    redelivered = np.stack([redeliver(image, rng) for image in clean])
    return np.concatenate([clean, flip_and_shift(redelivered, rng, 0)])
