"""Learn accepted new labelled pictures without forgetting CIFAKE: `python -m training.retrain`.

    python -m training.retrain --data-dir data                     # what the admin page's button runs
    python -m training.retrain --data-dir data --method finetune   # the old fine-tune-everything

1. New data: the accepted feedback in the app's database (flags an admin accepted, labelled zips).
   A stratified share is held out to judge the new version ("held-out new").
2. Original data: replay images from CIFAKE training data (the full dataset when present, else the
   slice committed in `examples/replay/`) and a held-out slice of the original validation data.
3. One of three methods builds the new version from the active one (the parent):
   - `head` (default): the parent stays frozen; a residual head on its multi-layer pooled moments
     (training.features) adds to the parent's served logit, gated by the parent's own out-of-domain
     score: new logit = parent logit + gate(ood) * (w . z + b), gate = sigmoid((ood - threshold) / s),
     so inside the parent's domain (CIFAKE) the parent speaks and beyond it the head does. It is fitted
     on the new pictures (class-balanced) while distilling the parent on replay images. Seconds to fit;
     head and gate are part of the ONNX graph. `--no-head-gate` drops the gate.
   - `memory`: the accepted pictures themselves, as an exemplar memory in the same feature space: the
     logit moves by strength x (sum of kernels to FAKE exemplars - sum to REAL exemplars), kernel
     exp((cos - 1) / temperature). Nothing is trained; the memory is part of the ONNX graph.
   - `finetune`: every layer fine-tuned on batches of new and replay images (replay distilled,
     BatchNorm frozen) - the previous method, kept as the baseline.
   The parent's out-of-domain output is kept as it is (with its threshold; for `finetune`, whose
   features move, the threshold is refitted at the parent's quantile on the held-out slice).
4. Export into a staging folder `models/.retrain-<run>` (Keras and ONNX, parity checked), renamed into
   `models/v<N>` only when complete.
5. Gate: the new version is activated only if its accuracy on the held-out original slice is at least
   the parent's minus `--tolerance` and it is better than the parent on held-out new pictures.
   Otherwise it is kept, not promoted, with the reason in its metadata.

The worker lifecycle (one run at a time, cancel, stop with the app, status per run) is
`webapp.retrain_jobs`; this module calls its worker-side helpers.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from PIL import Image

from inference.model_card import load_metadata
from training.data import DEFAULT_DATA, PROJECT_ROOT, Split, load_cifake, load_labelled
from training.memory import peak_rss_mb
from webapp.registry import Registry
from webapp.retrain_jobs import (STAGING_PREFIX, RetrainBusyError, WorkerCancelled, hold_worker_lock,
                                 install_cancellation, signals_deferred, write_status)
from webapp.store import Store

REPLAY_DIR = PROJECT_ROOT / "examples" / "replay"
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


class Status:
    """Progress for the admin page: `webapp.retrain_jobs.write_status` for this run, and stdout."""

    def __init__(self, path: Path | None, run_id: str):
        self.path, self.run_id = path, run_id

    def __call__(self, state: str, progress: float, message: str, **extra) -> None:
        print(f"[{state} {progress * 100:3.0f} %] {message}", flush=True)
        if self.path is not None:
            write_status(self.path, self.run_id, state, progress, message, **extra)


def load_new_images(store: Store) -> Split:
    """Accepted feedback -> Split of (32, 32, 3) uint8 images with the labels the admins accepted."""
    items = store.list_feedback("accepted")
    latest = {}
    for item in items:  # one label per image: the last accepted decision wins
        latest[item["image_path"]] = item
    images, labels, names = [], [], []
    for path, item in latest.items():
        file = store.folder / path
        if not file.exists():
            continue
        images.append(np.asarray(Image.open(file).convert("RGB"), np.uint8))
        labels.append(1 if item["claimed_label"] == "FAKE" else 0)
        names.append(path)
    if not images:
        raise ValueError("No accepted labelled images to learn from.")
    return Split(np.stack(images), np.array(labels, np.uint8), np.array(names), np.array(names))


def load_original(config: RetrainConfig, cifake: str | None) -> tuple[Split, Split, str]:
    """(replay training images, held-out original validation slice, description)."""
    source = Path(cifake) if cifake and cifake != "slice" else DEFAULT_DATA
    rng = np.random.default_rng(config.seed)
    if cifake != "slice" and source.exists():
        data = load_cifake(source)
        replay = data.train.subset(np.sort(rng.permutation(len(data.train))[: config.replay_images]))
        holdout = data.val.subset(np.sort(rng.permutation(len(data.val))[: config.original_holdout]))
        return replay, holdout, f"CIFAKE at {source}: {len(replay)} replay, {len(holdout)} validation images"
    if not REPLAY_DIR.exists():
        raise FileNotFoundError(f"No original data: neither {source} nor {REPLAY_DIR} exists.")
    replay = load_labelled(REPLAY_DIR / "train")
    holdout = load_labelled(REPLAY_DIR / "val")  # 300 images: one picture is 0.33 points of the gate
    return replay, holdout, f"committed slice {REPLAY_DIR}: {len(replay)} replay, {len(holdout)} validation images"


def split_new(new: Split, share: float, seed: int) -> tuple[Split, Split]:
    """Stratified train / held-out split of the new images (at least one held out per class present)."""
    rng = np.random.default_rng(seed)
    train_idx, hold_idx = [], []
    for label in np.unique(new.labels):
        idx = rng.permutation(np.flatnonzero(new.labels == label))
        n_hold = max(1, int(round(share * len(idx)))) if len(idx) > 1 else 0
        hold_idx.extend(idx[:n_hold])
        train_idx.extend(idx[n_hold:])
    return new.subset(np.sort(train_idx)), new.subset(np.sort(hold_idx))


def accuracy(classifier, split: Split) -> float:
    """Accuracy of an ONNX classifier (as served) on `split`; NaN for an empty split."""
    if len(split) == 0:
        return float("nan")
    p_fake, _ = classifier.run(split.images)
    return float(((p_fake >= classifier.threshold).astype(int) == split.labels).mean())


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
                       status: Status):
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
                            status: Status):
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
        if step % 20 == 0 or step == config.steps:
            status("running", 0.15 + 0.65 * step / config.steps, f"fine-tuning step {step}/{config.steps}, loss {float(loss):.4f}")
    return parent, {"steps": config.steps, "logit_layer": None}


# -- export and gate --------------------------------------------------------------------------------
def export_version(parent_meta: dict, model, holdout: Split, staging: Path, method: str, head: dict) -> dict:
    """Write model.keras and model.onnx (parity checked) into `staging`; the metadata inherits the
    parent's and records what changed."""
    from training.export import file_entries, run_onnx, save_model_files
    from training.metrics import compute_metrics

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


