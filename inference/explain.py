"""A plain-language explanation built from this picture's prediction and heatmap.

Three parts, each computed from the inputs: how sure the model is (its verdict band and calibrated
probability), where the evidence sits (subject in the middle, background around it, or the picture's
edges — Bird & Lotfi found background imperfections often decide), and how far the picture is from
what the model was trained on (large pictures squashed to 32x32, out-of-domain score).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from inference.classifier import Prediction

EDGE_PX = 3  # outer ring of the 32x32 input counted as "edges"
LARGE_SHRINK = 8.0  # originals more than 8x larger than 32 px lose most of their detail


@dataclass(frozen=True)
class Evidence:
    centre: float  # share of heatmap mass in the middle half of the picture (where the subject usually is)
    background: float  # between the middle and the edges
    edges: float  # outer EDGE_PX pixels
    focus: float  # share of mass in the top 10 % of pixels (0.1 = spread evenly, 1 = one spot)

    @property
    def main_region(self) -> str:
        return max(("centre", "background", "edges"), key=lambda k: getattr(self, k) / _AREA[k])


def _zones(size: int = 32) -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[:size, :size]
    ring = np.minimum(np.minimum(yy, xx), np.minimum(size - 1 - yy, size - 1 - xx))  # distance to border
    edges = ring < EDGE_PX
    centre = ring >= size // 4
    return {"centre": centre, "background": ~edges & ~centre, "edges": edges}


_ZONES = _zones()
_AREA = {k: float(v.mean()) for k, v in _ZONES.items()}


def locate_evidence(heatmap: np.ndarray) -> Evidence:
    """(32, 32) map in [0, 1] -> where its mass sits. An all-zero map counts as evenly spread."""
    heat = np.clip(np.nan_to_num(np.asarray(heatmap, np.float64)), 0, None)
    if heat.shape != (32, 32):
        raise ValueError(f"heatmap must be 32x32; got {heat.shape}.")
    total = heat.sum()
    if total <= 1e-12:
        heat, total = np.ones_like(heat), float(heat.size)
    shares = {k: float(heat[mask].sum() / total) for k, mask in _ZONES.items()}
    top = np.sort(heat.reshape(-1))[::-1][: heat.size // 10]
    return Evidence(shares["centre"], shares["background"], shares["edges"], float(top.sum() / total))


@dataclass(frozen=True)
class Explanation:
    summary: str  # one line: verdict and probability
    sentences: tuple[str, ...]
    evidence: Evidence | None

    @property
    def text(self) -> str:
        return " ".join((self.summary, *self.sentences))

    def to_dict(self) -> dict:
        return {"summary": self.summary, "sentences": list(self.sentences), "text": self.text,
                "evidence": asdict(self.evidence) if self.evidence else None}


def _verdict_sentence(p: Prediction) -> str:
    percent = f"{p.p_fake * 100:.1f} %"
    if p.out_of_domain:
        return (f"Uncertain — unlike the pictures this model was trained on. It would lean "
                f"{'AI-generated' if p.likely_label == 'FAKE' else 'real'} (P(AI-generated) = {percent}), "
                "but its verdicts on such pictures are unreliable.")
    if p.band == "uncertain":
        return f"Uncertain: the model cannot tell (P(AI-generated) = {percent}, close to even)."
    what = "AI-generated" if p.label == "FAKE" else "a real photograph"
    strength = "confidently" if p.band == "confident" else "leans towards"
    verb = f"{strength} calls this {what}" if p.band == "confident" else f"{strength} {what}"
    return f"The model {verb} (P(AI-generated) = {percent}, confidence {p.confidence * 100:.1f} %)."


def _evidence_sentence(evidence: Evidence, explained: str) -> str:
    cls = "AI-generated" if explained == "FAKE" else "real"
    region = evidence.main_region
    where = {
        "centre": "on the middle of the picture, where the subject usually is",
        "background": "on the background around the subject",
        "edges": "along the picture's edges and corners",
    }[region]
    spread = ("concentrated on a few spots" if evidence.focus > 0.35
              else "spread across much of the picture" if evidence.focus < 0.18 else "on a few areas")
    hint = {
        "centre": "the texture and shape of the subject itself drove the decision",
        "background": "background texture and smoothness drove the decision (the paper behind CIFAKE found "
                      "background imperfections often give generated images away)",
        "edges": "details at the borders drove the decision, which can also come from resizing or cropping",
    }[region]
    return (f"The evidence for '{cls}' sits mostly {where} ({getattr(evidence, region) * 100:.0f} % of the heatmap; "
            f"centre {evidence.centre * 100:.0f} %, background {evidence.background * 100:.0f} %, edges "
            f"{evidence.edges * 100:.0f} %) and is {spread}: {hint}.")


def _domain_sentences(p: Prediction, original_size: tuple[int, int] | None) -> list[str]:
    notes = []
    if original_size is not None:
        width, height = original_size
        shrink = max(width, height) / 32
        if shrink >= LARGE_SHRINK:
            notes.append(f"Caveat: the picture is {width}×{height} pixels and was squashed to 32×32 "
                         f"(÷{shrink:.0f}); the model was trained on tiny 32×32 CIFAR-10 and Stable Diffusion 1.4 "
                         "pictures, so most detail a large photo holds is lost and the verdict is less reliable.")
        if max(width, height) / max(1, min(width, height)) > 1.6:
            notes.append("The picture is far from square; squashing it distorts shapes the model learned.")
    if p.out_of_domain and p.ood_score is not None:
        notes.append(f"Its features are far from the training pictures (out-of-domain score {p.ood_score:.0f}).")
    return notes


def _faithfulness_sentence(faithfulness: dict, explained: str) -> str:
    cls = "AI-generated" if explained == "FAKE" else "real"

    def change(drop: float, what: str) -> str:
        return f"{'lowers' if drop >= 0 else 'raises'} {what} by {abs(drop) * 100:.1f} points"

    judged = ("the highlighted pixels did matter more than the rest" if faithfulness["score"] > 0.02
              else "the map is only a loose guide for this picture")
    share = round(faithfulness["share_removed"] * 100)
    return (f"Check: blurring the {share} % most highlighted pixels "
            f"{change(faithfulness['drop_most_relevant'], f'P({cls})')}; blurring the {share} % least highlighted "
            f"{change(faithfulness['drop_least_relevant'], 'it')}: {judged}.")


def explain(prediction: Prediction, heatmap: np.ndarray | None = None,
            original_size: tuple[int, int] | None = None, explained: str | None = None,
            faithfulness: dict | None = None) -> Explanation:
    """Build the explanation of one picture. `explained` is the class the heatmap explains."""
    explained = explained or prediction.likely_label
    sentences = []
    evidence = None
    if heatmap is not None:
        evidence = locate_evidence(heatmap)
        sentences.append(_evidence_sentence(evidence, explained))
        if faithfulness is not None:
            sentences.append(_faithfulness_sentence(faithfulness, explained))
    sentences.extend(_domain_sentences(prediction, original_size))
    return Explanation(_verdict_sentence(prediction), tuple(sentences), evidence)
