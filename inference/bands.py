"""The verdict-band rule, in one place: the classifier's verdicts, the export's band table and the
About page's text all come from `Decision`.

    uncertain  confidence < leaning_from, or out of domain (ood_score > ood_threshold)
    confident  confidence >= the confident bar, and in domain
    leaning    otherwise

`confidence` is the calibrated probability of the more likely class, in [0.5, 1]. The confident bar is
`confident_from`, raised to `guarded_confident_from` for pictures near the edge of the training domain
(ood_score > guard_threshold): there the model's calibration, measured on CIFAKE, is least trustworthy.
All thresholds come from the `decision` block of model.json (`Decision.from_dict`); models without an
out-of-domain score or without a guard simply skip those parts of the rule.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Mapping

import numpy as np

BANDS = ("confident", "leaning", "uncertain")


@dataclass(frozen=True)
class Decision:
    """model.json's `decision` block, typed. `to_dict()` writes the same keys back (unset ones left out)."""

    threshold: float  # P(fake) at or above which FAKE is the more likely class
    leaning_from: float  # confidence below this: uncertain
    confident_from: float  # confidence at or above this (in domain): confident
    ood_threshold: float | None = None  # ood_score above this: out of domain, always uncertain
    guard_threshold: float | None = None  # ood_score above this: the confident bar rises ...
    guarded_confident_from: float | None = None  # ... to this (above 1: never confident there)
    ood_quantile_of_validation: float | None = None  # how ood_threshold was chosen (for the record)
    guard_quantile_of_validation: float | None = None  # how guard_threshold was chosen (for the record)
    domain_threshold: float | None = None  # the domain head's own threshold, before its score was rescaled

    def __post_init__(self):
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"decision threshold must lie in (0, 1); got {self.threshold}.")
        if not self.leaning_from <= self.confident_from:
            raise ValueError(f"decision leaning_from ({self.leaning_from}) must not exceed confident_from "
                             f"({self.confident_from}).")
        if (self.guard_threshold is None) != (self.guarded_confident_from is None):
            raise ValueError("decision guard_threshold and guarded_confident_from come together; got "
                             f"{self.guard_threshold} and {self.guarded_confident_from}.")

    @classmethod
    def from_dict(cls, values: Mapping) -> "Decision":
        """model.json's `decision` block -> Decision; ValueError naming missing or unknown keys."""
        known = {f.name for f in fields(cls)}
        missing = [k for k in ("threshold", "leaning_from", "confident_from") if values.get(k) is None]
        unknown = sorted(set(values) - known)
        if missing or unknown:
            raise ValueError(f"decision block: missing {missing or 'nothing'}, unknown {unknown or 'nothing'}; "
                             f"expected keys among {sorted(known)}.")
        return cls(**{k: None if v is None else float(v) for k, v in values.items()})

    @classmethod
    def of(cls, decision: "Decision | Mapping") -> "Decision":
        """A Decision as is, or one read from a model.json-style dict (training still passes dicts)."""
        return decision if isinstance(decision, Decision) else cls.from_dict(decision)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    # -- the rule in words (the About page and the band tables render these) ------------------------
    def band_rules(self) -> dict[str, str]:
        """band -> its rule in one line of Markdown, for tables."""
        lean, sure = f"{self.leaning_from:.2f}", f"{self.confident_from:.2f}"
        domain = ", in domain" if self.ood_threshold is not None else ""
        sure_edge = lean_edge = ""
        if self.guard_threshold is not None and self.guarded_confident_from > 1:
            sure_edge, lean_edge = " (never near the domain's edge)", " (no upper bound near the domain's edge)"
        elif self.guard_threshold is not None:
            guarded = f"{self.guarded_confident_from:.2f}"
            sure_edge, lean_edge = f" (≥ {guarded} near the domain's edge)", f" (< {guarded} near the domain's edge)"
        return {"confident": f"confidence ≥ {sure}{sure_edge}{domain}",
                "leaning": f"{lean} ≤ confidence < {sure}{lean_edge}{domain}",
                "uncertain": f"confidence < {lean}" + (" or out of domain" if domain else "")}

    def describe(self) -> str:
        """The whole rule as Markdown, with this model's numbers (About renders it as is)."""
        lines = [f"*Confidence* is the calibrated probability of the more likely class: AI-generated when "
                 f"P(AI-generated) ≥ {self.threshold:.2f}, real otherwise.", ""]
        uncertain = f"- **Uncertain** when confidence is below {self.leaning_from:.2f}"
        if self.ood_threshold is not None:
            uncertain += (", or when the picture is **out of domain** (its out-of-domain score, the distance "
                          f"from the training pictures, is above {self.ood_threshold:.2f})")
        confident = f"- **Confident** when confidence is at least {self.confident_from:.2f}"
        if self.ood_threshold is not None:
            confident += " and the picture is in domain"
        if self.guard_threshold is not None:
            bar = ("it is never confident there" if self.guarded_confident_from > 1
                   else f"the bar rises to {self.guarded_confident_from:.2f}")
            confident += (f". **Near the edge of the training domain** (out-of-domain score above "
                          f"{self.guard_threshold:.2f}) {bar}: calibration measured on CIFAKE is least "
                          "trustworthy there")
        lines += [uncertain + ".", confident + ".", "- **Leaning** otherwise."]
        return "\n".join(lines)


def confidence_of(p_fake, threshold: float = 0.5) -> np.ndarray:
    """Probability of the more likely class (FAKE when p_fake >= threshold), same shape as p_fake."""
    p_fake = np.asarray(p_fake, dtype=np.float64)
    return np.where(p_fake >= threshold, p_fake, 1.0 - p_fake)


def out_of_domain(ood_score, decision: Decision) -> np.ndarray:
    """(N,) bool: ood_score above the exported threshold (all False when the model has no threshold)."""
    scores = np.asarray(ood_score, dtype=np.float64)
    if decision.ood_threshold is None:
        return np.zeros(scores.shape, dtype=bool)
    return np.where(np.isnan(scores), True, scores > decision.ood_threshold)  # NaN: never trust the verdict


def confident_bar(ood_score, decision: Decision, n: int) -> np.ndarray:
    """(N,) confidence needed for the confident band: raised near the domain's edge when a guard is set."""
    bar = np.full(n, decision.confident_from)
    if ood_score is not None and decision.guard_threshold is not None:
        bar = np.where(np.asarray(ood_score, dtype=np.float64) > decision.guard_threshold,
                       decision.guarded_confident_from, bar)
    return bar


def verdict_bands(p_fake, ood_score, decision: Decision | Mapping) -> tuple[np.ndarray, np.ndarray]:
    """p_fake (N,) and ood_score (N,) or None -> (bands (N,) str, out_of_domain (N,) bool).
    `decision`: a Decision, or model.json's dict (training's rule search builds dicts)."""
    decision = Decision.of(decision)
    p_fake = np.atleast_1d(np.asarray(p_fake, dtype=np.float64))
    if ood_score is not None:
        ood_score = np.atleast_1d(np.asarray(ood_score, dtype=np.float64))
    confidence = confidence_of(p_fake, decision.threshold)
    out = out_of_domain(ood_score, decision) if ood_score is not None else np.zeros(len(p_fake), bool)
    bar = confident_bar(ood_score, decision, len(p_fake))
    bands = np.where(out | (confidence < decision.leaning_from), "uncertain",
                     np.where(confidence >= bar, "confident", "leaning"))
    return bands, out
