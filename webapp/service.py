"""What the app does, without the UI: classify and explain pictures, record history and feedback,
serve the active model version, warm up TensorFlow in the background, run retraining in a worker.

Raises ValueError (bad input), PermissionError (not allowed) or store.AccountError; `app.py` turns
them into messages.
"""
from __future__ import annotations

import hashlib
import io
import logging
import threading
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image

from inference.classifier import Classifier, Prediction
from inference.explain import Explanation, explain
from inference.model_card import EXPORTED_DIR
from inference.overlay import overlay_on_model_input, overlay_on_original
from retraining.jobs import RetrainJobs
from retraining.labels import latest_labels
from webapp.registry import Registry
from webapp.store import Store

log = logging.getLogger("cifake.service")
CAM_METHODS = {"Grad-CAM": "gradcam", "Grad-CAM++": "gradcam++", "HiResCAM": "hirescam"}


@dataclass(frozen=True)
class HeatmapRequest:
    """What the user asked the heatmap to show."""
    method: str = "gradcam"  # one of CAM_METHODS' values
    target: str | None = None  # "FAKE", "REAL", or None for the more likely class
    opacity: float = 0.45  # of the map over the pictures, 0..1


@dataclass(frozen=True, eq=False)
class Heatmap:
    """A verdict's class activation map and what is drawn from it."""
    values: np.ndarray  # (32, 32) in [0, 1]
    method: str
    explained: str  # "FAKE" or "REAL": the class the map explains
    faithfulness: dict  # inference.gradcam.deletion_faithfulness
    on_model_input: Image.Image  # the 32x32 input enlarged, map on top
    on_original: Image.Image  # the upload (shrunk for display), map stretched over it


@dataclass(frozen=True, eq=False)
class Analysis:
    """Everything one upload shows: verdict, explanation, heatmap and overlays, and the JSON report."""
    name: str
    prediction: Prediction
    pixels: np.ndarray  # (32, 32, 3) uint8, what the model saw
    original: Image.Image
    original_size: tuple[int, int]
    model_version: int
    record_id: int | None = None  # in the user's history; None for visitors
    heatmap: Heatmap | None = None
    heatmap_error: str | None = None  # why there is no heatmap although one was asked for

    @cached_property
    def explanation(self) -> Explanation:
        """The plain-language explanation of what this analysis holds (built once, on first use)."""
        if self.heatmap is None:
            return explain(self.prediction, None, self.original_size)
        heat = self.heatmap
        return explain(self.prediction, heat.values, self.original_size, heat.explained, heat.faithfulness)

    def to_dict(self) -> dict:
        """The downloadable report (JSON-ready)."""
        heat = self.heatmap
        return {"file": self.name, "model_version": self.model_version, **self.prediction.to_dict(),
                "explanation": self.explanation.to_dict(), "cam_method": heat.method if heat else None,
                "explained_class": heat.explained if heat else None,
                "faithfulness": heat.faithfulness if heat else None,
                "original_size": list(self.original_size), "record_id": self.record_id}


