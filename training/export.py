"""Export a trained run: `python -m training.export --run runs/default [--out exported]`.

0. The served logit: the mean over the backbones (the run's, plus any `--member` models) and, with
   flip test-time augmentation (the default), over each picture and its mirror image, all inside the
   graph. The first backbone's own layers stay at the top of the graph: Grad-CAM reads its `last_conv`
   and the out-of-domain parts read its features.
1. Platt scaling fitted on validation (sigmoid(a * logit + b), computed inside the graph).
2. Out-of-domain score (`training.domain`): a logistic head on multi-layer pooled moments, fitted on
   CIFAKE training images against views of offdomain-dev's *fitting* sources (outlier exposure),
   computed inside the graph, so the ONNX model returns it without TensorFlow. Its thresholds (out of
   domain; the guard that raises the confident bar near the domain's edge) are quantiles of CIFAKE
   validation scores, chosen by grouped cross-validation over the fitting sources (never the
   evaluation sources) under a minimum confident-band coverage on validation.
3. `model.keras` (outputs: P(FAKE) calibrated, ood_score) and `model.onnx` (same outputs, dynamic
   batch), with Keras/ONNX parity asserted on real images.
4. Metrics on validation and the official test split (also without the leaked images), plots, and
   `model.json` describing all of it, with the sha256 of each file.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from inference.bands import verdict_bands
from inference.model_card import sha256_of
from training.data import PROJECT_ROOT, load_cifake
from evaluation.metrics import compute_metrics, expected_calibration_error, save_plots
from training.calibration import fit_mahalanobis, fit_platt, mahalanobis_numpy
from training.graph import (BACKBONE_PREFIX, OODCombination, build_export_model, run_onnx, save_model_files,
                            served_logit)

@dataclass(frozen=True)
class ExportConfig:
    threshold: float = 0.5  # on the calibrated P(FAKE)
    leaning_from: float = 0.7  # confidence below this: "uncertain"
    confident_from: float = 0.9  # confidence at or above this (and in domain): "confident"
    ood_fit_images: int = 10000  # CIFAKE training images (each also re-delivered once) for the domain head
    domain_views: int = 48  # views (whole + crops) per offdomain-dev fitting picture
    domain_regularisation: float = 0.1  # inverse L2 strength of the domain head's logistic regression
    domain_folds: int = 4  # grouped cross-validation folds over the fitting sources
    min_confident_coverage: float = 0.86  # on CIFAKE validation, when choosing the rule
    max_confident_error: float = 0.012  # on CIFAKE validation, when choosing the rule
    offdomain: str = ""  # offdomain-dev folder ("" = ../shared/datasets/offdomain-dev)
    distance_quantile: float = 0.99  # Mahalanobis part: out of domain above this quantile of validation
    parity_images: int = 2000  # real test images checked Keras vs ONNX
    parity_tolerance: float = 1e-4
    flip_tta: bool = True  # the served logit also averages each picture's mirror image
    members: tuple[str, ...] = ()  # further Keras backbones (best.keras or an exported model.keras) averaged in
    evaluate_test: bool = True  # False: never touch the test split (leave-generators-out folds, recipe choice)


def fit_domain(base, data, val: dict, platt: tuple[float, float], config: ExportConfig, logit=None) -> tuple:
    """Fit the out-of-domain head and choose its rule (see module docstring) -> (head, decision, report).

    `val`: `training.features.extract` of the validation images (logit, features, moments); `logit`:
    the served logit tensor (`served_logit`), default the base's own."""
    from training import domain
    from training.features import extract

    offdomain = Path(config.offdomain) if config.offdomain else domain.OFFDOMAIN_DIR
    pictures = [p for p in domain.list_offdomain(offdomain) if p.part == "fit"]
    views, owner = domain.views_of(pictures, config.domain_views, seed=0)
    in_images = domain.in_domain_images(data.train.images, config.ood_fit_images, seed=0)
    in_m = extract(base, in_images)["moments"]
    view_f, val_f = extract(base, views, logit=logit), val
    head = domain.fit_domain_head(in_m, view_f["moments"], config.domain_regularisation)
    sources = np.array([pictures[i].source for i in owner])
    fit_pct = domain.cross_fitted_percentiles(in_m, view_f["moments"], sources, val_f["moments"],
                                              config.domain_folds, config.domain_regularisation, seed=0)
    val_scores = head.logits(val_f["moments"])
    val_pct = domain.validation_percentiles(val_scores, val_scores)
    whole = np.r_[True, owner[1:] != owner[:-1]]  # the whole picture, as a user uploads it
    calibrate = lambda logit: 1 / (1 + np.exp(-(platt[0] * logit + platt[1])))  # noqa: E731
    base_decision = {"threshold": config.threshold, "leaning_from": config.leaning_from,
                     "confident_from": config.confident_from}
    fit_fake = np.array([pictures[i].label == "FAKE" for i in owner])
    rule, table = domain.choose_rule(base_decision, calibrate(val_f["logit"]), data.val.labels, val_pct,
                                     calibrate(view_f["logit"][whole]), fit_pct[whole], fit_fake[whole],
                                     config.min_confident_coverage, config.max_confident_error)
    decision = domain.decision_for(rule, val_scores, base_decision)
    report = {"method": "logistic head on pooled moments (outlier exposure), see training/domain.py",
              "fit_sources": sorted({p.source for p in pictures}), "fit_pictures": len(pictures),
              "fit_views": int(len(views)), "in_domain_images": int(len(in_images)),
              "rule_selection": table, "chosen_rule": rule.__dict__}
    return head, decision, report


