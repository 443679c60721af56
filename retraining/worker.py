"""Learn accepted new labelled pictures without forgetting CIFAKE: `python -m retraining`.

    python -m retraining --data-dir data                     # what the admin page's button runs
    python -m retraining --data-dir data --method finetune   # the old fine-tune-everything

1. New data: the pictures an admin accepted (flags and labelled zips), read from the labels file the
   app writes when a run starts (`retraining.labels`). A stratified share is held out to judge the new
   version ("held-out new").
2. Original data: replay images from CIFAKE training data (the full dataset when present, else the
   slice committed in `examples/replay/`) and a held-out slice of the original validation data.
3. One of three methods (`training.incremental`: head, memory, finetune) builds the new version from
   the active one (the parent).
4. Export into a staging folder `models/.retrain-<run>` (Keras and ONNX, parity checked), renamed into
   `models/v<N>` only when complete (`retraining.versions`).
5. Gate: the new version is activated only if its accuracy on the held-out original slice is at least
   the parent's minus `--tolerance` and it is better than the parent on held-out new pictures.
   Otherwise it is kept, not promoted, with the reason in its metadata.

The worker's lifecycle (one run at a time, cancel, stop with the app, status per run) is
`retraining.jobs`; this module calls its worker-side helpers.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from evaluation.labelled import Split, load_labelled
from inference.model_card import PROJECT_ROOT, load_metadata
from retraining.jobs import (STAGING_PREFIX, RetrainBusyError, WorkerCancelled, hold_worker_lock,
                             install_cancellation, signals_deferred, write_status)
from retraining.labels import LABELS_NAME, load_new_images, read_labels
from retraining.versions import ModelVersions
from training.data import DEFAULT_DATA, load_cifake
from training.incremental import (METHODS, RetrainConfig, build_finetuned_version, build_head_version,
                                  export_version)
from training.memory import peak_rss_mb

REPLAY_DIR = PROJECT_ROOT / "examples" / "replay"


class Status:
    """Progress for the admin page: `retraining.jobs.write_status` for this run, and stdout."""

    def __init__(self, path: Path | None, run_id: str):
        self.path, self.run_id = path, run_id

    def __call__(self, state: str, progress: float, message: str, **extra) -> None:
        print(f"[{state} {progress * 100:3.0f} %] {message}", flush=True)
        if self.path is not None:
            write_status(self.path, self.run_id, state, progress, message, **extra)


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


def retrain(data_dir: Path, labels: dict[str, str], by: str = "", config: RetrainConfig = RetrainConfig(),
            cifake: str | None = None, status_path: Path | None = None, activate: bool = True,
            run_id: str | None = None) -> dict:
    """One run: `labels` ({picture path relative to `data_dir`: "REAL" | "FAKE"}) -> the new version's
    metadata. Steps 1-5 of the module docstring in order; they share the run's state, so one function."""
    import keras

    if config.method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {config.method!r}.")
    run_id = run_id or uuid.uuid4().hex[:12]
    status = Status(status_path, run_id)
    versions = ModelVersions(Path(data_dir) / "models")
    parent_version = versions.active_version()
    parent_dir = versions.version_dir(parent_version)
    status("running", 0.02, f"loading data (parent: v{parent_version}, method: {config.method})")
    new = load_new_images(Path(data_dir), labels)
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
    staging = versions.root / f"{STAGING_PREFIX}{run_id}"
    staging.mkdir(parents=True)
    try:
        metadata = export_version(parent_meta, model, holdout, staging, config.method, head)
        (staging / "model.json").write_text(json.dumps(metadata, indent=2))  # complete enough to classify
        gate = judge(parent_dir, staging, holdout, new_train, new_holdout, config.tolerance)
        with signals_deferred():  # commit and activation happen both or neither
            version = versions.next_version()
            metadata.update(version=version, parent_version=parent_version)
            metadata["retraining"] = {
                "by": by, "run_id": run_id, "method": config.method, "head": head, "new_images": len(new),
                "new_train": len(new_train), "new_holdout": len(new_holdout), "original": described,
                "config": asdict(config), "seconds": round(time.time() - started, 1),
                "peak_rss_mb": peak_rss_mb(),
                "new_train_accuracy_after": gate.pop("new_train_accuracy_after"), "gate": gate,
            }
            (staging / "model.json").write_text(json.dumps(metadata, indent=2))
            versions.commit(staging, version)
            promoted = gate["passed"] and activate
            if promoted:
                versions.set_active(version, by or "retrain", "passed the gate")
            verdict = "promoted" if promoted else "kept, not promoted"
            status("done", 1.0, f"v{version} {verdict}: {gate['reason']}", version=version, promoted=promoted)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return metadata


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m retraining", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default=os.environ.get("CIFAKE_DATA_DIR", str(PROJECT_ROOT / "data")),
                        help="the app's data folder (stored pictures, models)")
    parser.add_argument("--labels", default=None,
                        help=f"JSON file {{picture path relative to the data folder: REAL|FAKE}} (default: "
                             f"<data-dir>/{LABELS_NAME}, which the app writes when a run starts)")
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
    data_dir = Path(args.data_dir)
    run_id = args.run_id or uuid.uuid4().hex[:12]
    status_path = Path(args.status) if args.status else None
    status = Status(status_path, run_id)
    try:
        hold_worker_lock(data_dir, args.lock_fd)
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
        labels = read_labels(Path(args.labels) if args.labels else data_dir / LABELS_NAME)
        retrain(data_dir, labels, args.by, config, args.cifake, status_path, not args.no_activate, run_id)
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
