"""Class activation maps from the Keras graph (TensorFlow is imported lazily, here only).

Methods (same activations and gradients, different channel weighting):
- "gradcam"   Selvaraju et al. 2017: weights = spatial mean of the gradients.
- "gradcam++" Chattopadhay et al. 2018: weights from second/third-order gradient terms.
- "hirescam"  Draelos & Carin 2020: element-wise gradients x activations (provably faithful to the
              class score for models ending in global average pooling + dense).
The target is the model's calibrated logit, signed: +logit explains FAKE, -logit explains REAL.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

import numpy as np

from inference.bands import Decision
from inference.model_card import EXPORTED_DIR, load_metadata

METHODS = ("gradcam", "gradcam++", "hirescam")
EPS = 1e-7


class ModelDisagreementError(RuntimeError):
    """The Keras model explained and the ONNX model that gave the verdict disagree."""


def _normalise(cams: np.ndarray) -> np.ndarray:
    """(N, h, w) >= 0 -> each map min-max scaled into [0, 1]; a flat map becomes all zeros."""
    cams = np.nan_to_num(cams, nan=0.0, posinf=0.0, neginf=0.0)
    cams = cams - cams.min(axis=(1, 2), keepdims=True)
    return cams / (EPS + cams.max(axis=(1, 2), keepdims=True))


def cams_from_gradients(activations: np.ndarray, gradients: np.ndarray, method: str) -> np.ndarray:
    """activations, gradients (N, h, w, C) -> normalised maps (N, h, w) in [0, 1] at layer resolution."""
    if method == "gradcam":
        channel_weights = gradients.mean(axis=(1, 2))  # (N, C)
        cams = np.einsum("nhwc,nc->nhw", activations, channel_weights)
    elif method == "gradcam++":
        grads_2, grads_3 = gradients**2, gradients**3
        sum_activations = activations.sum(axis=(1, 2), keepdims=True)  # (N, 1, 1, C)
        denominator = 2 * grads_2 + sum_activations * grads_3
        alpha = grads_2 / np.where(denominator != 0, denominator, EPS)
        channel_weights = (alpha * np.maximum(gradients, 0)).sum(axis=(1, 2))  # (N, C)
        cams = np.einsum("nhwc,nc->nhw", activations, channel_weights)
    elif method == "hirescam":
        cams = (activations * gradients).sum(axis=-1)
    else:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
    return _normalise(np.maximum(cams, 0))


def upsample(cams: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, h, w) in [0, 1] -> (N, H, W) bilinear, clipped to [0, 1]; size = (width, height)."""
    from PIL import Image

    out = [np.asarray(Image.fromarray(c.astype(np.float32), "F").resize(size, Image.Resampling.BILINEAR)) for c in cams]
    return np.clip(np.stack(out), 0.0, 1.0)


