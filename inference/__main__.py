"""Classify pictures from the command line: `python -m inference PATH [PATH ...]`.

PATH may be an image, a folder (searched recursively) or a zip. Prints a table (or `--json` lines) on
stdout; `--csv FILE` writes the results; `--heatmaps DIR` also saves Grad-CAM overlays (this loads
TensorFlow; plain classification never does).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import zipfile
from pathlib import Path
from typing import Iterator

from inference.archive import IMAGE_SUFFIXES, ZipLimitError, ZipLimits, iter_zip_pictures, picture_entries
from inference.classifier import result_row
from inference.csvsafe import spreadsheet_safe
from inference.model_card import EXPORTED_DIR

# Zips are streamed entry by entry; limits count the bytes actually unpacked (forged sizes do not help).
CLI_ZIP_LIMITS = ZipLimits(max_entries=200_000, max_total_bytes=1 << 40)


def iter_sources(paths: list[str]) -> Iterator[tuple[str, object]]:
    """Yield (display name, path or bytes) for every picture under `paths`, in a stable order."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for file in sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
                yield str(file), file
        elif path.is_file() and path.suffix.lower() == ".zip" and zipfile.is_zipfile(path):
            for name, data in iter_zip_pictures(path, CLI_ZIP_LIMITS, str(path)):
                yield f"{path}:{name}", data
        else:
            yield str(path), path  # a missing or unreadable file is reported as an error row


def count_sources(paths: list[str]) -> int:
    """How many pictures `iter_sources` will yield, from the zips' directories (nothing unpacked)."""
    total = 0
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            total += sum(1 for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.is_file() and path.suffix.lower() == ".zip" and zipfile.is_zipfile(path):
            try:
                with zipfile.ZipFile(path) as archive:
                    total += len(picture_entries(archive, CLI_ZIP_LIMITS, str(path)))
            except (ZipLimitError, zipfile.BadZipFile):
                pass  # reported when the zip is read
        else:
            total += 1
    return total


def _progress(done: int, total: int) -> None:
    if total >= 20 and sys.stderr.isatty() or total >= 200:
        width = 30
        filled = int(width * done / max(1, total))
        print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True)
        if done == total:
            print(file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="images, folders or zips")
    parser.add_argument("--model-dir", default=str(EXPORTED_DIR), help="folder with model.onnx and model.json")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    parser.add_argument("--csv", metavar="FILE", help="also write the results as CSV")
    parser.add_argument("--heatmaps", metavar="DIR", help="save Grad-CAM overlays here (loads TensorFlow)")
    parser.add_argument("--method", choices=("gradcam", "gradcam++", "hirescam"), default="gradcam",
                        help="CAM method for --heatmaps")
    args = parser.parse_args(argv)

    from inference.classifier import Classifier

    try:
        classifier = Classifier(args.model_dir)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    cam = None
    if args.heatmaps:
        from inference.gradcam import GradCAM

        cam = GradCAM(args.model_dir)
        Path(args.heatmaps).mkdir(parents=True, exist_ok=True)

    total = count_sources(args.paths)
    rows = []
    try:
        _classify_into(rows, classifier, cam, args, total)
    except ZipLimitError as err:  # a zip over a limit or damaged: say which and stop, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.json:
        _print_table(rows)
    if args.csv:
        with open(args.csv, "w", newline="") as handle:
            fields = ["file", "label", "p_fake", "confidence", "band", "out_of_domain", "error"]
            writer = csv.DictWriter(handle, fieldnames=fields + (["heatmap"] if args.heatmaps else []))
            writer.writeheader()
            writer.writerows({k: spreadsheet_safe(v) for k, v in row.items()} for row in rows)
    return 1 if rows and all(r["error"] for r in rows) else 0


def _classify_into(rows: list[dict], classifier, cam, args, total: int) -> None:
    for done, (name, prediction, error) in enumerate(classifier.predict_files(iter_sources(args.paths)), start=1):
        row = result_row(name, prediction, error)
        if prediction is not None:
            if cam is not None:
                row["heatmap"] = _save_heatmap(classifier, cam, name, prediction, args, done)
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
        _progress(done, total)


def _save_heatmap(classifier, cam, name: str, prediction, args, index: int) -> str:
    from inference.overlay import overlay_on_model_input

    source = next(s for n, s in iter_sources([name.split(":")[0]]) if n == name)
    pixels = classifier.prepare(source, name).pixels
    heatmap = cam.explain(pixels, prediction.p_fake, method=args.method)
    out = Path(args.heatmaps) / f"{index:05d}_{Path(name.split(':')[-1]).stem}_{prediction.label.lower()}.png"
    overlay_on_model_input(pixels, heatmap).save(out)
    return str(out)


def _print_table(rows: list[dict]) -> None:
    width = min(60, max([len(r["file"]) for r in rows] + [4]))
    print(f"{'file':<{width}}  {'verdict':<9}  {'P(AI)':>6}  {'conf':>6}  band")
    for r in rows:
        shown = r["file"] if len(r["file"]) <= width else "…" + r["file"][-(width - 1):]
        if r["error"]:
            print(f"{shown:<{width}}  {'ERROR':<9}  {r['error']}")
        else:
            print(f"{shown:<{width}}  {r['label']:<9}  {r['p_fake']:6.3f}  {r['confidence']:6.3f}  {r['band']}"
                  + ("  (out of domain)" if r["out_of_domain"] else ""))


if __name__ == "__main__":
    sys.exit(main())
