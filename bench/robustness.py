"""Robustness of the shipped model to how pictures travel: `python -m bench.robustness`.

Every test image is turned into an "upload" (re-encoded, enlarged, flipped) and then goes through the
inference package's own preprocessing (`inference.preprocess.preprocess_image`) and the ONNX model,
exactly as an upload to the app would. Accuracy is on the official CIFAKE test split.

`--compare-resample` also measures, for pictures enlarged 4x and 8x, which shrinking kernel in the
preprocessing keeps accuracy best (the choice recorded in model.json).
Writes `bench/results/robustness.json` and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from inference.bands import verdict_bands
from inference.classifier import Classifier
from inference.preprocess import RESAMPLE_METHODS, preprocess_image
from training.evaluate import predict_split

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def encoded(pixels: np.ndarray, fmt: str, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, quality=quality)
    return buffer.getvalue()


def enlarged(pixels: np.ndarray, factor: int, kernel=Image.Resampling.BICUBIC) -> Image.Image:
    """What a user might upload: the 32x32 picture enlarged by another tool (bicubic, as image viewers
    and editors do by default; bilinear and box are the blur-like kernels of browsers and quick tools)."""
    return Image.fromarray(pixels).resize((32 * factor, 32 * factor), kernel)


TRANSFORMS = {
    "clean (original files)": None,
    "JPEG q50": lambda x: encoded(x, "JPEG", 50),
    "JPEG q75": lambda x: encoded(x, "JPEG", 75),
    "JPEG q90": lambda x: encoded(x, "JPEG", 90),
    "WebP q80": lambda x: encoded(x, "WEBP", 80),
    "enlarged 2×, shrunk by the pipeline": lambda x: enlarged(x, 2),
    "enlarged 4×, shrunk by the pipeline": lambda x: enlarged(x, 4),
    "enlarged 8×, shrunk by the pipeline": lambda x: enlarged(x, 8),
    "enlarged 8×, saved as JPEG q85": lambda x: encoded(np.asarray(enlarged(x, 8)), "JPEG", 85),
    "enlarged 2× bilinear, shrunk by the pipeline": lambda x: enlarged(x, 2, Image.Resampling.BILINEAR),
    "enlarged 4× bilinear, shrunk by the pipeline": lambda x: enlarged(x, 4, Image.Resampling.BILINEAR),
    "enlarged 2× box, shrunk by the pipeline": lambda x: enlarged(x, 2, Image.Resampling.BOX),
    "enlarged 3× bicubic, shrunk by the pipeline": lambda x: enlarged(x, 3),
    "JPEG q40": lambda x: encoded(x, "JPEG", 40),
    "left-right flip": lambda x: np.ascontiguousarray(x[:, ::-1]),
}


def accuracy_of(clf: Classifier, images: np.ndarray, labels: np.ndarray, transform, resample: str | None = None) -> dict:
    resample = resample or clf.resample
    pixels = images if transform is None else np.stack(
        [preprocess_image(transform(x), size=clf.input_size, resample=resample) for x in images])
    p_fake, ood = predict_split(clf, pixels)
    predicted = (p_fake >= clf.threshold).astype(int)
    bands, out = verdict_bands(p_fake, ood, clf.decision)
    confident = bands == "confident"
    return {"accuracy": float((predicted == labels).mean()), "share_called_fake": float(predicted.mean()),
            "mean_p_fake": float(p_fake.mean()), "out_of_domain": float(out.mean()),
            "confident_share": float(confident.mean()),
            "confident_error": float((predicted[confident] != labels[confident]).mean()) if confident.any() else None}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "cifake"))
    parser.add_argument("--n", type=int, default=0, help="use a stratified sample of this many test images (0: all)")
    parser.add_argument("--compare-resample", action="store_true")
    parser.add_argument("--model-dir", default="", help="exported model folder (default: the shipped one)")
    parser.add_argument("--split", choices=("test", "validation"), default="test",
                        help="validation: the seed-0 validation split (choosing a model); test: what ships")
    parser.add_argument("--out", default="", help="results JSON (default bench/results/robustness.json)")
    args = parser.parse_args(argv)

    from training.data import load_cifake, read_split

    split = read_split(Path(args.data), "test")[0] if args.split == "test" else load_cifake(args.data).val
    images, labels = split.images, split.labels.astype(int)
    if args.n:
        idx = np.sort(np.random.default_rng(0).permutation(len(labels))[: args.n])
        images, labels = images[idx], labels[idx]
    clf = Classifier(args.model_dir) if args.model_dir else Classifier()
    rows = {}
    for name, transform in TRANSFORMS.items():
        rows[name] = accuracy_of(clf, images, labels, transform)
        print(f"{name:40s} {rows[name]['accuracy'] * 100:6.2f} %", flush=True)
    clean = rows["clean (original files)"]["accuracy"]
    result = {"images": int(len(labels)), "split": args.split, "model_dir": args.model_dir or "exported",
              "model_version": clf.metadata.get("version"), "rows": rows,
              "worst_drop_points": max((clean - r["accuracy"]) * 100 for r in rows.values())}
    if args.compare_resample:
        result["resample"] = {
            f"enlarged {factor}×, shrunk with {method}": accuracy_of(clf, images, labels, lambda x, f=factor: enlarged(x, f),
                                                                    method)["accuracy"]
            for factor in (4, 8) for method in RESAMPLE_METHODS if method != "nearest"}
    out = Path(args.out) if args.out else RESULTS / "robustness.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(markdown(result))


def markdown(result: dict) -> str:
    clean = result["rows"]["clean (original files)"]["accuracy"]
    lines = [f"| upload ({result['images']} CIFAKE {result.get('split', 'test')} images) | accuracy | vs clean | called AI-generated | "
             "out of domain | confident band (error) |", "|---|---|---|---|---|---|"]
    for name, row in result["rows"].items():
        band = (f"{row['confident_share'] * 100:.1f} % ({row['confident_error'] * 100:.2f} %)"
                if row.get("confident_share") is not None else "—")
        ood = f"{row['out_of_domain'] * 100:.1f} %" if "out_of_domain" in row else "—"
        lines.append(f"| {name} | {row['accuracy'] * 100:.2f} % | {(row['accuracy'] - clean) * 100:+.2f} | "
                     f"{row['share_called_fake'] * 100:.1f} % | {ood} | {band} |")
    if "resample" in result:
        lines += ["", "| shrinking kernel | accuracy |", "|---|---|"]
        lines += [f"| {k} | {v * 100:.2f} % |" for k, v in result["resample"].items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
