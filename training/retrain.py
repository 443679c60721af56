"""Fine-tune the active model on accepted new labelled images: `python -m training.retrain`.

    python -m training.retrain --data-dir data --steps 300      # what the admin page's button runs

1. New data: the accepted feedback in the app's database (flags an admin accepted, labelled zips).
   A stratified share is held out to judge the new version ("held-out new").
2. Replay: each batch mixes new images with original CIFAKE training images, so old knowledge is not
   forgotten (the full dataset when present, else the slice committed in `examples/replay/`).
3. The model is fine-tuned (same augmentation code as training), keeps its parent's calibration, its out-of-domain
   statistics refitted, and exported with the same code as `training.export` into a staging folder
   that is renamed into `models/v<N>` only when complete.
4. Gate: the new version is activated only if its accuracy on a held-out slice of the original data
   is at least the parent's minus `--tolerance`, and it is better than the parent on held-out new data.
   Otherwise it is kept, not promoted, with the reason in its metadata.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from PIL import Image

from inference.model_card import load_metadata
from webapp.registry import Registry
from webapp.store import Store
from training.augment import flip_and_shift
from training.data import DEFAULT_DATA, PROJECT_ROOT, Split, load_cifake, load_labelled

REPLAY_DIR = PROJECT_ROOT / "examples" / "replay"


@dataclass(frozen=True)
class RetrainConfig:
    steps: int = 300  # optimisation steps
    batch_size: int = 64
    new_share: float = 0.25  # share of each batch drawn from the new images
    learning_rate: float = 2e-4  # small: this is fine-tuning
    holdout_share: float = 0.3  # of the new images, kept aside to judge the new version
    tolerance: float = 0.005  # allowed accuracy drop on the held-out original slice (0.5 points)
    original_holdout: int = 2000  # images of the original validation split used in the gate
    replay_images: int = 20000  # original training images mixed in
    seed: int = 0
    train_from: str = ""  # layers before this one stay frozen ("" = fine-tune every layer)


class Status:
    """Progress for the admin page, written atomically to a JSON file."""

    def __init__(self, path: Path | None):
        self.path = path

    def __call__(self, state: str, progress: float, message: str, **extra) -> None:
        print(f"[{state} {progress * 100:3.0f} %] {message}", flush=True)
        if self.path is None:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"state": state, "progress": progress, "message": message, **extra}))
        tmp.replace(self.path)


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
    """(replay training images, held-out original slice, description)."""
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
    holdout = load_labelled(REPLAY_DIR / "val")
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
    from training.evaluate import predict_split

    if len(split) == 0:
        return float("nan")
    p_fake, _ = predict_split(classifier, split.images)
    return float(((p_fake >= classifier.threshold).astype(int) == split.labels).mean())


def fine_tune(parent_dir: Path, new_train: Split, replay: Split, config: RetrainConfig, status: Status):
    """Fine-tune the parent on batches of new images (their accepted labels) and replay images.

    Replay images are distilled rather than relabelled (Li & Hoiem's "learning without forgetting"):
    their targets are the parent's own probabilities, so the model keeps its behaviour on the original
    data while it learns the new images. BatchNorm stays frozen (inference mode), so a few unusual
    batches cannot shift its statistics; `train_from` can freeze the early convolutions too. Returns the
    updated Keras export model.
    """
    import keras

    keras.utils.set_random_seed(config.seed)
    parent = keras.models.load_model(parent_dir / "model.keras")
    teacher = keras.models.load_model(parent_dir / "model.keras")
    teacher_logit = keras.Model(teacher.input, teacher.get_layer("logit").output)
    frozen = bool(config.train_from) and any(layer.name == config.train_from for layer in parent.layers)
    for layer in parent.layers:
        if layer.name == config.train_from:
            frozen = False
        if frozen or isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    logit_model = keras.Model(parent.input, parent.get_layer("logit").output)
    logit_model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                        loss=keras.losses.BinaryCrossentropy(from_logits=True))
    rng = np.random.default_rng(config.seed)
    n_new = max(1, int(round(config.batch_size * config.new_share)))
    n_old = config.batch_size - n_new
    for step in range(1, config.steps + 1):
        new_idx = rng.integers(0, len(new_train), n_new)
        old_idx = rng.integers(0, len(replay), n_old)
        images = flip_and_shift(np.concatenate([new_train.images[new_idx], replay.images[old_idx]]), rng)
        images = images.astype("float32")
        soft = 1.0 / (1.0 + np.exp(-teacher_logit(images[n_new:], training=False).numpy()))  # (n_old, 1)
        targets = np.concatenate([new_train.labels[new_idx].astype("float32")[:, None], soft])
        loss = logit_model.train_on_batch(images, targets)
        if step % 20 == 0 or step == config.steps:
            status("running", 0.1 + 0.7 * step / config.steps, f"fine-tuning step {step}/{config.steps}, loss {float(loss):.4f}")
    return parent


def export_version(parent_dir: Path, tuned, replay: Split, holdout: Split, staging: Path) -> dict:
    """Recalibrate, refit the out-of-domain statistics and write a complete export into `staging`."""
    from training.export import (build_export_model, file_entries, fit_mahalanobis,
                                 predict_logits_and_features, run_onnx, save_model_files)
    from training.metrics import compute_metrics

    parent_meta = load_metadata(parent_dir, check_files=())
    # The parent's calibration is kept: distillation holds the logit scale on the original data, and a
    # refit on a small held-out slice would move the decision threshold more than fine-tuning does.
    platt = (float(parent_meta["calibration"].get("a", 1.0)), float(parent_meta["calibration"].get("b", 0.0)))
    _, features = predict_logits_and_features(tuned, replay.images)
    means, whitening = fit_mahalanobis(features, replay.labels)
    model = build_export_model(tuned, platt, means, whitening)
    parity = save_model_files(model, staging, holdout.images[:1000])
    p_fake, ood = run_onnx(staging / "model.onnx", holdout.images)
    quantile = parent_meta["decision"].get("ood_quantile_of_validation", 0.99)
    metadata = json.loads(json.dumps(parent_meta))  # a deep copy; what is not refitted is inherited
    metadata.update(
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        parity=parity, files=file_entries(staging), plots={},
        calibration={"method": "Platt scaling inherited from the parent version", "a": platt[0], "b": platt[1],
                     "temperature": 1.0 / platt[0],
                     "validation_ece_before": parent_meta["calibration"].get("validation_ece_after"),
                     "validation_ece_after": compute_metrics(holdout.labels, p_fake)["ece"]},
    )
    metadata["decision"]["ood_threshold"] = float(np.quantile(ood, quantile))
    metadata["metrics"] = {"original_holdout": compute_metrics(holdout.labels, p_fake, metadata["decision"]["threshold"])}
    return metadata


def retrain(data_dir: Path, by: str = "", config: RetrainConfig = RetrainConfig(), cifake: str | None = None,
            status_path: Path | None = None, activate: bool = True) -> dict:
    status = Status(status_path)
    store = Store(folder=data_dir)
    registry = Registry(Path(data_dir) / "models")
    parent_version = registry.active_version()
    parent_dir = registry.version_dir(parent_version)
    status("running", 0.02, f"loading data (parent: v{parent_version})")
    new = load_new_images(store)
    new_train, new_holdout = split_new(new, config.holdout_share, config.seed)
    if len(new_train) == 0:
        raise ValueError("Too few new images: add at least two per class.")
    replay, holdout, described = load_original(config, cifake)
    status("running", 0.08, f"{len(new_train)} new training images, {len(new_holdout)} held out; {described}")
    started = time.time()
    tuned = fine_tune(parent_dir, new_train, replay, config, status)
    status("running", 0.82, "exporting and checking the new version")
    staging = registry.staging_dir()
    try:
        metadata = export_version(parent_dir, tuned, replay, holdout, staging)
        (staging / "model.json").write_text(json.dumps(metadata, indent=2))  # complete enough to classify
        from inference.classifier import Classifier

        parent_clf, new_clf = Classifier(parent_dir), Classifier(staging)
        before_old, after_old = accuracy(parent_clf, holdout), accuracy(new_clf, holdout)
        before_new, after_new = accuracy(parent_clf, new_holdout), accuracy(new_clf, new_holdout)
        passed_old = after_old >= before_old - config.tolerance
        passed_new = len(new_holdout) > 0 and after_new > before_new
        reasons = [f"original held-out accuracy {before_old:.4f} -> {after_old:.4f} "
                   f"({'within' if passed_old else 'beyond'} the {config.tolerance:.3f} tolerance)",
                   f"held-out new accuracy {before_new:.4f} -> {after_new:.4f} "
                   f"({'better' if passed_new else 'not better'})"]
        version = registry.next_version()
        metadata.update(version=version, parent_version=parent_version)
        metadata["retraining"] = {
            "by": by, "new_images": len(new), "new_train": len(new_train), "new_holdout": len(new_holdout),
            "original": described, "config": asdict(config), "seconds": round(time.time() - started, 1),
            "new_train_accuracy_after": accuracy(new_clf, new_train),
            "gate": {"passed": bool(passed_old and passed_new), "reason": "; ".join(reasons),
                     "original_before": before_old, "original_after": after_old,
                     "new_before": before_new, "new_after": after_new, "tolerance": config.tolerance},
        }
        (staging / "model.json").write_text(json.dumps(metadata, indent=2))
        registry.commit(staging, version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    gate = metadata["retraining"]["gate"]
    if gate["passed"] and activate:
        registry.set_active(version, by or "retrain", "passed the gate")
    verdict = "promoted" if gate["passed"] and activate else "kept, not promoted"
    status("done", 1.0, f"v{version} {verdict}: {gate['reason']}", version=version, promoted=gate["passed"])
    return metadata


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("CIFAKE_DATA_DIR", str(PROJECT_ROOT / "data")),
                        help="the app's data folder (database, images, models)")
    parser.add_argument("--steps", type=int, default=RetrainConfig.steps)
    parser.add_argument("--learning-rate", type=float, default=RetrainConfig.learning_rate)
    parser.add_argument("--tolerance", type=float, default=RetrainConfig.tolerance,
                        help="allowed accuracy drop on the original held-out slice")
    parser.add_argument("--cifake", default=None, help="CIFAKE folder for replay (default ../shared/...); 'slice': the committed examples/replay")
    parser.add_argument("--status", default=None, help="JSON file for progress")
    parser.add_argument("--by", default="", help="who asked (recorded)")
    parser.add_argument("--no-activate", action="store_true", help="never switch the served version")
    args = parser.parse_args(argv)
    status = Status(Path(args.status) if args.status else None)
    config = RetrainConfig(steps=args.steps, learning_rate=args.learning_rate, tolerance=args.tolerance)
    try:
        retrain(Path(args.data_dir), args.by, config, args.cifake, Path(args.status) if args.status else None,
                not args.no_activate)
    except (ValueError, FileNotFoundError) as err:
        status("failed", 0.0, str(err))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
