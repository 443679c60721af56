"""Off-domain behaviour through the product's own path: `python -m bench.offdomain [--model-dir DIR]`.

Every picture goes through `Classifier.predict` (the app's decoding, resize and ONNX model, verdict
bands from model.json). For offdomain-dev (`../shared/datasets/offdomain-dev`, split by source into the
parts `training.domain` fits on and the parts it never sees) and for extra labelled folders
(`--folder REAL:path/to/photos --folder FAKE:path/to/generated`), per source and per set:

- right: the verdict shown is the true class; wrong: it is the other class;
- confidently wrong: wrong in the confident band (the figure a user trusts most);
- uncertain: the verdict shown is "Uncertain" (leaning low or out of domain).

Also the confident band's coverage and error on the CIFAKE test split (`--cifake`), and the photos
bundled with scikit-image / scikit-learn (`bench.real_photos`: not in offdomain-dev, nothing fitted on
them). Writes `bench/results/offdomain.json` (or `--out`) and prints Markdown tables.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path


from inference.classifier import Classifier
from inference.model_card import EXPORTED_DIR

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SHARED = ROOT.parent / "shared" / "datasets"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def summarise(true_labels: list[str], predictions: list) -> dict:
    """Shares of right / wrong / confidently wrong / uncertain verdicts for pictures of known class."""
    n = len(predictions)
    if n == 0:
        return {"n": 0}
    right = sum(p.label == t for t, p in zip(true_labels, predictions))
    uncertain = sum(p.label == "UNCERTAIN" for p in predictions)
    confident_wrong = sum(p.band == "confident" and p.label != t for t, p in zip(true_labels, predictions))
    return {"n": n, "right": right / n, "wrong": (n - right - uncertain) / n,
            "confidently_wrong": confident_wrong / n, "uncertain": uncertain / n,
            "out_of_domain": sum(p.out_of_domain for p in predictions) / n}


def classify_items(clf: Classifier, items: list[tuple[str, str, str, Path]]) -> dict:
    """items: (set, part, source, path) with set "real photos" / "generated" -> nested summaries."""
    groups: dict[tuple, list] = defaultdict(list)
    for set_name, part, source, path in items:
        truth = "REAL" if set_name == "real photos" else "FAKE"
        try:
            prediction = clf.predict(path)
        except ValueError:
            continue  # unreadable: not a verdict (the app shows the error)
        for key in ((set_name, part, source), (set_name, part, "all"), (set_name, "all", "all")):
            groups[key].append((truth, prediction))
    out: dict = {}
    for (set_name, part, source), pairs in sorted(groups.items()):
        truths, predictions = zip(*pairs)
        out.setdefault(set_name, {}).setdefault(part, {})[source] = summarise(list(truths), list(predictions))
    return out


def offdomain_items(root: Path) -> list[tuple[str, str, str, Path]]:
    from training.domain import list_offdomain  # reads manifest.csv; the split is defined there

    return [("real photos" if p.label == "REAL" else "generated", p.part, p.source, p.path)
            for p in list_offdomain(root)]


def folder_items(spec: str) -> list[tuple[str, str, str, Path]]:
    label, _, folder = spec.partition(":")
    if label.upper() not in ("REAL", "FAKE") or not folder:
        raise SystemExit(f"--folder must be REAL:path or FAKE:path; got {spec!r}.")
    set_name = "real photos" if label.upper() == "REAL" else "generated"
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return [(set_name, f"folder {Path(folder).name}", p.parent.name, p) for p in files]


def cifake_bands(clf: Classifier, data: Path) -> dict:
    """Coverage and error of each band on the official CIFAKE test split (through the ONNX model)."""
    from inference.bands import verdict_bands
    from training.data import read_split

    test = read_split(data, "test")[0]
    p_fake, ood = clf.run(test.images)
    bands, out = verdict_bands(p_fake, ood, clf.decision)
    correct = (p_fake >= clf.threshold).astype(int) == test.labels
    table = {"n": int(len(p_fake)), "accuracy": float(correct.mean()), "out_of_domain": float(out.mean())}
    for band in ("confident", "leaning", "uncertain"):
        mask = bands == band
        table[band] = {"coverage": float(mask.mean()),
                       "error": float(1 - correct[mask].mean()) if mask.any() else None}
    return table


def bundled_photos(clf: Classifier) -> dict:
    from bench.real_photos import build_set

    out = {}
    for group, images in build_set().items():
        out[group] = summarise(["REAL"] * len(images), [clf.predict(image) for image in images])
    return out


def markdown(result: dict) -> str:
    lines = ["| set | part | source | n | right | wrong | confidently wrong | uncertain | out of domain |",
             "|---|---|---|---|---|---|---|---|---|"]
    for set_name, parts in result["offdomain"].items():
        for part, sources in parts.items():
            for source, row in sources.items():
                if source != "all" and not result.get("per_source"):
                    continue
                name = f"**{source}**" if source == "all" else source
                lines.append(f"| {set_name} | {part} | {name} | {row['n']} | {row['right'] * 100:.1f} % | "
                             f"{row['wrong'] * 100:.1f} % | {row['confidently_wrong'] * 100:.1f} % | "
                             f"{row['uncertain'] * 100:.1f} % | {row['out_of_domain'] * 100:.1f} % |")
    for group, row in result.get("bundled_photos", {}).items():
        lines.append(f"| real photos | bundled (skimage/sklearn) | {group} | {row['n']} | {row['right'] * 100:.1f} % "
                     f"| {row['wrong'] * 100:.1f} % | {row['confidently_wrong'] * 100:.1f} % | "
                     f"{row['uncertain'] * 100:.1f} % | {row['out_of_domain'] * 100:.1f} % |")
    if "cifake_test" in result:
        c = result["cifake_test"]
        lines += ["", "| CIFAKE test band | coverage | error |", "|---|---|---|"]
        for band in ("confident", "leaning", "uncertain"):
            err = "—" if c[band]["error"] is None else f"{c[band]['error'] * 100:.2f} %"
            lines.append(f"| {band} | {c[band]['coverage'] * 100:.1f} % | {err} |")
        lines.append(f"\nCIFAKE test accuracy {c['accuracy'] * 100:.2f} %, flagged out of domain "
                     f"{c['out_of_domain'] * 100:.2f} %.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=str(EXPORTED_DIR), help="exported model folder")
    parser.add_argument("--offdomain", default=str(SHARED / "offdomain-dev"), help="offdomain-dev folder")
    parser.add_argument("--folder", action="append", default=[], help="extra labelled folder, REAL:path or FAKE:path")
    parser.add_argument("--cifake", default=str(SHARED / "cifake"), help="CIFAKE folder ('' to skip)")
    parser.add_argument("--no-bundled", action="store_true", help="skip the scikit-image/scikit-learn photos")
    parser.add_argument("--per-source", action="store_true", help="one row per source in the table")
    parser.add_argument("--out", default=str(RESULTS / "offdomain.json"), help="results JSON")
    args = parser.parse_args(argv)

    clf = Classifier(args.model_dir)
    items = offdomain_items(Path(args.offdomain)) if Path(args.offdomain).exists() else []
    for spec in args.folder:
        items += folder_items(spec)
    result = {"model_version": clf.metadata.get("version"), "model_dir": str(args.model_dir),
              "per_source": args.per_source, "offdomain": classify_items(clf, items)}
    if not args.no_bundled:
        result["bundled_photos"] = bundled_photos(clf)
    if args.cifake and (Path(args.cifake) / "test.zip").exists():
        result["cifake_test"] = cifake_bands(clf, Path(args.cifake))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(markdown(result))


if __name__ == "__main__":
    main()