def judge(parent_dir: Path, staging: Path, holdout: Split, new_train: Split, new_holdout: Split,
          tolerance: float) -> dict:
    """The gate, with both versions as served (ONNX): original held-out and held-out new accuracy."""
    from inference.classifier import Classifier

    parent_clf, new_clf = Classifier(parent_dir), Classifier(staging)
    before_old, after_old = accuracy(parent_clf, holdout), accuracy(new_clf, holdout)
    before_new, after_new = accuracy(parent_clf, new_holdout), accuracy(new_clf, new_holdout)
    passed_old = after_old >= before_old - tolerance
    passed_new = len(new_holdout) > 0 and after_new > before_new
    reasons = [f"original held-out accuracy {before_old:.4f} -> {after_old:.4f} on {len(holdout)} images "
               f"({'within' if passed_old else 'beyond'} the {tolerance:.3f} tolerance)",
               f"held-out new accuracy {before_new:.4f} -> {after_new:.4f} on {len(new_holdout)} images "
               f"({'better' if passed_new else 'not better'})"]
    return {"passed": bool(passed_old and passed_new), "reason": "; ".join(reasons),
            "original_before": before_old, "original_after": after_old, "original_images": len(holdout),
            "new_before": before_new, "new_after": after_new, "tolerance": tolerance,
            "new_train_accuracy_after": accuracy(new_clf, new_train)}


