"""The served graph: backbones averaged (with flip test-time augmentation), Platt scaling and the
out-of-domain score as fixed Keras layers, then ONNX export, parity check and an ONNX runner.

Everything a picture meets at inference is inside this graph, so `inference/` needs only ONNX Runtime.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.data import CLASS_NAMES

CALIBRATED_LOGIT = "calibrated_logit"


@dataclass(frozen=True)
class OODCombination:
    """ood_score = max((domain - domain_threshold) / domain_scale, (distance - distance_threshold) / distance_scale).

    The domain head catches modern photos and other generators; the Mahalanobis distance of the pooled
    features catches what neither CIFAKE nor the fitting sources resemble (textures, scientific images).
    Both parts are scaled so that 0 is each one's own threshold: out of domain when ood_score > 0.
    """

    domain_threshold: float
    domain_scale: float
    means: np.ndarray  # (2, D)
    whitening: np.ndarray  # (D, D)
    distance_threshold: float
    distance_scale: float


def _fixed_dense(x, units: int, kernel: np.ndarray, bias: np.ndarray | None, name: str):
    from keras import layers

    dense = layers.Dense(units, use_bias=bias is not None, name=name, trainable=False, dtype="float32")
    out = dense(x)
    dense.set_weights([kernel.astype(np.float32)] + ([bias.astype(np.float32)] if bias is not None else []))
    return out


BACKBONE_PREFIX = "backbone"  # nested models in the exported graph: backbone0_mirror, backbone1, ...
ENSEMBLE_LOGIT = "ensemble_logit"


def flip_left_right(x, name: str = "mirror"):
    """(N, H, W, C) -> the mirror image, from stock layers (exact in float32): width moved last and
    multiplied by the exchange matrix, then moved back."""
    from keras import layers

    width = x.shape[2]
    swapped = layers.Permute((1, 3, 2), name=f"{name}_width_last")(x)
    mirrored = _fixed_dense(swapped, width, np.eye(width, dtype=np.float32)[::-1], None, f"{name}_exchange")
    return layers.Permute((1, 3, 2), name=f"{name}_width_back")(mirrored)


def logit_backbone(model, name: str):
    """A Keras model (a run's best.keras, or an exported model.keras) -> its pixels -> logit sub-model."""
    import keras

    from training.model import LOGIT_LAYER

    return keras.Model(model.input, model.get_layer(LOGIT_LAYER).output, name=name)


def served_logit(base, members: list = (), flip: bool = True):
    """The logit the verdict reads, on `base.input`: the mean over backbones (base, then `members`) and,
    with `flip`, over each picture and its mirror image. Returns (tensor (N, 1), passes per picture).

    The base's own layers give its unmirrored logit, so Grad-CAM's `last_conv` stays on the path to the
    verdict; its mirrored pass runs through a copy with the same weights."""
    import keras
    from keras import layers

    from training.model import LOGIT_LAYER

    x = base.input
    logits = [base.get_layer(LOGIT_LAYER).output]
    mirrored = flip_left_right(x) if flip else None
    if flip:
        source = logit_backbone(base, f"{BACKBONE_PREFIX}0")
        twin = keras.models.clone_model(source)
        twin.set_weights(source.get_weights())
        twin.name = f"{BACKBONE_PREFIX}0_mirror"
        logits.append(twin(mirrored))
    for k, member in enumerate(members, start=1):
        backbone = logit_backbone(member, f"{BACKBONE_PREFIX}{k}")
        logits.append(backbone(x))
        if flip:
            logits.append(backbone(mirrored))
    if len(logits) == 1:
        return logits[0], 1
    return layers.Average(name=ENSEMBLE_LOGIT)(logits), len(logits)


def build_export_model(base, platt: tuple[float, float], domain_head, combination: OODCombination | None = None,
                       logit=None):
    """base (outputs p_fake) -> model with outputs [calibrated P(FAKE) (N, 1), ood_score (N, 1)].

    ood_score is the domain head's logit on the pooled moments (`training.features`), or with a
    `combination` the combined score described there: higher means less like CIFAKE. `logit`: the
    served logit (`served_logit`); default the base's own. Stock layers only, so `model.keras` loads
    without this package.
    """
    import keras
    from keras import layers

    from training.features import pooled_moments
    from training.model import FEATURES_LAYER, LOGIT_LAYER

    logit = base.get_layer(LOGIT_LAYER).output if logit is None else logit
    scale = layers.Dense(1, name=CALIBRATED_LOGIT, trainable=False)
    calibrated = scale(logit)  # a * logit + b
    scale.set_weights([np.array([[platt[0]]], np.float32), np.array([platt[1]], np.float32)])
    p_fake = layers.Activation("sigmoid", name="p_fake_calibrated", dtype="float32")(calibrated)
    kernel, bias = domain_head.folded()
    if combination is None:
        ood = _fixed_dense(pooled_moments(base, prefix="domain"), 1, kernel, bias, "ood_score")
        return keras.Model(base.input, [p_fake, ood], name=base.name)
    c = combination
    domain = _fixed_dense(pooled_moments(base, prefix="domain"), 1, kernel / c.domain_scale,
                          (bias - c.domain_threshold) / c.domain_scale, "domain_part")
    features = base.get_layer(FEATURES_LAYER).output
    distances = []
    for k, name in enumerate(CLASS_NAMES):
        z = _fixed_dense(features, c.whitening.shape[0], c.whitening, -c.means[k] @ c.whitening, f"whiten_{name.lower()}")
        squared = layers.Multiply(name=f"square_{name.lower()}")([z, z])
        distances.append(_fixed_dense(squared, 1, np.ones((c.whitening.shape[0], 1)) / c.distance_scale,
                                      np.array([-c.distance_threshold / c.distance_scale]), f"distance_{name.lower()}"))
    distance = layers.Minimum(name="distance_part")(distances)
    ood = layers.Maximum(name="ood_score", dtype="float32")([domain, distance])
    return keras.Model(base.input, [p_fake, ood], name=base.name)


ONNX_INPUT = "pixels"
ONNX_OUTPUTS = ("p_fake", "ood_score")


def export_onnx(model, path: Path, sample: np.ndarray) -> None:
    """Keras -> ONNX, then give the graph's input and outputs the names of the documented contract."""
    import onnx

    model(sample[:1].astype(np.float32))  # Keras 3 exports only a model that has been called
    model.export(str(path), format="onnx", verbose=False)
    graph_model = onnx.load(str(path))
    graph = graph_model.graph
    renames = {graph.input[0].name: ONNX_INPUT}
    renames.update({out.name: new for out, new in zip(graph.output, ONNX_OUTPUTS)})
    for node in graph.node:
        node.input[:] = [renames.get(n, n) for n in node.input]
        node.output[:] = [renames.get(n, n) for n in node.output]
    for value in list(graph.input) + list(graph.output):
        value.name = renames.get(value.name, value.name)
    onnx.checker.check_model(graph_model)
    onnx.save(graph_model, str(path))


def save_model_files(model, staging: Path, parity_images: np.ndarray, tolerance: float = 1e-4) -> dict:
    """Write model.keras and model.onnx into `staging`; assert Keras/ONNX parity on `parity_images`."""
    model.save(staging / "model.keras")
    export_onnx(model, staging / "model.onnx", parity_images)
    parity_x = parity_images.astype(np.float32)
    keras_p, keras_ood = (o.reshape(-1) for o in model.predict(parity_x, batch_size=512, verbose=0))
    onnx_p, onnx_ood = run_onnx(staging / "model.onnx", parity_x)
    max_diff = float(np.abs(keras_p - onnx_p).max())
    ood_rel = float((np.abs(keras_ood - onnx_ood) / np.maximum(1.0, np.abs(keras_ood))).max())
    if max_diff > tolerance:
        raise RuntimeError(f"Keras and ONNX disagree: max |ΔP(FAKE)| = {max_diff:.2e} > {tolerance}.")
    return {"images": int(len(parity_x)), "max_abs_diff_p_fake": max_diff, "max_rel_diff_ood_score": ood_rel,
            "tolerance": tolerance}


def run_onnx(path: Path, images: np.ndarray, batch: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    p_parts, o_parts = [], []
    for start in range(0, len(images), batch):
        p, o = session.run(None, {name: images[start : start + batch].astype(np.float32)})
        p_parts.append(p.reshape(-1))
        o_parts.append(o.reshape(-1))
    return np.concatenate(p_parts), np.concatenate(o_parts)
