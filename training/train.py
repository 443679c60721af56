"""Train a CIFAKE detector: `python -m training.train --model default|seed [options]`.

Writes `runs/<name>/`: `best.keras` (best validation accuracy of the raw or the EMA weights),
`last.keras` + `ema.weights.npz` + `state.json` (resume after an interruption with `--resume`),
`history.json`, `curves.png`, `config.json`.

Named recipes (`--recipe`) fix every field at once; explicit flags given after it still win:
- `anchor`: the published from-scratch CIFAKE recipe (issue 9): 32/64/128 x 2 convs, no dropout,
  flip + 4-px shifts, AdamW 1e-3 / wd 1e-4, cosine over 25 epochs, no re-delivery.
- `v2`: the anchor network with light re-delivery (no blur/noise), EMA of the weights, AdamW 2e-3.
- `v2-distill`: `v2` whose targets mix the label with the shipped models' probabilities (knowledge
  distillation from `exported/` and any `--teacher` folders, averaged in logit space; computed once
  per training picture and re-delivered variant with ONNX, cached in the run folder).
- `anchor-redeliver`: a second stage after `anchor` (`--init runs/anchor/best.keras`): 3 epochs of
  light re-delivery at a small learning rate, an attempt to train the anchor's weakness on resampled
  uploads away without a second full run (measured: it does not; README). A stage's training time
  includes its parent's (`state.json`).
Export the result with `python -m training.export --run runs/<name>`.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from training.augment import REDELIVERY_PRESETS, epoch_images, make_variants
from training import data as data_module
from training.data import PROJECT_ROOT, load_cifake
from training.config import RECIPES, RUNS_DIR, TrainConfig, parse_args  # noqa: F401 (RECIPES, RUNS_DIR: API)
from training.distill import teacher_probabilities
from training.model import CNNConfig

class WeightEMA:
    """Exponential moving average of all model weights (BatchNorm statistics included).

    Updated every `every` steps with decay**every: reading the weights back from TensorFlow stalls the
    training loop (per step it took more than half the epoch's time on this CPU).
    """

    def __init__(self, model, decay: float, weights: list[np.ndarray] | None = None, every: int = 16):
        self.model, self.decay, self.every, self.steps = model, decay, every, 0
        self.weights = weights if weights is not None else [w.copy() for w in model.get_weights()]

    def step(self) -> None:
        self.steps += 1
        if self.steps % self.every == 0:
            self.update(self.decay ** self.every)

    def update(self, decay: float) -> None:
        for ema, current in zip(self.weights, self.model.get_weights()):
            ema *= decay
            ema += (1.0 - decay) * current

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, *self.weights)
        tmp.replace(path)

    @staticmethod
    def load(path: Path) -> list[np.ndarray]:
        with np.load(path) as saved:
            return [saved[f"arr_{i}"] for i in range(len(saved.files))]


def _ema_callback(ema: WeightEMA):
    import keras

    class _Update(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            ema.step()

    return _Update()


def _cosine(config: TrainConfig, steps_per_epoch: int):
    import keras

    warmup = int(config.warmup_epochs * steps_per_epoch)
    if warmup <= 0:
        return keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=max(1, config.epochs * steps_per_epoch), alpha=config.min_lr_ratio
        )
    return keras.optimizers.schedules.CosineDecay(  # attention blocks trained from scratch need the warm-up
        0.0, decay_steps=max(1, config.epochs * steps_per_epoch - warmup), alpha=config.min_lr_ratio,
        warmup_target=config.learning_rate, warmup_steps=warmup)


def make_model(config: TrainConfig, steps_per_epoch: int):
    import keras

    from training.model import build_model

    keras.utils.set_random_seed(config.seed)
    model = build_model(config.model, CNNConfig(config.filters, config.convs, dropout=config.dropout))
    model.compile(
        optimizer=keras.optimizers.AdamW(_cosine(config, steps_per_epoch), weight_decay=config.weight_decay),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    return model


def plot_curves(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        axes[0].plot(epochs, [h[key] for h in history], marker="o", label=label)
    for key, label in (("accuracy", "train"), ("val_accuracy", "validation")):
        points = [(e, h[key]) for e, h in zip(epochs, history) if h.get(key) is not None]  # none with soft targets
        if points:
            axes[1].plot(*zip(*points), marker="o", label=label)
    axes[0].set(title="Loss (binary cross-entropy)", xlabel="epoch")
    axes[1].set(title="Accuracy (threshold 0.5)", xlabel="epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _save_state(run_dir: Path, state: dict) -> None:
    tmp = run_dir / "state.json.tmp"
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(run_dir / "state.json")


def _save_model(model, path: Path) -> None:
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    tmp.replace(path)  # atomic: an interruption never leaves a half-written checkpoint


def _start_from(model, parent: Path) -> dict:
    """Load a trained network's weights into `model` (same architecture); returns the parent run's
    state.json (empty if it has none), whose cost the new stage carries over."""
    import keras

    if parent.is_dir() and (parent / "model.json").exists():  # an exported model: its first backbone
        from training.export import run_dir_from_export

        with tempfile.TemporaryDirectory(prefix="cifake-parent-") as tmp:
            return _start_from(model, run_dir_from_export(parent, Path(tmp) / "run")[0] / "best.keras")
    weights = keras.models.load_model(parent, compile=False).get_weights()
    if [w.shape for w in weights] != [w.shape for w in model.get_weights()]:
        raise ValueError(f"{parent} is a different network from this run's configuration")
    model.set_weights(weights)
    record = parent.parent / "state.json"
    return json.loads(record.read_text()) if record.exists() else {}


def _generator_sources(config: TrainConfig, run_dir: Path):
    """(extra FAKE pictures to train on, held-out ones to monitor) from `config.generators`; (None, None)
    without. With `holdout_fold` >= 0 that fold's sources are left out (recorded in the run folder)."""
    if not config.generators:
        return None, None
    from training.generators import fingerprint, jpeg_round_trip, load_generators, source_folds

    pictures = load_generators(None if config.generators == "default" else config.generators)
    held: tuple[str, ...] = ()
    if config.holdout_fold >= 0:
        held = source_folds(pictures, config.n_folds)[config.holdout_fold]
    extra = pictures.without_sources(held)
    if config.generator_jpeg:  # as CIFAKE delivers its pictures, so the file format cannot tell the classes apart
        extra.images = jpeg_round_trip(extra.images, config.generator_jpeg)
    record = {"sources": sorted(set(extra.sources.tolist())), "pictures": len(extra), "heldout_sources": list(held),
              "heldout_pictures": len(pictures) - len(extra), "fingerprint": fingerprint(extra)}
    (run_dir / "generators.json").write_text(json.dumps(record, indent=2))
    print(f"generators: {len(extra)} pictures of {len(record['sources'])} sources as FAKE x{config.generator_repeats}"
          f"{'; held out: ' + ', '.join(held) if held else ''}", flush=True)
    return extra, (pictures.of_sources(held) if held else None)


def _epoch_index(n_cifake: int, n_extra: int, config: TrainConfig, rng: np.random.Generator) -> np.ndarray:
    """Which training pictures one epoch shows: all CIFAKE pictures (or `cifake_per_epoch` drawn afresh)
    followed by each extra generator picture `generator_repeats` times. (M,) int into the training arrays."""
    cifake = np.arange(n_cifake)
    if 0 < config.cifake_per_epoch < n_cifake:
        cifake = np.sort(rng.choice(n_cifake, config.cifake_per_epoch, replace=False))
    return np.concatenate([cifake, np.tile(np.arange(n_cifake, n_cifake + n_extra), config.generator_repeats)])


@dataclass
class TrainingData:
    """What a run learns from: CIFAKE training pictures (then any extra generator sources), validation,
    the re-delivered copies of every training picture and the teachers' targets when distilling."""
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    n_cifake: int  # the first n_cifake training pictures are CIFAKE's, the rest extra sources
    extra: object = None  # the extra generator sources (monitoring), training.generators.GeneratedPictures
    heldout: object = None  # held-out generator sources (monitoring only)
    variants: np.ndarray | None = None  # (copies, N, 32, 32, 3) re-delivered copies
    teacher: np.ndarray | None = None  # (copies + 1, N) teachers' P(FAKE)


def training_data(config: TrainConfig, run_dir: Path) -> TrainingData:
    data = load_cifake(config.data or None, config.val_fraction, config.seed)
    train_x, train_y = data.train.images, data.train.labels.astype("float32")
    if config.subset and config.subset < len(train_y):
        pick = np.random.default_rng(config.seed).permutation(len(train_y))[: config.subset]
        train_x, train_y = train_x[np.sort(pick)], train_y[np.sort(pick)]
    print(f"data: {len(train_y)} train, {len(data.val)} validation, {len(data.test)} test; {data.dedup_report}",
          flush=True)
    if config.distill > 0 and config.generators:
        raise ValueError("distillation and extra generator sources cannot be combined (no teacher targets for them)")
    n_cifake = len(train_y)
    extra, heldout = _generator_sources(config, run_dir)
    if extra is not None:
        train_x = np.concatenate([train_x, extra.images])
        train_y = np.concatenate([train_y, np.ones(len(extra), "float32")])
    result = TrainingData(train_x, train_y, data.val.images.astype("float32"), data.val.labels.astype("float32"),
                          n_cifake, extra, heldout)
    if config.redelivery and config.variants > 0:
        started = time.time()
        preset, cache = REDELIVERY_PRESETS[config.redelivery_preset], data_module.CACHE_DIR.parent / "augment"
        variants = make_variants(train_x[:n_cifake], config.variants, config.seed, preset, cache_dir=cache)
        if len(train_x) > n_cifake:  # the extra sources' copies, cached apart so every fold reuses CIFAKE's
            variants = np.concatenate([variants, make_variants(train_x[n_cifake:], config.variants, config.seed + 1,
                                                               preset, cache_dir=cache)], axis=1)
        result.variants = variants
        print(f"re-delivery variants {variants.shape} ready in {time.time() - started:.0f} s", flush=True)
    if config.distill > 0:
        started = time.time()
        result.teacher = teacher = teacher_probabilities(config.teachers, train_x, result.variants, run_dir)
        agree = float(((teacher[0] >= 0.5) == (train_y >= 0.5)).mean())
        print(f"teachers {list(config.teachers)}: P(FAKE) for {teacher.shape[0]} copies of {teacher.shape[1]} "
              f"images in {time.time() - started:.0f} s (clean copies agree with the labels {agree:.4f})", flush=True)
    return result


def model_and_state(config: TrainConfig, run_dir: Path, steps: int, resume: bool, distilled: bool):
    """(model, state): resumed from last.keras + state.json, or new (from `config.init` when set)."""
    import keras

    state = {"epoch": 0, "best_val_accuracy": -1.0, "best_epoch": 0, "history": [], "train_seconds": 0.0}
    if distilled:  # the teacher pass is part of the training time (teachers.json says how long)
        record = run_dir / "teachers.json"
        state["teacher_seconds"] = json.loads(record.read_text())["seconds"] if record.exists() else 0.0
    if resume and (run_dir / "last.keras").exists() and (run_dir / "state.json").exists():
        state = {**json.loads((run_dir / "state.json").read_text()),
                 **({"teacher_seconds": state["teacher_seconds"]} if "teacher_seconds" in state else {})}
        model = keras.models.load_model(run_dir / "last.keras")
        previous = json.loads((run_dir / "config.json").read_text())
        if previous.get("epochs") != config.epochs:  # shorten or lengthen the cosine schedule, same peak
            model.optimizer.learning_rate = _cosine(config, steps)
            print(f"schedule now spans {config.epochs} epochs (was {previous.get('epochs')})", flush=True)
        print(f"resuming after epoch {state['epoch']} (best {state['best_val_accuracy']:.4f})", flush=True)
        return model, state
    model = make_model(config, steps)
    if config.init:
        init = Path(config.init)
        spent = _start_from(model, init if init.exists() or init.is_absolute() else PROJECT_ROOT / init)
        before = float(spent.get("train_seconds", 0.0))  # a stage's time is the whole pipeline's
        state.update(train_seconds=before, parent={"path": config.init, "train_seconds": before})
        if "teacher_seconds" in spent:  # the parent's teacher pass, added to this stage's own
            state["teacher_seconds"] = state.get("teacher_seconds", 0.0) + spent["teacher_seconds"]
        print(f"starting from {config.init} ({state['train_seconds'] / 60:.1f} min of training before)", flush=True)
    return model, state


def epoch_targets(data: TrainingData, config: TrainConfig, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """One epoch's pictures (re-delivered copies, flips, shifts) and targets (soft when distilling), shuffled."""
    rng = np.random.default_rng([config.seed, epoch])
    index = _epoch_index(data.n_cifake, len(data.train_y) - data.n_cifake, config, rng)
    epoch_x, choice = epoch_images(data.train_x[index], None if data.variants is None else data.variants[:, index],
                                   rng, config.p_clean, config.max_shift, return_choice=True)
    targets = data.train_y[index]
    if data.teacher is not None:  # the teachers' P(FAKE) of the very copy shown (before flip and shift)
        soft = data.teacher[choice, index]
        targets = ((1 - config.distill) * targets + config.distill * soft).astype("float32")
    order = rng.permutation(len(index))
    return epoch_x[order].astype("float32"), targets[order]


def monitor_generators(record: dict, data: TrainingData, model, ema_model) -> None:
    """Monitoring only (nothing is chosen on them): how well the extra sources are fitted, and how much
    of the held-out generators is detected."""
    def detected(network, images):
        return float((network.predict(images.astype("float32"), verbose=0) >= 0.5).mean())

    if data.extra is not None:
        record["generators_detected"] = detected(model, data.train_x[data.n_cifake:])
    if data.heldout is not None:
        record["heldout_detected"] = detected(model, data.heldout.images)
        if ema_model is not None:
            record["ema_heldout_detected"] = detected(ema_model, data.heldout.images)


def epoch_line(record: dict, epochs: int, note: str) -> str:
    extra = f"  ema_val_acc {record['ema_val_accuracy']:.4f}" if "ema_val_accuracy" in record else ""
    if "generators_detected" in record:
        extra += f"  generators_detected {record['generators_detected']:.3f}"
    if "heldout_detected" in record:
        extra += f"  heldout_detected {record['heldout_detected']:.3f}"
        if "ema_heldout_detected" in record:
            extra += f" (ema {record['ema_heldout_detected']:.3f})"
    train_acc = "soft targets" if record["accuracy"] is None else f"{record['accuracy']:.4f}"
    return (f"epoch {record['epoch']:2d}/{epochs}  loss {record['loss']:.4f}  acc {train_acc}  "
            f"val_loss {record['val_loss']:.4f}  val_acc {record['val_accuracy']:.4f}  "
            f"val_auc {record['val_auc']:.4f}{extra}  {record['seconds']:.0f} s{note}")


def train(config: TrainConfig, resume: bool = False) -> Path:
    """Train, checkpoint every epoch (resumable) and early-stop; returns the run folder."""
    import keras

    run_dir = Path(config.run_dir) if config.run_dir else RUNS_DIR / config.model
    run_dir.mkdir(parents=True, exist_ok=True)
    data = training_data(config, run_dir)
    epoch_size = len(_epoch_index(data.n_cifake, len(data.train_y) - data.n_cifake, config, np.random.default_rng(0)))
    steps = int(np.ceil(epoch_size / config.batch_size))
    model, state = model_and_state(config, run_dir, steps, resume, data.teacher is not None)
    (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    ema, ema_model, callbacks = None, None, []
    if config.ema_decay > 0:
        saved = run_dir / "ema.weights.npz"
        ema = WeightEMA(model, config.ema_decay, WeightEMA.load(saved) if state["epoch"] and saved.exists() else None)
        ema_model = keras.models.clone_model(model)
        ema_model.compile(loss="binary_crossentropy", metrics=["accuracy", keras.metrics.AUC(name="auc")])
        callbacks = [_ema_callback(ema)]

    for epoch in range(state["epoch"] + 1, config.epochs + 1):
        epoch_x, targets = epoch_targets(data, config, epoch)
        started = time.time()
        fit = model.fit(epoch_x, targets, batch_size=config.batch_size, epochs=1, verbose=0, callbacks=callbacks)
        del epoch_x
        val_loss, val_acc, val_auc = model.evaluate(data.val_x, data.val_y, batch_size=512, verbose=0)
        # Keras' accuracy compares predictions with the targets: meaningless when they are soft
        record = {"epoch": epoch, "loss": fit.history["loss"][0],
                  "accuracy": None if data.teacher is not None else fit.history["accuracy"][0],
                  "val_loss": val_loss, "val_accuracy": val_acc, "val_auc": val_auc}
        candidates = [("raw", val_acc, model)]
        if ema is not None:
            ema_model.set_weights(ema.weights)
            ema_loss, ema_acc, ema_auc = ema_model.evaluate(data.val_x, data.val_y, batch_size=512, verbose=0)
            record.update(ema_val_loss=ema_loss, ema_val_accuracy=ema_acc, ema_val_auc=ema_auc)
            candidates.append(("ema", ema_acc, ema_model))
            ema.save(run_dir / "ema.weights.npz")
        record["seconds"] = time.time() - started
        state["history"].append(record)
        state["train_seconds"] += record["seconds"]
        monitor_generators(record, data, model, ema_model)
        kind, best_acc, best_model = max(candidates, key=lambda c: c[1])
        if config.select == "last":  # a fixed schedule: the final weights (EMA when kept) are the result
            kind, best_acc, best_model = candidates[-1]
        improved = best_acc > state["best_val_accuracy"] or config.select == "last"
        if improved:
            state.update(best_val_accuracy=best_acc, best_epoch=epoch, best_weights=kind)
            _save_model(best_model, run_dir / "best.keras")
        state["epoch"] = epoch
        _save_model(model, run_dir / "last.keras")
        _save_state(run_dir, state)
        print(epoch_line(record, config.epochs, f"  *best ({kind})" if improved else ""), flush=True)
        if epoch - state["best_epoch"] >= config.patience:
            print(f"early stop: no validation improvement for {config.patience} epochs", flush=True)
            break
    (run_dir / "history.json").write_text(json.dumps(state["history"], indent=2))
    plot_curves(state["history"], run_dir / "curves.png")
    print(f"done: best val_acc {state['best_val_accuracy']:.4f} at epoch {state['best_epoch']}; "
          f"{state['train_seconds'] / 60:.1f} min of training; {run_dir}", flush=True)
    return run_dir


def main(argv: list[str] | None = None) -> None:
    config, resume = parse_args(argv)
    train(config, resume)


if __name__ == "__main__":
    main()