class GradCAM:
    """Grad-CAM family over `exported/model.keras`. Calls are serialised: Keras is not thread-safe."""

    def __init__(self, model_dir: str | Path = EXPORTED_DIR):
        import keras
        import tensorflow as tf

        import inference.layers  # noqa: F401 (custom layers a shipped model may hold)

        self.metadata = load_metadata(model_dir, check_files=("model.keras",))
        self.decision = Decision.from_dict(self.metadata["decision"])
        model = keras.models.load_model(Path(model_dir) / self.metadata["files"]["model.keras"]["path"])
        layer_name = self.metadata["gradcam"]["layer"]
        logit_name = self.metadata["gradcam"]["logit_layer"]
        self.grad_model = keras.Model(
            model.inputs, [model.get_layer(layer_name).output, model.get_layer(logit_name).output, model.outputs[0]]
        )
        self._lock = threading.Lock()
        signature = [tf.TensorSpec((None, 32, 32, 3), tf.float32), tf.TensorSpec((None,), tf.float32)]
        self._gradients = tf.function(self._activations_and_gradients, input_signature=signature)

    def _activations_and_gradients(self, pixels, sign):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            activations, logit, p_fake = self.grad_model(pixels, training=False)
            target = sign * logit[:, 0]  # the loss is computed inside the tape
        return activations, tape.gradient(target, activations), p_fake[:, 0]

    def compute(self, pixels: np.ndarray, target: str | None = None, method: str = "gradcam"
                ) -> tuple[np.ndarray, np.ndarray]:
        """(N, 32, 32, 3) 0-255 RGB -> (maps (N, 32, 32) in [0, 1], Keras P(FAKE) (N,)).

        target: "FAKE", "REAL" or None for each image's predicted class.
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {method!r}.")
        if target not in (None, "FAKE", "REAL"):
            raise ValueError(f"target must be 'FAKE', 'REAL' or None; got {target!r}.")
        pixels = np.asarray(pixels, dtype=np.float32)
        if pixels.ndim == 3:
            pixels = pixels[None]
        sign = np.full(len(pixels), -1.0 if target == "REAL" else 1.0, np.float32)
        with self._lock:
            activations, gradients, p_fake = self._gradients(pixels, sign)
        if gradients is None:  # would mean a broken graph; never silently return a blank map
            raise RuntimeError("Grad-CAM got no gradients: the Grad-CAM layer is not on the path to the logit.")
        gradients, p_fake = gradients.numpy(), p_fake.numpy()
        if target is None:  # d(-logit) = -d(logit): explain the predicted class from the same pass
            predicted_sign = np.where(p_fake >= self.decision.threshold, 1.0, -1.0)
            gradients = gradients * predicted_sign[:, None, None, None].astype(np.float32)
        cams = cams_from_gradients(activations.numpy(), gradients, method)
        maps = _normalise(upsample(cams, (pixels.shape[2], pixels.shape[1])))  # span [0, 1] at display size
        return maps, p_fake

    def explain(self, pixels: np.ndarray, onnx_p_fake: float, target: str | None = None,
                method: str = "gradcam", tolerance: float = 1e-3) -> np.ndarray:
        """One (32, 32, 3) image -> (32, 32) map, after checking Keras agrees with the ONNX verdict.

        `onnx_p_fake` is the verdict's P(FAKE), passed in: the Keras P(FAKE) comes free with the
        gradients (same forward pass) and only serves as the parity check."""
        maps, keras_p = self.compute(pixels[None], target, method)
        threshold = self.decision.threshold
        if (keras_p[0] >= threshold) != (onnx_p_fake >= threshold) or abs(keras_p[0] - onnx_p_fake) > tolerance:
            raise ModelDisagreementError(
                f"Keras gives P(FAKE)={keras_p[0]:.4f} but ONNX gave {onnx_p_fake:.4f}: the heatmap would "
                "explain another verdict. Re-export the model (python -m training.export)."
            )
        return maps[0]


def deletion_faithfulness(
    pixels: np.ndarray, heatmap: np.ndarray, p_fake: float, predict_p_fake: Callable[[np.ndarray], np.ndarray],
    explained: str, share: float = 0.2,
) -> dict:
    """How much the explained class's probability drops when the most- vs least-relevant pixels go.

    `p_fake` is the verdict's P(FAKE) for `pixels` itself (not recomputed); `predict_p_fake` maps
    (N, 32, 32, 3) float 0-255 -> (N,) P(FAKE) and only sees the two perturbed copies.

    The `share` of pixels with the highest (lowest) heatmap values are replaced by a blurred copy
    of the image (a simple imputation in the spirit of ROAD, Rong et al. 2022). A faithful map gives
    a large drop for the most relevant pixels and a small one for the least: score = drop_most -
    drop_least, in probability points (-1..1; > 0 is good).
    """
    from PIL import Image, ImageFilter

    image = np.asarray(pixels, dtype=np.uint8)
    blurred = np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(2)), dtype=np.uint8)
    order = np.argsort(heatmap.reshape(-1), kind="stable")
    k = max(1, int(round(share * order.size)))
    variants = []
    for chosen in (order[-k:], order[:k]):  # most relevant, least relevant
        mask = np.zeros(order.size, bool)
        mask[chosen] = True
        mask = mask.reshape(heatmap.shape)[:, :, None]
        variants.append(np.where(mask, blurred, image))
    p_fakes = np.r_[p_fake, predict_p_fake(np.stack(variants).astype(np.float32))]  # original, most, least
    p_class = p_fakes if explained == "FAKE" else 1.0 - p_fakes
    drop_most, drop_least = float(p_class[0] - p_class[1]), float(p_class[0] - p_class[2])
    return {"share_removed": share, "drop_most_relevant": drop_most, "drop_least_relevant": drop_least,
            "score": drop_most - drop_least}
