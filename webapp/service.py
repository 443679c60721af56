"""What the app does, without the UI: classify and explain pictures, record history and feedback,
serve the active model version, warm up TensorFlow in the background, run retraining in a worker.

Raises ValueError (bad input), PermissionError (not allowed) or store.AccountError; `app.py` turns
them into messages.
"""
from __future__ import annotations

import hashlib
import io
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from inference.classifier import Classifier, Prediction
from inference.explain import Explanation, explain
from inference.model_card import EXPORTED_DIR
from retraining.jobs import RetrainJobs
from retraining.labels import latest_labels
from webapp.registry import Registry
from webapp.store import Store

CAM_METHODS = {"Grad-CAM": "gradcam", "Grad-CAM++": "gradcam++", "HiResCAM": "hirescam"}


@dataclass
class Analysis:
    name: str
    prediction: Prediction
    explanation: Explanation
    pixels: np.ndarray  # (32, 32, 3) uint8, what the model saw
    original: Image.Image
    original_size: tuple[int, int]
    model_version: int
    heatmap: np.ndarray | None = None  # (32, 32) in [0, 1]
    method: str = "gradcam"
    explained: str = ""
    faithfulness: dict | None = None
    record_id: int | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"file": self.name, "model_version": self.model_version, **self.prediction.to_dict(),
                "explanation": self.explanation.to_dict(), "cam_method": self.method if self.heatmap is not None else None,
                "explained_class": self.explained or None, "faithfulness": self.faithfulness,
                "original_size": list(self.original_size), "record_id": self.record_id}


class DetectorService:
    def __init__(self, data_folder: str | Path | None = None, database_url: str | None = None,
                 shipped_dir: str | Path = EXPORTED_DIR):
        self.store = Store(database_url, data_folder)
        self.folder = self.store.folder
        self.registry = Registry(self.folder / "models", shipped_dir, self.store.engine)
        self.images_dir = self.folder / "images"
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self._model_lock = threading.Lock()
        self._classifier: Classifier | None = None
        self._classifier_version: int | None = None
        self._cams: dict[int, object] = {}
        self.retrain_jobs = RetrainJobs(self.folder, self.registry.root)

    # -- models ------------------------------------------------------------------------------
    def classifier(self) -> tuple[Classifier, int]:
        """The active version's classifier (reloaded when an admin switches versions)."""
        version = self.registry.active_version()
        with self._model_lock:
            if self._classifier is None or self._classifier_version != version:
                self._classifier = Classifier(self.registry.version_dir(version))
                self._classifier_version = version
            return self._classifier, version

    def gradcam(self, version: int):
        from inference.gradcam import GradCAM

        with self._model_lock:
            if version not in self._cams:
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
    def classify(self, source, name: str = "") -> Analysis:
        clf, version = self.classifier()
        prepared = clf.prepare(source, name or None)
        prediction = clf.predict_pixels(prepared.pixels[None])[0]
        explanation = explain(prediction, None, prepared.original_size)
        return Analysis(name, prediction, explanation, prepared.pixels, prepared.display,
                        prepared.original_size, version)

    def add_heatmap(self, analysis: Analysis, method: str = "gradcam", target: str | None = None) -> Analysis:
        from inference.gradcam import deletion_faithfulness

        clf, _ = self.classifier()
        cam = self.gradcam(analysis.model_version)
        explained = target or analysis.prediction.likely_label
        analysis.heatmap = cam.explain(analysis.pixels, analysis.prediction.p_fake, explained, method)
        analysis.method, analysis.explained = method, explained
        analysis.faithfulness = deletion_faithfulness(analysis.pixels, analysis.heatmap,
                                                      lambda x: clf.run(x)[0], explained)
        analysis.explanation = explain(analysis.prediction, analysis.heatmap, analysis.original_size,
                                       explained, analysis.faithfulness)
        return analysis

    def record(self, username: str, analysis: Analysis, source: str = "ui") -> int:
        """Store the prediction (and the 32x32 input, for feedback) in the user's history."""
        image_path = self._store_pixels(analysis.pixels)
        thumb = analysis.original.copy()
        thumb.thumbnail((96, 96))
        buffer = io.BytesIO()
        thumb.save(buffer, format="PNG")
        analysis.record_id = self.store.add_prediction(
            username, analysis.name, analysis.prediction, analysis.model_version, image_path, buffer.getvalue(),
            source)
        return analysis.record_id

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
