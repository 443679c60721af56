"""How a new model version grows from its parent (the active one) and is exported: the three methods
of retraining. The worker that runs them (new data, replay data, the gate, the version folders, the
lock and the status) is `retraining.worker`: `python -m retraining`.

- `head` (default): the parent stays frozen; a residual head on its multi-layer pooled moments
  (training.features) adds to the parent's served logit, gated by the parent's own out-of-domain
  score: new logit = parent logit + gate(ood) * (w . z + b), gate = sigmoid((ood - threshold) / s),
  so inside the parent's domain (CIFAKE) the parent speaks and beyond it the head does. It is fitted
  on the new pictures (class-balanced) while distilling the parent on replay images. Seconds to fit;
  head and gate are part of the ONNX graph. `head_gate=False` (`--no-head-gate`) drops the gate.
- `memory`: the accepted pictures themselves, as an exemplar memory in the same feature space: the
  logit moves by strength x (sum of kernels to FAKE exemplars - sum to REAL exemplars), kernel
  exp((cos - 1) / temperature). Nothing is trained; the memory is part of the ONNX graph.
- `finetune`: every layer fine-tuned on batches of new and replay images (replay distilled,
  BatchNorm frozen) - the previous method, kept as the baseline.

The parent's out-of-domain output is kept as it is (with its threshold; for `finetune`, whose
features move, the threshold is refitted at the parent's quantile on the held-out slice).
`status(state, progress, message)` is how the methods report progress; the worker passes its own.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from evaluation.labelled import Split

Progress = Callable[..., None]  # status(state, progress in [0, 1], message)
METHODS = ("head", "memory", "finetune")


@dataclass(frozen=True)
class RetrainConfig:
    method: str = "head"  # one of METHODS
    holdout_share: float = 0.3  # of the new images, kept aside to judge the new version
    tolerance: float = 0.005  # allowed accuracy drop on the held-out original slice (0.5 points)
    original_holdout: int = 2000  # validation images in the gate: one picture = 0.05 points
    replay_images: int = 8000  # original training images distilled (head) or mixed in (finetune)
    seed: int = 0
    # head
    head_l2: float = 1.0  # L2 penalty on the head's weights (standardised features); 0.03 moved 2 of 300 CIFAKE pictures
    distill_weight: float = 10.0  # weight of "stay the parent on replay" against "fit the new pictures"
    head_gate: bool = True  # the head speaks only where the parent's out-of-domain score is high
    gate_quantile: float = 0.99  # the gate is 1/2 at least this far out among replay pictures (or beyond the OOD threshold)
    # memory
    memory_temperature: float = 0.05  # kernel width in cosine distance
    memory_strength: float = 2.0  # logit shift per unit of kernel mass
    # finetune
    steps: int = 300  # optimisation steps
    batch_size: int = 64
    new_share: float = 0.25  # share of each batch drawn from the new images
    learning_rate: float = 2e-4  # small: this is fine-tuning
    train_from: str = ""  # layers before this one stay frozen ("" = fine-tune every layer)


# -- the parent's graph ---------------------------------------------------------------------------
def served_logit(model):
    """The tensor output[0]'s final sigmoid reads: the parent's calibrated logit (N, 1)."""
    layer = model.outputs[0]._keras_history.operation
    if getattr(layer, "activation", None) is None or layer.activation.__name__ != "sigmoid":
        raise ValueError(f"Output 0 of {model.name} must end in a sigmoid layer to retrain it; "
                         f"it ends in {layer.name} ({type(layer).__name__}).")
    return layer.input


def next_tag(model) -> str:
    """A prefix for the layers this retraining adds ("r1", "r2", ...): unique along a chain of versions."""
    taken = {layer.name.split("_", 1)[0] for layer in model.layers if layer.name.endswith("_logit")}
    n = 1
    while f"r{n}" in taken:
        n += 1
    return f"r{n}"


def extract_features(parent, images: np.ndarray, batch_size: int = 512) -> dict[str, np.ndarray]:
    """(N, 32, 32, 3) uint8 -> the frozen parent's {"logit": served logit (N,), "moments": pooled moments
    (N, M), "ood": out-of-domain score (N,)}, float64."""
    import keras

    from training.features import pooled_moments

    probe = keras.Model(parent.input, [served_logit(parent), pooled_moments(parent, prefix="probe_moments"),
                                       parent.outputs[1]])
    logits, moments, ood = probe.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)
    return {"logit": logits.reshape(-1).astype(np.float64), "moments": moments.astype(np.float64),
            "ood": ood.reshape(-1).astype(np.float64)}


def domain_gate(ood: np.ndarray, threshold: float, scale: float) -> np.ndarray:
    """How much the residual head may speak: sigmoid((ood - threshold) / scale), ~0 inside the parent's
    domain (where CIFAKE lives and the parent is right 97 % of the time), 1/2 at its threshold, ~1 beyond."""
    return 1.0 / (1.0 + np.exp(-(ood - threshold) / scale))


# -- method: residual head ------------------------------------------------------------------------
def fit_residual_head(new_z: np.ndarray, new_y: np.ndarray, new_logit: np.ndarray, new_gate: np.ndarray,
                      replay_z: np.ndarray, replay_logit: np.ndarray, replay_gate: np.ndarray, l2: float,
                      distill_weight: float) -> tuple[np.ndarray, float]:
    """(w (M,), b) minimising, for logits parent + gate * (z @ w + b):
    class-balanced mean log loss on the new pictures + distill_weight * mean cross-entropy to the parent's
    own probabilities on replay pictures + l2 * |w|^2. z: standardised moments, gate: `domain_gate`
    (fixed per picture). Convex: L-BFGS."""
    from scipy.optimize import minimize

    classes = np.unique(new_y)
    weight = np.zeros(len(new_y))
    for label in classes:  # each class present counts as much as the other, whatever the counts
        weight[new_y == label] = 1.0 / (len(classes) * (new_y == label).sum())
    teacher = 1.0 / (1.0 + np.exp(-replay_logit))
    dim = new_z.shape[1]

    def loss_and_grad(params):
        w, b = params[:dim], params[dim]
        z_new = new_logit + new_gate * (new_z @ w + b)
        z_old = replay_logit + replay_gate * (replay_z @ w + b)
        loss = (np.sum(weight * (np.logaddexp(0, z_new) - new_y * z_new))
                + distill_weight * np.mean(np.logaddexp(0, z_old) - teacher * z_old) + l2 * w @ w)
        g_new = weight * (1 / (1 + np.exp(-z_new)) - new_y) * new_gate
        g_old = distill_weight * (1 / (1 + np.exp(-z_old)) - teacher) / len(z_old) * replay_gate
        grad_w = new_z.T @ g_new + replay_z.T @ g_old + 2 * l2 * w
        return loss, np.concatenate([grad_w, [g_new.sum() + g_old.sum()]])

    result = minimize(loss_and_grad, np.zeros(dim + 1), jac=True, method="L-BFGS-B", options={"maxiter": 1000})
    return result.x[:dim], float(result.x[dim])


def build_head_version(parent, parent_meta: dict, new_train: Split, replay: Split, config: RetrainConfig,
                       status: Progress):
    """The parent plus a residual head (method `head`) or an exemplar memory (method `memory`)."""
    import keras
    from keras import layers

    from training.features import pooled_moments

    status("running", 0.15, f"reading the parent's features of {len(replay)} replay and {len(new_train)} new images")
    old_f, new_f = extract_features(parent, replay.images), extract_features(parent, new_train.images)
    mean, std = old_f["moments"].mean(axis=0), old_f["moments"].std(axis=0) + 1e-6
    replay_z, new_z = (old_f["moments"] - mean) / std, (new_f["moments"] - mean) / std
    status("running", 0.5, f"fitting the {config.method}")

    tag = next_tag(parent)
    moments = pooled_moments(parent, prefix=f"{tag}_moments")
    standardise = layers.Dense(len(mean), name=f"{tag}_standardise", trainable=False)  # (m - mean) / std
    standard = standardise(moments)
    standardise.set_weights([np.diag(1.0 / std).astype(np.float32), (-mean / std).astype(np.float32)])
    if config.method == "head":
        # the gate: 1/2 at the parent's out-of-domain threshold or, if that lets the head reach more than 1 % of
        # CIFAKE (a band rule may flag 7 %), at the replay pictures' 99th percentile; ~0.02 at the median one
        threshold = max(float(parent_meta["decision"]["ood_threshold"]),
                        float(np.quantile(old_f["ood"], config.gate_quantile)))
        scale = max(1e-6, (threshold - float(np.median(old_f["ood"]))) / 4.0) if config.head_gate else None
        gates = [domain_gate(f["ood"], threshold, scale) if scale else np.ones(len(f["ood"])) for f in (new_f, old_f)]
        w, b = fit_residual_head(new_z, new_train.labels.astype(np.float64), new_f["logit"], gates[0], replay_z,
                                 old_f["logit"], gates[1], config.head_l2, config.distill_weight)
        head = layers.Dense(1, name=f"{tag}_head")
        delta = head(standard)
        head.set_weights([w.reshape(-1, 1).astype(np.float32), np.array([b], np.float32)])
        if scale:
            gate_in = layers.Dense(1, name=f"{tag}_gate_in", trainable=False)  # (ood - threshold) / scale
            gate = layers.Activation("sigmoid", name=f"{tag}_gate")(gate_in(parent.outputs[1]))
            gate_in.set_weights([np.array([[1.0 / scale]], np.float32), np.array([-threshold / scale], np.float32)])
            delta = layers.Multiply(name=f"{tag}_gated")([gate, delta])
        described = {"features": int(len(w)), "weight_norm": float(np.linalg.norm(w)), "bias": b,
                     "gate": {"ood_threshold": threshold, "scale": scale} if scale else None,
                     "gate_mean_replay": float(gates[1].mean()), "gate_mean_new": float(gates[0].mean())}
    else:
        exemplars = new_z / (np.linalg.norm(new_z, axis=1, keepdims=True) + 1e-12)  # (K, M)
        unit = layers.UnitNormalization(name=f"{tag}_unit")(standard)
        kernel_in = layers.Dense(len(exemplars), name=f"{tag}_similarity")  # (cos - 1) / temperature
        kernels = layers.Activation("exponential", name=f"{tag}_kernel")(kernel_in(unit))
        kernel_in.set_weights([(exemplars.T / config.memory_temperature).astype(np.float32),
                               np.full(len(exemplars), -1.0 / config.memory_temperature, np.float32)])
        vote = layers.Dense(1, use_bias=False, name=f"{tag}_head")
        delta = vote(kernels)
        signs = np.where(new_train.labels == 1, 1.0, -1.0) * config.memory_strength
        vote.set_weights([signs.reshape(-1, 1).astype(np.float32)])
        described = {"exemplars": int(len(exemplars)), "fake_exemplars": int((new_train.labels == 1).sum())}
    logit = layers.Add(name=f"{tag}_logit")([served_logit(parent), delta])
    p_fake = layers.Activation("sigmoid", name=f"{tag}_p_fake", dtype="float32")(logit)
    model = keras.Model(parent.input, [p_fake, parent.outputs[1]], name=parent.name)
    return model, {"layer_prefix": tag, "logit_layer": f"{tag}_logit", **described}


# -- method: fine-tune everything (baseline) -------------------------------------------------------
def build_finetuned_version(parent, parent_meta: dict, new_train: Split, replay: Split, config: RetrainConfig,
                            status: Progress):
    """Fine-tune the parent on batches of new images (their accepted labels) and replay images.

    Replay images are distilled rather than relabelled (Li & Hoiem's "learning without forgetting"):
    their targets are the parent's own probabilities. BatchNorm and the calibration stay frozen;
    `train_from` can freeze the early convolutions too.
    """
    import keras

    from training.augment import flip_and_shift

    keras.utils.set_random_seed(config.seed)
    status("running", 0.12, "reading the parent's outputs on replay images")
    replay_logit = extract_features(parent, replay.images)["logit"]
    frozen = bool(config.train_from) and any(layer.name == config.train_from for layer in parent.layers)
    calibration = served_logit(parent)._keras_history.operation
    for layer in parent.layers:
        if layer.name == config.train_from:
            frozen = False
        if frozen or layer is calibration or isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    logit_model = keras.Model(parent.input, served_logit(parent))
    logit_model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                        loss=keras.losses.BinaryCrossentropy(from_logits=True))
    rng = np.random.default_rng(config.seed)
    n_new = max(1, int(round(config.batch_size * config.new_share)))
    n_old = config.batch_size - n_new
    for step in range(1, config.steps + 1):
        new_idx = rng.integers(0, len(new_train), n_new)
        old_idx = rng.integers(0, len(replay), n_old)
        images = flip_and_shift(np.concatenate([new_train.images[new_idx], replay.images[old_idx]]), rng)
        soft = 1.0 / (1.0 + np.exp(-replay_logit[old_idx]))  # the parent's probabilities (unflipped image)
        targets = np.concatenate([new_train.labels[new_idx], soft]).astype("float32")[:, None]
        loss = logit_model.train_on_batch(images.astype("float32"), targets)
        if step == 1 or step % 20 == 0 or step == config.steps:  # the first step says training has begun
            status("running", 0.15 + 0.65 * step / config.steps, f"fine-tuning step {step}/{config.steps}, loss {float(loss):.4f}")
    return parent, {"steps": config.steps, "logit_layer": None}


# -- export and gate --------------------------------------------------------------------------------
def export_version(parent_meta: dict, model, holdout: Split, staging: Path, method: str, head: dict) -> dict:
    """Write model.keras and model.onnx (parity checked) into `staging`; the metadata inherits the
    parent's and records what changed."""
    from evaluation.metrics import compute_metrics
    from training.export import file_entries
    from training.graph import run_onnx, save_model_files

    parity = save_model_files(model, staging, holdout.images[:1000])
    p_fake, ood = run_onnx(staging / "model.onnx", holdout.images)
    metadata = json.loads(json.dumps(parent_meta))  # a deep copy; what is not refitted is inherited
    metadata.update(created=datetime.now(timezone.utc).isoformat(timespec="seconds"), parity=parity,
                    files=file_entries(staging), plots={})
    if head.get("logit_layer"):
        metadata["gradcam"]["logit_layer"] = head["logit_layer"]  # Grad-CAM explains the new decision
        metadata["calibration"] = {**parent_meta["calibration"],
                                   "method": f"the parent's ({parent_meta['calibration'].get('method', '')}) "
                                             f"plus the retrained residual ({method})"}
    if method == "finetune":  # the features moved: the out-of-domain threshold is refitted
        quantile = parent_meta["decision"].get("ood_quantile_of_validation", 0.99)
        metadata["decision"]["ood_threshold"] = float(np.quantile(ood, quantile))
    metadata["metrics"] = {"original_holdout": compute_metrics(holdout.labels, p_fake, metadata["decision"]["threshold"])}
    return metadata