class DetectorService:
    def __init__(self, data_folder: str | Path | None = None, database_url: str | None = None,
                 shipped_dir: str | Path = EXPORTED_DIR, ort_threads: int = 1):
        self.store = Store(database_url, data_folder)
        self.folder = self.store.folder
        self.registry = Registry(self.folder / "models", shipped_dir, self.store.engine)
        self.images_dir = self.folder / "images"
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self._model_lock = threading.Lock()
        self._classifier: Classifier | None = None
        self._classifier_version: int | None = None
        self.ort_threads = ort_threads  # per run; concurrent requests run side by side, threads never spin
        self._cams: dict[int, object] = {}
        self.retrain_jobs = RetrainJobs(self.folder, self.registry.root)

    # -- models ------------------------------------------------------------------------------
    def classifier(self) -> tuple[Classifier, int]:
        """The active version's classifier (reloaded when an admin switches versions)."""
        version = self.registry.active_version()
        with self._model_lock:
            if self._classifier is None or self._classifier_version != version:
                self._classifier = Classifier(self.registry.version_dir(version), threads=self.ort_threads,
                                              spin=False)
                self._classifier_version = version
            return self._classifier, version

    def gradcam(self, version: int):
        """The version's Grad-CAM; the first one loads TensorFlow, without its C++ INFO lines on stderr."""
        from inference.quiet import native_info_dropped

        with self._model_lock:
            if version not in self._cams:
                with native_info_dropped():
                    from inference.gradcam import GradCAM

                    self._cams[version] = GradCAM(self.registry.version_dir(version))
            return self._cams[version]

    def warm_up(self) -> threading.Thread:
        """Load TensorFlow and trace Grad-CAM in the background so the first heatmap does not wait."""
        def work():
            _, version = self.classifier()
            self.gradcam(version).compute(np.zeros((1, 32, 32, 3), np.float32))

        thread = threading.Thread(target=work, name="gradcam-warmup", daemon=True)
        thread.start()
        return thread

    # -- predict -----------------------------------------------------------------------------
    def analyse(self, picture, user: str | None = None, *, name: str = "", source: str = "ui",
                heatmap: HeatmapRequest | None = None) -> Analysis:
        """One upload (path, bytes, PIL image or array) -> everything the page and the API show: the
        verdict and, with `heatmap`, the map, its overlays and its faithfulness check. Stored in the
        history of `user` (a username) when given, with `source` ("ui", "api", "batch").

        The active version is looked up once and the ONNX model runs once on the picture; the
        faithfulness check reuses that P(FAKE) and runs the model only on its two perturbed copies.
        ValueError if the picture is unusable; a failed heatmap leaves `heatmap_error`, not an exception.
        """
        *_, analysis = self.analyse_in_steps(picture, user, name=name, source=source, heatmap=heatmap)
        return analysis

    def analyse_in_steps(self, picture, user: str | None = None, *, name: str = "", source: str = "ui",
                         heatmap: HeatmapRequest | None = None) -> Iterator[Analysis]:
        """`analyse`, yielding the verdict first and then, with `heatmap`, the finished analysis: the
        page shows the verdict while the heatmap is computed."""
        clf, version = self.classifier()
        prepared = clf.prepare(picture, name or None)
        analysis = Analysis(name, clf.predict_pixels(prepared.pixels[None])[0], prepared.pixels, prepared.display,
                            prepared.original_size, version)
        if user is not None:
            analysis = replace(analysis, record_id=self.record(user, analysis, source))
        yield analysis
        if heatmap is not None:
            yield self._with_heatmap(analysis, clf, heatmap)

    def _with_heatmap(self, analysis: Analysis, clf: Classifier, request: HeatmapRequest) -> Analysis:
        """The analysis with its heatmap, or with the reason there is none: the verdict stands either way."""
        from inference.gradcam import deletion_faithfulness

        explained = request.target or analysis.prediction.likely_label
        p_fake = analysis.prediction.p_fake  # the verdict's: Grad-CAM checks Keras against it
        try:
            values = self.gradcam(analysis.model_version).explain(analysis.pixels, p_fake, explained, request.method)
            faithfulness = deletion_faithfulness(analysis.pixels, values, p_fake, lambda x: clf.run(x)[0], explained)
            heat = Heatmap(values, request.method, explained, faithfulness,
                           overlay_on_model_input(analysis.pixels, values, opacity=request.opacity),
                           overlay_on_original(analysis.original, values, opacity=request.opacity))
        except Exception as err:  # noqa: BLE001 - the verdict stands even if the heatmap fails
            log.exception("heatmap failed")
            return replace(analysis, heatmap_error=str(err))
        return replace(analysis, heatmap=heat)

    def record(self, username: str, analysis: Analysis, source: str) -> int:
        """Store the prediction (and the 32x32 input, for feedback) in the user's history; its id."""
        image_path = self._store_pixels(analysis.pixels)
        thumb = analysis.original.copy()
        thumb.thumbnail((96, 96))
        buffer = io.BytesIO()
        thumb.save(buffer, format="PNG")
        return self.store.add_prediction(username, analysis.name, analysis.prediction, analysis.model_version,
                                         image_path, buffer.getvalue(), source)

    def _store_pixels(self, pixels: np.ndarray) -> str:
        """Keep a (32, 32, 3) uint8 input as a PNG named by its content; returns its path in the data folder."""
        image_path = self.images_dir / f"{hashlib.sha256(pixels.tobytes()).hexdigest()[:20]}.png"
        if not image_path.exists():
            Image.fromarray(pixels).save(image_path)
        return str(image_path.relative_to(self.folder))

    def flag(self, username: str, prediction_id: int, claimed_label: str) -> str:
        """The user says the verdict was wrong (or right); the 32x32 input and the label are kept."""
        row = self.store.get_prediction(prediction_id)
        if row is None or row["username"] != username:
            raise PermissionError("That prediction is not in your history.")
        kind = "confirm" if row["label"] == claimed_label else "wrong"
        self.store.add_feedback(username, claimed_label, row["image_path"], kind, prediction_id)
        return kind

    def add_labelled_images(self, username: str, images: np.ndarray, labels: np.ndarray) -> int:
        """An admin's labelled images ((N, 32, 32, 3) uint8, labels 0 REAL / 1 FAKE) -> accepted items."""
        for pixels, label in zip(images, labels):
            self.store.add_feedback(username, ("REAL", "FAKE")[int(label)], self._store_pixels(pixels),
                                    "upload", status="accepted")
        return len(labels)

    # -- retraining (worker lifecycle: retraining.jobs) --------------------------------------------
    def status_path(self) -> Path:
        return self.retrain_jobs.status_path

    def retrain_status(self) -> dict:
        return self.retrain_jobs.status()

    def start_retrain(self, username: str, steps: int | None = None, extra_args: list[str] | None = None) -> str:
        """Start a retraining worker; returns its run id. ValueError if nothing to learn or one is running."""
        labels = self.accepted_labels()
        if not labels:
            raise ValueError("There are no accepted labelled images to learn from yet.")
        args = (["--steps", str(steps)] if steps else []) + (extra_args or [])
        return self.retrain_jobs.start(username, labels, args)

    def accepted_labels(self) -> dict[str, str]:
        """What retraining learns: {stored picture path: "REAL" | "FAKE"}, the last accepted decision each."""
        return latest_labels(self.store.list_feedback("accepted"))

    def cancel_retrain(self) -> bool:
        return self.retrain_jobs.cancel()

    def wait_retrain(self, timeout: float | None = None) -> dict:
        return self.retrain_jobs.wait(timeout)

    def activate(self, version: int, by: str, reason: str = "") -> None:
        self.registry.set_active(version, by, reason)
        self.classifier()  # load now so the next request does not pay for it