def retrain(data_dir: Path, by: str = "", config: RetrainConfig = RetrainConfig(), cifake: str | None = None,
            status_path: Path | None = None, activate: bool = True, run_id: str | None = None) -> dict:
    import keras

    if config.method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {config.method!r}.")
    run_id = run_id or uuid.uuid4().hex[:12]
    status = Status(status_path, run_id)
    store = Store(folder=data_dir)
    registry = Registry(Path(data_dir) / "models")
    parent_version = registry.active_version()
    parent_dir = registry.version_dir(parent_version)
    status("running", 0.02, f"loading data (parent: v{parent_version}, method: {config.method})")
    new = load_new_images(store)
    new_train, new_holdout = split_new(new, config.holdout_share, config.seed)
    if len(new_train) == 0:
        raise ValueError("Too few new images: add at least two per class.")
    replay, holdout, described = load_original(config, cifake)
    status("running", 0.08, f"{len(new_train)} new training images, {len(new_holdout)} held out; {described}")
    started = time.time()
    parent = keras.models.load_model(parent_dir / "model.keras")
    parent_meta = load_metadata(parent_dir, check_files=())
    build = build_finetuned_version if config.method == "finetune" else build_head_version
    model, head = build(parent, parent_meta, new_train, replay, config, status)
    status("running", 0.82, "exporting and checking the new version")
    staging = registry.root / f"{STAGING_PREFIX}{run_id}"
    staging.mkdir(parents=True)
    try:
        metadata = export_version(parent_meta, model, holdout, staging, config.method, head)
        (staging / "model.json").write_text(json.dumps(metadata, indent=2))  # complete enough to classify
        gate = judge(parent_dir, staging, holdout, new_train, new_holdout, config.tolerance)
        with signals_deferred():  # commit and activation happen both or neither
            version = registry.next_version()
            metadata.update(version=version, parent_version=parent_version)
            metadata["retraining"] = {
                "by": by, "run_id": run_id, "method": config.method, "head": head, "new_images": len(new),
                "new_train": len(new_train), "new_holdout": len(new_holdout), "original": described,
                "config": asdict(config), "seconds": round(time.time() - started, 1),
                "peak_rss_mb": peak_rss_mb(),
                "new_train_accuracy_after": gate.pop("new_train_accuracy_after"), "gate": gate,
            }
            (staging / "model.json").write_text(json.dumps(metadata, indent=2))
            registry.commit(staging, version)
            promoted = gate["passed"] and activate
            if promoted:
                registry.set_active(version, by or "retrain", "passed the gate")
            verdict = "promoted" if promoted else "kept, not promoted"
            status("done", 1.0, f"v{version} {verdict}: {gate['reason']}", version=version, promoted=promoted)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return metadata


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("CIFAKE_DATA_DIR", str(PROJECT_ROOT / "data")),
                        help="the app's data folder (database, images, models)")
    parser.add_argument("--method", default=RetrainConfig.method, choices=METHODS,
                        help="head: residual head on frozen features; memory: exemplar memory; finetune: every layer")
    parser.add_argument("--no-head-gate", action="store_true", help="(head) let the head speak everywhere")
    parser.add_argument("--steps", type=int, default=RetrainConfig.steps, help="fine-tuning steps (finetune)")
    parser.add_argument("--learning-rate", type=float, default=RetrainConfig.learning_rate, help="(finetune)")
    parser.add_argument("--tolerance", type=float, default=RetrainConfig.tolerance,
                        help="allowed accuracy drop on the original held-out slice")
    parser.add_argument("--cifake", default=os.environ.get("CIFAKE_RETRAIN_ORIGINAL") or None,
                        help="CIFAKE folder for replay and the gate (default ../shared/datasets/cifake, else the "
                             "committed slice); 'slice': always the committed examples/replay")
    parser.add_argument("--status", default=None, help="JSON file for progress")
    parser.add_argument("--by", default="", help="who asked (recorded)")
    parser.add_argument("--no-activate", action="store_true", help="never switch the served version")
    parser.add_argument("--run-id", default=None, help="this run's id (the app passes one; else generated)")
    parser.add_argument("--lock-fd", type=int, default=None, help="(app) descriptor of the worker lock it took")
    parser.add_argument("--parent-pid", type=int, default=None, help="(app) stop when this process is gone")
    args = parser.parse_args(argv)
    run_id = args.run_id or uuid.uuid4().hex[:12]
    status_path = Path(args.status) if args.status else None
    status = Status(status_path, run_id)
    try:
        hold_worker_lock(Path(args.data_dir), args.lock_fd)
    except RetrainBusyError as err:
        print(err, file=sys.stderr)  # the other run's status is left alone
        return 3
    if status_path is not None and not args.run_id:  # started by hand: this run takes the status file
        write_status(status_path, run_id, "running", 0.0, "starting", new_run=True, by=args.by,
                     started=time.time(), pid=os.getpid())
    install_cancellation(args.parent_pid)
    config = RetrainConfig(method=args.method, steps=args.steps, learning_rate=args.learning_rate,
                           tolerance=args.tolerance, head_gate=not args.no_head_gate)
    try:
        retrain(Path(args.data_dir), args.by, config, args.cifake, status_path, not args.no_activate, run_id)
    except WorkerCancelled as stop:
        status(stop.state, 0.0, str(stop))
        return 4
    except (ValueError, FileNotFoundError) as err:
        status("failed", 0.0, str(err))
        return 2
    except Exception as err:  # noqa: BLE001 - the admin page shows the reason; the log has the traceback
        status("failed", 0.0, f"{type(err).__name__}: {err}")
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