def combine_with_distance(base, data, val: dict, head, decision: dict, config: ExportConfig) -> tuple:
    """Add the Mahalanobis part (threshold: a high quantile of validation distances) to the domain head's
    rule; thresholds in the returned decision are in the combined score's units (out of domain above 0)."""
    from training.features import extract

    fit_idx = np.random.default_rng(1).permutation(len(data.train))[: config.ood_fit_images]
    train = extract(base, data.train.images[fit_idx])
    means, whitening = fit_mahalanobis(train["features"], data.train.labels[fit_idx])
    val_distance = mahalanobis_numpy(val["features"], means, whitening)
    val_domain = head.logits(val["moments"])
    combination = OODCombination(decision["ood_threshold"], float(val_domain.std()) + 1e-6, means, whitening,
                                 float(np.quantile(val_distance, config.distance_quantile)),
                                 float(val_distance.std()) + 1e-6)
    decision = dict(decision, ood_threshold=0.0, domain_threshold=combination.domain_threshold)
    if decision.get("guard_threshold") is not None:
        decision["guard_threshold"] = (decision["guard_threshold"] - combination.domain_threshold) / combination.domain_scale
    return combination, decision


def file_entries(folder: Path) -> dict:
    return {name: {"path": name, "sha256": sha256_of(folder / name), "bytes": (folder / name).stat().st_size}
            for name in ("model.onnx", "model.keras")}


def band_table(labels: np.ndarray, p_fake: np.ndarray, ood: np.ndarray, decision: dict) -> dict:
    """Share of images and error rate of the likely label in each verdict band (the classifier's rule)."""
    correct = (p_fake >= decision["threshold"]).astype(int) == labels
    bands, out = verdict_bands(p_fake, ood, decision)
    table = {}
    for band in ("confident", "leaning", "uncertain"):
        mask = bands == band
        table[band] = {"share": float(mask.mean()), "n": int(mask.sum()),
                       "error_rate": float(1 - correct[mask].mean()) if mask.any() else None}
    table["out_of_domain"] = {"share": float(out.mean()), "n": int(out.sum())}
    return table


def architecture(base, members: list = (), flip: bool = False) -> dict:
    """The first backbone's size and layers; with an ensemble or flips, also the whole served graph's."""
    from training.model import count_flops

    passes = 2 if flip else 1
    backbones = [base, *members]
    return {"params": int(base.count_params()), "mflops": round(count_flops(base) / 1e6, 1),
            "layers": [layer.name for layer in base.layers],
            "served": {"backbones": len(backbones), "flip_tta": flip,
                       "params": int(sum(m.count_params() for m in backbones)),
                       "mflops": round(passes * sum(count_flops(m) for m in backbones) / 1e6, 1)}}


