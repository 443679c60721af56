"""ONNX Runtime classification. Never imports TensorFlow (a test makes it unimportable).

    from inference.classifier import Classifier
    clf = Classifier()                      # exported/model.onnx + model.json, checked
    clf.predict("photo.jpg")                # -> Prediction(label="FAKE", p_fake=0.97, band="confident", ...)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from inference.bands import BANDS, Decision, confidence_of, verdict_bands  # noqa: F401 - BANDS re-exported
from inference.model_card import EXPORTED_DIR, load_metadata
from inference.preprocess import ImageSource, PreparedImage, prepare_image


@dataclass(frozen=True)
class Prediction:
    label: str  # "REAL", "FAKE" or "UNCERTAIN"
    p_fake: float  # calibrated probability that the picture is AI-generated, in [0, 1]
    confidence: float  # probability of the more likely class, in [0.5, 1]
    band: str  # "confident", "leaning" or "uncertain"
    ood_score: float | None  # distance from the training data (higher = less like CIFAKE); None if absent
    out_of_domain: bool  # ood_score above the exported threshold
    likely_label: str  # "REAL" or "FAKE": the more likely class, even when the band is uncertain

    @property
    def uncertain(self) -> bool:
        return self.band == "uncertain"

    def to_dict(self) -> dict:
        return asdict(self)


class Classifier:
    """Thread-safe: one ORT session, `run` may be called from many threads at once."""

    def __init__(self, model_dir: str | Path = EXPORTED_DIR, threads: int = 2, spin: bool = True):
        """`threads`: ONNX Runtime intra-op threads. `spin=False` lets them sleep between runs instead of
        spin-waiting, for processes that share the cores with others (Ray actors)."""
        import onnxruntime as ort

        self.model_dir = Path(model_dir)
        self.metadata = load_metadata(self.model_dir, check_files=("model.onnx",))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads  # this machine and a basic Space have 2 cores
        options.inter_op_num_threads = 1
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(self.model_dir / self.metadata["files"]["model.onnx"]["path"]), options,
            providers=["CPUExecutionProvider"],
        )
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        prep = self.metadata["preprocessing"]
        self.input_size = tuple(prep["input_size"])  # (width, height)
        self.resample = prep["resize"]
        self.decision = Decision.from_dict(self.metadata["decision"])  # session.run is thread-safe: no lock needed

    # the Decision (model.json) is the one source of the thresholds; these read it
    @property
    def threshold(self) -> float:
        return self.decision.threshold

    @property
    def confident_from(self) -> float:
        return self.decision.confident_from

    @property
    def leaning_from(self) -> float:
        return self.decision.leaning_from

    @property
    def ood_threshold(self) -> float | None:
        return self.decision.ood_threshold

    # -- raw model -----------------------------------------------------------------------------
    def run(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, 32, 32, 3) uint8 or float 0-255 RGB -> (p_fake (N,), ood_score (N,) or None)."""
        pixels = np.asarray(pixels)
        if pixels.ndim == 3:
            pixels = pixels[None]
        expected = (self.input_size[1], self.input_size[0], 3)
        if pixels.ndim != 4 or pixels.shape[1:] != expected:
            raise ValueError(f"pixels must have shape (N, {expected[0]}, {expected[1]}, 3); got {pixels.shape}.")
        outputs = self.session.run(None, {self.input_name: pixels.astype(np.float32, copy=False)})
        p_fake = outputs[0].reshape(-1)
        ood = outputs[1].reshape(-1) if len(outputs) > 1 else None
        return p_fake, ood

    # -- decisions -----------------------------------------------------------------------------
    def decide(self, p_fake: float, ood_score: float | None) -> Prediction:
        """Turn the model's numbers into a label and a verdict band (thresholds from model.json)."""
        likely = "FAKE" if p_fake >= self.threshold else "REAL"
        confidence = float(confidence_of(p_fake, self.threshold))
        bands, out = verdict_bands([p_fake], None if ood_score is None else [ood_score], self.decision)
        band, out_of_domain = str(bands[0]), bool(out[0])
        label = "UNCERTAIN" if band == "uncertain" else likely
        return Prediction(label, float(p_fake), float(confidence), band,
                          None if ood_score is None else float(ood_score), out_of_domain, likely)

    def predict_pixels(self, pixels: np.ndarray) -> list[Prediction]:
        p_fake, ood = self.run(pixels)
        ood_scores = [None] * len(p_fake) if ood is None else [float(o) for o in ood]
        return [self.decide(float(p), o) for p, o in zip(p_fake, ood_scores)]

    # -- pictures ------------------------------------------------------------------------------
    def prepare(self, source: ImageSource, name: str | None = None) -> PreparedImage:
        return prepare_image(source, name, self.input_size, self.resample)

    def predict(self, source: ImageSource, name: str | None = None) -> Prediction:
        """One picture (path, bytes, PIL image or array) -> Prediction. ValueError if unusable."""
        return self.predict_pixels(self.prepare(source, name).pixels[None])[0]

    def predict_many(self, sources: Sequence[ImageSource], batch_size: int = 256) -> list[Prediction]:
        """Several pictures at once (all must be usable; see `predict_files` for mixed input)."""
        results: list[Prediction] = []
        for start in range(0, len(sources), batch_size):
            chunk = [self.prepare(s).pixels for s in sources[start : start + batch_size]]
            results.extend(self.predict_pixels(np.stack(chunk)))
        return results

    def predict_files(self, sources: Iterable[tuple[str, ImageSource]], batch_size: int = 256):
        """Yield (name, Prediction or None, error message or None) for (name, source) pairs, in order."""
        batch: list[tuple[str, np.ndarray]] = []
        for name, source in sources:
            try:
                batch.append((name, self.prepare(source, name).pixels))
            except ValueError as err:
                yield from self._flush(batch)
                batch = []
                yield name, None, str(err)
                continue
            if len(batch) >= batch_size:
                yield from self._flush(batch)
                batch = []
        yield from self._flush(batch)

    def _flush(self, batch):
        if not batch:
            return
        predictions = self.predict_pixels(np.stack([pixels for _, pixels in batch]))
        for (name, _), prediction in zip(batch, predictions):
            yield name, prediction, None


def result_row(name: str, prediction: Prediction | None, error: str | None) -> dict:
    """The CLI's row for one picture (file, label, p_fake, confidence, band, out_of_domain, error);
    probabilities rounded to 5 decimals. `python -m inference` and `python -m inference.batch` share it."""
    row = {"file": name, "label": None, "p_fake": None, "confidence": None, "band": None,
           "out_of_domain": None, "error": error}
    if prediction is not None:
        row.update(label=prediction.label, p_fake=round(prediction.p_fake, 5),
                   confidence=round(prediction.confidence, 5), band=prediction.band,
                   out_of_domain=prediction.out_of_domain)
    return row
