"""Evaluate an exported model (through ONNX Runtime, as it ships) on any split, zip or folder.

    python -m training.evaluate                                   # exported/ on the official test split
    python -m training.evaluate --exclude-leaked                  # ... without the 378 leaked images
    python -m training.evaluate --split val                       # the validation split (model choice)
    python -m training.evaluate --labelled my_pictures.zip        # any REAL/ FAKE/ zip or folder
    python -m training.evaluate --model-dir runs/seed/export      # another export

Prints accuracy, precision, recall, F1 (FAKE positive), ROC-AUC, confusion matrix and ECE, and writes
`report.json`, `confusion_matrix.png`, `roc.png` and `reliability.png` into `--out`.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from evaluation.labelled import load_labelled
from evaluation.metrics import compute_metrics, save_plots
from inference.classifier import Classifier
from inference.model_card import EXPORTED_DIR
from training.data import PROJECT_ROOT, load_cifake


def predict_split(classifier: Classifier, images: np.ndarray, batch: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(N, 32, 32, 3) uint8 -> (P(FAKE) (N,), ood_score (N,))."""
    parts = [classifier.run(images[i:i + batch]) for i in range(0, len(images), batch)]
    p_fake = np.concatenate([p for p, _ in parts])
    ood = np.concatenate([o for _, o in parts]) if parts and parts[0][1] is not None else np.zeros_like(p_fake)
    return p_fake, ood


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=str(EXPORTED_DIR), help="folder with model.onnx and model.json")
    parser.add_argument("--data", default=None, help="CIFAKE zip or folder (default ../shared/datasets/cifake)")
    parser.add_argument("--split", choices=("test", "val", "train"), default="test")
    parser.add_argument("--exclude-leaked", action="store_true", help="drop test images that also occur in train")
    parser.add_argument("--labelled", default=None, help="evaluate this REAL/ FAKE/ zip or folder instead")
    parser.add_argument("--out", default=str(PROJECT_ROOT / "runs" / "evaluation"), help="report folder")
    args = parser.parse_args(argv)

    classifier = Classifier(args.model_dir)
    if args.labelled:
        split, description = load_labelled(args.labelled), f"labelled data {args.labelled}"
    else:
        config = classifier.metadata.get("training", {}).get("config", {})
        data = load_cifake(args.data, config.get("val_fraction", 0.1), config.get("seed", 0))
        split = {"test": data.test, "val": data.val, "train": data.train}[args.split]
        description = f"CIFAKE {args.split} split"
        if args.split == "test" and args.exclude_leaked:
            split = split.subset(np.flatnonzero(~data.leaked_test_mask))
            description += " without the images leaked from train"
    p_fake, ood = predict_split(classifier, split.images)
    metrics = compute_metrics(split.labels, p_fake, classifier.threshold)
    if classifier.ood_threshold is not None:
        metrics["out_of_domain_share"] = float((ood > classifier.ood_threshold).mean())
    metrics["data"] = description
    metrics["model"] = {"dir": str(args.model_dir), "version": classifier.metadata.get("version"),
                        "name": classifier.metadata.get("model_name")}
    out = Path(args.out)
    metrics["plots"] = save_plots(split.labels, p_fake, out, classifier.threshold, f"({description})")
    (out / "report.json").write_text(json.dumps(metrics, indent=2))
    cm = metrics["confusion_matrix"]
    print(f"{description}: n={metrics['n']}  accuracy {metrics['accuracy'] * 100:.2f} %  precision "
          f"{metrics['precision']:.4f}  recall {metrics['recall']:.4f}  F1 {metrics['f1']:.4f}  ROC-AUC "
          f"{metrics['roc_auc']:.4f}  ECE {metrics['ece']:.4f}\nconfusion (rows true REAL/FAKE): "
          f"[[{cm['tn']} {cm['fp']}] [{cm['fn']} {cm['tp']}]]  report: {out / 'report.json'}")
    return metrics


if __name__ == "__main__":
    main()