def library_versions() -> dict:
    import keras
    import onnx
    import onnxruntime
    import PIL
    import sklearn
    import tensorflow as tf

    return {"python": platform.python_version(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "numpy": np.__version__,
            "pillow": PIL.__version__, "scikit-learn": sklearn.__version__}


@dataclass
class ServedGraph:
    """Steps 0-2: the graph that is served, with what was fitted on validation on the way."""
    model: object  # keras.Model: pixels -> (P(FAKE) calibrated, ood_score)
    val: dict  # training.features.extract(...) of the validation images (logit = the served one)
    platt: tuple[float, float]
    decision: dict
    domain_report: dict
    passes: int


def fit_served_graph(base, members: list, data, config: ExportConfig) -> ServedGraph:
    from training.features import extract

    logit, passes = served_logit(base, members, config.flip_tta)
    val = extract(base, data.val.images, logit=logit)
    platt = fit_platt(val["logit"], data.val.labels)
    domain_head, decision, domain_report = fit_domain(base, data, val, platt, config, logit)
    combination, decision = combine_with_distance(base, data, val, domain_head, decision, config)
    domain_report["combination"] = {"domain_threshold": combination.domain_threshold,
                                    "domain_scale": combination.domain_scale,
                                    "distance_quantile_of_validation": config.distance_quantile,
                                    "distance_threshold": combination.distance_threshold,
                                    "distance_scale": combination.distance_scale}
    model = build_export_model(base, platt, domain_head, combination, logit)
    return ServedGraph(model, val, platt, decision, domain_report, passes)


def save_and_measure(graph: ServedGraph, data, staging: Path, run_dir: Path, config: ExportConfig) -> dict:
    """Steps 3-4 in `staging`: the model files with their parity check, then metrics, bands and plots of
    the saved ONNX file. Without the test split (a fold of a recipe search) every figure is validation's."""
    test = data.test if config.evaluate_test else data.val
    keep = ~data.leaked_test_mask if config.evaluate_test else np.ones(len(data.val), bool)
    parity_idx = np.random.default_rng(0).permutation(len(test))[: config.parity_images]
    parity = save_model_files(graph.model, staging, test.images[parity_idx], config.parity_tolerance)
    parity["source"] = "official test split" if config.evaluate_test else "validation split"
    val_p, val_ood = run_onnx(staging / "model.onnx", data.val.images)
    test_p, test_ood = (val_p, val_ood) if not config.evaluate_test else run_onnx(staging / "model.onnx", test.images)
    metrics = {
        "validation": compute_metrics(data.val.labels, val_p, config.threshold),
        "test": compute_metrics(test.labels, test_p, config.threshold),
        "test_without_leaked": compute_metrics(test.labels[keep], test_p[keep], config.threshold),
    }
    if not config.evaluate_test:
        metrics["test_split_not_evaluated"] = "test and test_without_leaked repeat validation"
    metrics["test"]["ood_flagged_share"] = float((test_ood > graph.decision["ood_threshold"]).mean())
    report_dir = staging / "report"
    plots = save_plots(test.labels, test_p, report_dir, config.threshold,
                       "(test)" if config.evaluate_test else "(validation)")
    if (run_dir / "curves.png").exists():
        shutil.copy(run_dir / "curves.png", report_dir / "training_curves.png")
        plots["training_curves"] = str(report_dir / "training_curves.png")
    return {"parity": parity, "metrics": metrics,
            "bands": {"test": band_table(test.labels, test_p, test_ood, graph.decision),
                      "validation": band_table(data.val.labels, val_p, val_ood, graph.decision)},
            "plots": {k: str(Path(v).relative_to(staging)) for k, v in plots.items()},
            "validation_ece_before": expected_calibration_error(data.val.labels, 1 / (1 + np.exp(-graph.val["logit"])))}


def export(run_dir: Path, out_dir: Path, config: ExportConfig = ExportConfig(), data_path: str | None = None,
           version: int = 1, parent: int | None = None, provenance: dict | None = None) -> dict:
    """Steps 0-4 of the module docstring; `out_dir` is replaced whole at the end, or left as it was."""
    import keras

    from training.card import model_card

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    train_config = json.loads((run_dir / "config.json").read_text())
    state = json.loads((run_dir / "state.json").read_text())
    data = load_cifake(data_path or train_config.get("data") or None, train_config["val_fraction"], train_config["seed"])
    base = keras.models.load_model(run_dir / "best.keras")
    members = [keras.models.load_model(path) for path in config.members]
    graph = fit_served_graph(base, members, data, config)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:
        staging = Path(tmp)
        measured = save_and_measure(graph, data, staging, run_dir, config)
        metadata = model_card(
            version=version, parent=parent, run_dir=run_dir, train_config=train_config, state=state,
            architecture=architecture(base, members, config.flip_tta), graph=graph, measured=measured,
            config=config, data=data, files=file_entries(staging), versions=library_versions(),
            provenance=provenance or {"run": str(run_dir)})
        (staging / "model.json").write_text(json.dumps(metadata, indent=2))
        replace_dir(staging, out_dir)
    return metadata


def replace_dir(staging: Path, out_dir: Path) -> None:
    """Move the staged files into out_dir, model.json last, so a reader never sees a half export."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for item in staging.iterdir():
        if item.name == "model.json":
            continue
        target = out_dir / item.name
        if target.is_dir():
            shutil.rmtree(target)
        shutil.move(str(item), str(target))
    shutil.move(str(staging / "model.json"), str(out_dir / "model.json"))


def run_dir_from_export(export_dir: Path, run_dir: Path) -> tuple[Path, list[str]]:
    """Turn an exported model back into a run folder (best.keras, config.json, state.json) plus one
    member{k}.keras per further backbone of its ensemble, so shipped backbones can be re-exported with
    new heads and rules without retraining them. Returns (run folder, member paths)."""
    import keras
    from keras import layers

    from training.model import LOGIT_LAYER, OUTPUT_LAYER

    meta = json.loads((export_dir / "model.json").read_text())
    exported = keras.models.load_model(export_dir / meta["files"]["model.keras"]["path"])
    logit = exported.get_layer(LOGIT_LAYER).output
    base = keras.Model(exported.input, layers.Activation("sigmoid", name=OUTPUT_LAYER, dtype="float32")(logit),
                       name=meta.get("model_name", "default"))
    run_dir.mkdir(parents=True, exist_ok=True)
    base.save(run_dir / "best.keras")
    members = []
    for layer in exported.layers:  # backbone1, backbone2, ... (backbone0_mirror is rebuilt from the base)
        suffix = layer.name.removeprefix(BACKBONE_PREFIX)
        if layer.name.startswith(BACKBONE_PREFIX) and suffix.isdigit() and int(suffix) > 0:
            members.append(str(run_dir / f"member{suffix}.keras"))
            layer.save(members[-1])
    training = meta["training"]
    (run_dir / "config.json").write_text(json.dumps(training["config"], indent=2))
    (run_dir / "state.json").write_text(json.dumps({
        "epoch": training["epochs_run"], "best_epoch": training["best_epoch"],
        "best_val_accuracy": training["best_val_accuracy_uncalibrated"], "history": training["history"],
        "train_seconds": training["train_minutes"] * 60,
        "teacher_seconds": training.get("teacher_minutes", 0.0) * 60}, indent=2))
    report = export_dir / meta.get("plots", {}).get("training_curves", "report/training_curves.png")
    if report.exists():
        shutil.copy(report, run_dir / "curves.png")
    return run_dir, members


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default=str(PROJECT_ROOT / "runs" / "default"), help="training run folder")
    parser.add_argument("--from-export", default="",
                        help="re-export the backbone of this exported folder (instead of --run) with today's heads")
    parser.add_argument("--out", default=str(PROJECT_ROOT / "exported"), help="output folder")
    parser.add_argument("--data", default=None, help="CIFAKE zip or folder (default: the run's)")
    parser.add_argument("--parity-images", type=int, default=ExportConfig.parity_images)
    parser.add_argument("--offdomain", default="", help="offdomain-dev folder (default ../shared/datasets/offdomain-dev)")
    parser.add_argument("--member", action="append", default=[],
                        help="another backbone to average in (a best.keras or exported model.keras); repeatable")
    parser.add_argument("--no-flip-tta", action="store_true", help="serve the unmirrored pass only")
    parser.add_argument("--no-test", action="store_true",
                        help="never read the test split (recipe search); test figures repeat validation's")
    args = parser.parse_args(argv)
    started = time.time()
    config = ExportConfig(parity_images=args.parity_images, offdomain=args.offdomain, flip_tta=not args.no_flip_tta,
                          members=tuple(args.member), evaluate_test=not args.no_test)
    if args.from_export:
        with tempfile.TemporaryDirectory() as tmp:
            run_dir, members = run_dir_from_export(Path(args.from_export), Path(tmp) / "run")
            config = replace(config, members=tuple(members) + config.members)
            provenance = {"backbone_from_export": args.from_export,
                          "backbone_created": json.loads((Path(args.from_export) / "model.json").read_text())["created"]}
            metadata = export(run_dir, Path(args.out), config, args.data, provenance=provenance)
    else:
        metadata = export(Path(args.run), Path(args.out), config, args.data)
    test = metadata["metrics"]["test"]
    print(json.dumps({"test_accuracy": test["accuracy"], "test_auc": test["roc_auc"],
                      "test_without_leaked_accuracy": metadata["metrics"]["test_without_leaked"]["accuracy"],
                      "platt_a_b": [metadata["calibration"]["a"], metadata["calibration"]["b"]],
                      "parity_max_abs_diff": metadata["parity"]["max_abs_diff_p_fake"],
                      "onnx_bytes": metadata["files"]["model.onnx"]["bytes"],
                      "seconds": round(time.time() - started)}, indent=2))


if __name__ == "__main__":
    main()
