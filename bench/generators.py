"""Other CIFAR-size generators, leave-generators-out: `python -m bench.generators [--recipe v3]`.

Chooses and checks a recipe that trains on extra generator sources (issue 21) without ever measuring a
generator the model trained on: `cifar-generators-dev`'s sources are split into folds by *repository*
(`training.generators.source_folds`); for each fold a model is trained with that fold left out
(`python -m training.train --recipe R --holdout-fold k`), exported without the test split
(`python -m training.export --no-test`) and asked, through the product's own path (`Classifier.predict`:
decoding, resize, ONNX graph, verdict bands), about the held-out generators' pictures and the CIFAKE
validation split. Folds are resumable: a fold whose export exists is only evaluated again.

Reports per generator and per fold: detected (the verdict shown is "AI-generated"), confidently wrong
(the verdict shown is "Real photograph" in the confident band), uncertain; and on CIFAKE validation the
REAL pictures called AI-generated (false positives), accuracy and the confident band's coverage and error.
`--model-dir DIR` adds rows for an exported model evaluated on the same folds without retraining (the
shipped v2 is the baseline). Writes `bench/results/generators_<recipe>.json` and prints Markdown.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from bench.offdomain import summarise
from inference.classifier import Classifier

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def run_fold(recipe: str, fold: int, n_folds: int, work: Path, extra: list[str]) -> Path:
    """Train (or resume) and export one leave-generators-out fold; returns its export folder."""
    run_dir, export_dir = work / f"fold{fold}", work / f"fold{fold}" / "export"
    if (export_dir / "model.json").exists():
        return export_dir
    command = [sys.executable, "-m", "training.train", "--recipe", recipe, "--holdout-fold", str(fold),
               "--n-folds", str(n_folds), "--run-dir", str(run_dir), *extra]
    if (run_dir / "state.json").exists():
        command.append("--resume")
    if not (run_dir / "history.json").exists():  # history.json is written when the run ends
        subprocess.run(command, check=True, cwd=ROOT)
    subprocess.run([sys.executable, "-m", "training.export", "--run", str(run_dir), "--out", str(export_dir),
                    "--no-test"], check=True, cwd=ROOT)
    return export_dir


def evaluate_generators(clf: Classifier, root: Path, names: list[str], generators: list[str]) -> dict:
    """Per generator and over all: detection / confidently wrong / uncertain through `Classifier.predict`."""
    by_generator: dict[str, list] = defaultdict(list)
    for name, generator in zip(names, generators):
        by_generator[generator].append(clf.predict(root / name))
    out = {g: summarise(["FAKE"] * len(p), p) for g, p in sorted(by_generator.items())}
    everything = [p for ps in by_generator.values() for p in ps]
    out["all"] = summarise(["FAKE"] * len(everything), everything)
    return out


def evaluate_cifake(clf: Classifier, images: np.ndarray, labels: np.ndarray) -> dict:
    """False positives on REAL, accuracy, and the confident band on a CIFAKE split (validation here)."""
    predictions = clf.predict_pixels(images)
    shown = np.array([p.label for p in predictions])
    likely = np.array([p.likely_label == "FAKE" for p in predictions])
    confident = np.array([p.band == "confident" for p in predictions])
    correct = likely == (labels == 1)
    real = labels == 0
    return {"n": int(len(labels)), "accuracy": float(correct.mean()),
            "real_called_fake": float((shown[real] == "FAKE").mean()),
            "real_likely_fake": float(likely[real].mean()),
            "confident_coverage": float(confident.mean()),
            "confident_error": float(1 - correct[confident].mean()) if confident.any() else None}


def row_mean(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


def markdown(result: dict) -> str:
    lines = ["| model | fold | held-out sources | n | detected | confidently wrong | uncertain |",
             "|---|---|---|---|---|---|---|"]
    for model, folds in result["models"].items():
        for fold in folds:
            row = fold["generators"]["all"]
            lines.append(f"| {model} | {fold['fold']} | {', '.join(fold['sources'])} | {row['n']} | "
                         f"{row['right'] * 100:.1f} % | {row['confidently_wrong'] * 100:.1f} % | "
                         f"{row['uncertain'] * 100:.1f} % |")
        rows = [f["generators"]["all"] for f in folds]
        lines.append(f"| **{model}** | **mean** | | | **{row_mean(rows, 'right') * 100:.1f} %** | "
                     f"**{row_mean(rows, 'confidently_wrong') * 100:.1f} %** | {row_mean(rows, 'uncertain') * 100:.1f} % |")
    lines += ["", "| model | generator | n | detected | confidently wrong | uncertain |", "|---|---|---|---|---|---|"]
    for model, folds in result["models"].items():
        for fold in folds:
            for generator, row in fold["generators"].items():
                if generator != "all":
                    lines.append(f"| {model} | {generator} | {row['n']} | {row['right'] * 100:.1f} % | "
                                 f"{row['confidently_wrong'] * 100:.1f} % | {row['uncertain'] * 100:.1f} % |")
    lines += ["", "| model | fold | CIFAKE val accuracy | REAL called AI-generated | confident coverage | "
              "confident error |", "|---|---|---|---|---|---|"]
    for model, folds in result["models"].items():
        for fold in folds:
            c = fold["cifake_validation"]
            lines.append(f"| {model} | {fold['fold']} | {c['accuracy'] * 100:.2f} % | {c['real_called_fake'] * 100:.2f} % "
                         f"| {c['confident_coverage'] * 100:.1f} % | {c['confident_error'] * 100:.2f} % |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="v3", help="training recipe run once per fold ('' = evaluate only)")
    parser.add_argument("--folds", type=int, default=4, help="source folds")
    parser.add_argument("--only-fold", type=int, action="append", default=[], help="run just these folds")
    parser.add_argument("--work", default="", help="fold runs folder (default runs/lgo-<recipe>)")
    parser.add_argument("--model-dir", action="append", default=[],
                        help="an exported model evaluated on the same folds without retraining (repeatable)")
    parser.add_argument("--generators", default="", help="cifar-generators-dev folder (default ../shared/...)")
    parser.add_argument("--train-arg", action="append", default=[], help="extra argument for training.train")
    parser.add_argument("--out", default="", help="results JSON (default bench/results/generators_<recipe>.json)")
    args = parser.parse_args(argv)

    from training.data import load_cifake
    from training.generators import load_generators, resolve_generators_dir, source_folds

    root = resolve_generators_dir(args.generators or None)
    pictures = load_generators(root)
    folds = source_folds(pictures, args.folds)
    chosen = args.only_fold or list(range(args.folds))
    val = load_cifake().val
    work = Path(args.work) if args.work else ROOT / "runs" / f"lgo-{args.recipe or 'none'}"
    models: dict[str, Path | None] = {Path(d).name if Path(d).name != "exported" else "shipped": Path(d)
                                      for d in args.model_dir}
    if args.recipe:
        models[f"{args.recipe} (fold held out)"] = None
    result = {"folds": [list(f) for f in folds], "models": {}}
    for label, model_dir in models.items():
        cifake = None  # an exported model given with --model-dir answers validation alike in every fold
        for k in chosen:
            export_dir = model_dir or run_fold(args.recipe, k, args.folds, work, args.train_arg)
            clf = Classifier(export_dir)
            held = pictures.of_sources(folds[k])
            if cifake is None or model_dir is None:
                cifake = evaluate_cifake(clf, val.images, val.labels)
            result["models"].setdefault(label, []).append({
                "fold": k, "sources": list(folds[k]), "model_dir": str(export_dir),
                "generators": evaluate_generators(clf, root, held.names.tolist(), held.generators.tolist()),
                "cifake_validation": cifake})
            print(f"{label} fold {k}: detected {result['models'][label][-1]['generators']['all']['right']:.3f}",
                  flush=True)
    out = Path(args.out) if args.out else RESULTS / f"generators_{args.recipe or 'baseline'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(markdown(result))


if __name__ == "__main__":
    main()
