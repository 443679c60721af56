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


@dataclass(frozen=True)
class RuleCandidate:
    ood_quantile: float  # out of domain above this quantile of CIFAKE validation scores
    guard_quantile: float | None  # above this quantile the confident band needs `guarded_confident_from`
    guarded_confident_from: float | None


# A guarded bar above 1 means "never confident near the edge" (such pictures show as leaning).
RULE_GRID = tuple(
    [RuleCandidate(q, None, None) for q in (0.90, 0.93, 0.95, 0.97)]
    + [RuleCandidate(q, g, c) for q in (0.93, 0.95, 0.97) for g in (0.6, 0.8, 0.9) if g < q
       for c in (0.97, 0.99, 1.01)]
)


def decision_for(candidate: RuleCandidate, val_scores: np.ndarray, base_decision: dict) -> dict:
    """The model.json decision block for a rule: thresholds are quantiles of validation scores."""
    decision = dict(base_decision, ood_threshold=float(np.quantile(val_scores, candidate.ood_quantile)),
                    ood_quantile_of_validation=candidate.ood_quantile)
    if candidate.guard_quantile is not None:
        decision.update(guard_threshold=float(np.quantile(val_scores, candidate.guard_quantile)),
                        guard_quantile_of_validation=candidate.guard_quantile,
                        guarded_confident_from=candidate.guarded_confident_from)
    return decision


def validation_percentiles(scores: np.ndarray, val_scores: np.ndarray) -> np.ndarray:
    """Share of CIFAKE validation scores below each score: heads fitted on different folds compare."""
    return np.searchsorted(np.sort(val_scores), scores, side="left") / len(val_scores)


def cross_fitted_percentiles(in_moments: np.ndarray, view_moments: np.ndarray, view_sources: np.ndarray,
                             val_moments: np.ndarray, folds: int, regularisation: float, seed: int) -> np.ndarray:
    """Each view's domain score from a head fitted without the view's source (grouped K-fold), as a
    percentile of that head's CIFAKE validation scores."""
    sources = np.array(sorted(set(view_sources)))
    order = np.random.default_rng(seed).permutation(sources)
    percentiles = np.zeros(len(view_moments))
    for k in range(folds):
        held = np.isin(view_sources, order[k::folds])
        head = fit_domain_head(in_moments, view_moments[~held], regularisation)
        percentiles[held] = validation_percentiles(head.logits(view_moments[held]), head.logits(val_moments))
    return percentiles


def rule_outcomes(decision: dict, p_fake: np.ndarray, scores: np.ndarray, truth_fake: np.ndarray) -> dict:
    """Confidently wrong and uncertain shares of pictures of known class under one decision rule."""
    from inference.bands import verdict_bands

    bands, out = verdict_bands(p_fake, scores, decision)
    wrong = (p_fake >= decision["threshold"]) != truth_fake
    confident_wrong = (bands == "confident") & wrong
    return {"n": int(len(p_fake)), "confidently_wrong": float(confident_wrong.mean()) if len(p_fake) else None,
            "uncertain": float((bands == "uncertain").mean()) if len(p_fake) else None,
            "out_of_domain": float(out.mean()) if len(p_fake) else None}


def choose_rule(base_decision: dict, val_p: np.ndarray, val_labels: np.ndarray, val_scores: np.ndarray,
                fit_p: np.ndarray, fit_scores: np.ndarray, fit_fake: np.ndarray,
                min_coverage: float, max_error: float) -> tuple[RuleCandidate, list[dict]]:
    """Pick the rule with the fewest confidently wrong *held-out-source* pictures (worse of photos and
    generated), among rules whose confident band covers >= min_coverage of CIFAKE validation with error
    <= max_error. Scores are validation percentiles (`cross_fitted_percentiles` for the fitting
    pictures, each from a head that never saw its source), so one threshold fits every fold.
    """
    from inference.bands import verdict_bands

    table = []
    for candidate in RULE_GRID:
        decision = decision_for(candidate, val_scores, base_decision)
        bands, _ = verdict_bands(val_p, val_scores, decision)
        confident = bands == "confident"
        error = float(((val_p[confident] >= decision["threshold"]) != (val_labels[confident] == 1)).mean())
        real = rule_outcomes(decision, fit_p[~fit_fake], fit_scores[~fit_fake], fit_fake[~fit_fake])
        fake = rule_outcomes(decision, fit_p[fit_fake], fit_scores[fit_fake], fit_fake[fit_fake])
        table.append({**candidate.__dict__, "val_confident_coverage": float(confident.mean()),
                      "val_confident_error": error, "cv_real_confidently_wrong": real["confidently_wrong"],
                      "cv_generated_confidently_wrong": fake["confidently_wrong"],
                      "cv_real_uncertain": real["uncertain"], "cv_generated_uncertain": fake["uncertain"]})
    allowed = [row for row in table if row["val_confident_coverage"] >= min_coverage
               and row["val_confident_error"] <= max_error] or table
    best = min(allowed, key=lambda r: (round(max(r["cv_real_confidently_wrong"], r["cv_generated_confidently_wrong"]), 3),
                                       -r["val_confident_coverage"]))
    return RuleCandidate(best["ood_quantile"], best["guard_quantile"], best["guarded_confident_from"]), table
