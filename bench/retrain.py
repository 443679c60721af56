"""Few-shot retraining scenario: `python -m bench.retrain [--methods head memory finetune] [--shares 0.1 0.3]`

What an admin would do with a new generator: label a few of its pictures, press Retrain, and hope the
new version catches the rest of that generator without calling more real photos AI-generated and
without forgetting CIFAKE.

Scenario (from `../shared/datasets/offdomain-dev`, every picture through the app's preprocessing):
- fake_images/<generator>/: per generator a share (10 %, 30 %) is labelled FAKE, the rest held out;
- real_photos/: split by *source repository*, never by file: the photos of some sources are labelled
  REAL, the other sources are held out to count false positives;
- the labelled pictures go through the real path (accepted feedback in a fresh data folder, then
  `python -m retraining` in a worker process on the labels file, as the Retrain button runs it).

Reported per method and share: held-out detection per generator and averaged over generators (parent vs
new), held-out real-photo false positives (parent vs new), CIFAKE official test accuracy of the new
version (parent vs new), the gate's decision and reason, wall time and peak memory of the worker.
`--synthetic` adds generator families that are not in any repository (made here: checkerboard
upsampling, periodic noise, JPEG-grid artefacts, a tiny random-convnet "GAN"): same protocol.
Writes `bench/results/retrain.json` and prints Markdown tables.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from inference.preprocess import preprocess_image

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
OFFDOMAIN = ROOT.parent / "shared" / "datasets" / "offdomain-dev"
CIFAKE = ROOT.parent / "shared" / "datasets" / "cifake"
CACHE = ROOT / ".cache" / "offdomain"


# -- data -----------------------------------------------------------------------------------------
def load_offdomain(root: Path = OFFDOMAIN) -> dict:
    """{"images": (N, 32, 32, 3) uint8, "label": (N,) 0 real / 1 fake, "group": generator or source repo,
    "path": file in the set}; decoded once with the app's preprocessing and cached in .cache/."""
    manifest = root / "manifest.csv"
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()[:16]
    cache = CACHE / f"offdomain-{digest}.npz"
    if cache.exists():
        with np.load(cache, allow_pickle=False) as stored:
            return {k: stored[k] for k in stored.files}
    images, labels, groups, files = [], [], [], []
    with manifest.open() as handle:
        for row in csv.DictReader(handle):
            if not (root / row["file"]).exists():
                continue
            images.append(preprocess_image(root / row["file"]))
            labels.append(1 if row["label"] == "fake" else 0)
            groups.append(row["generator"] if row["label"] == "fake" else row["repo"])
            files.append(row["file"])
    data = {"images": np.stack(images), "label": np.array(labels, np.uint8), "group": np.array(groups),
            "path": np.array(files)}
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npz")
    np.savez(tmp, **data)
    tmp.replace(cache)
    return data


def split_scenario(data: dict, share: float, real_share: float, seed: int) -> dict:
    """Indices: "labelled" (fakes: `share` of each generator, at least one; reals: whole sources until
    about `real_share` of the photos), "held_fake" {generator: idx}, "held_real" idx, "real_sources"."""
    rng = np.random.default_rng(seed)
    labelled, held_fake = [], {}
    fake = data["label"] == 1
    for generator in sorted(set(data["group"][fake])):
        idx = rng.permutation(np.flatnonzero(fake & (data["group"] == generator)))
        n = min(len(idx) - 1, max(1, int(round(share * len(idx)))))
        labelled.extend(idx[:n])
        held_fake[generator] = np.sort(idx[n:])
    real = data["label"] == 0
    sources = sorted(set(data["group"][real]))
    chosen, count = [], 0
    for source in rng.permutation(sources):
        if count >= real_share * real.sum():
            break
        chosen.append(str(source))
        count += int((real & (data["group"] == source)).sum())
    in_chosen = real & np.isin(data["group"], chosen)
    labelled.extend(np.flatnonzero(in_chosen))
    return {"labelled": np.sort(np.array(labelled)), "held_fake": held_fake,
            "held_real": np.flatnonzero(real & ~in_chosen), "real_sources": sorted(chosen)}


# -- generator families that are in no repository (made here) --------------------------------------
def _base_photos(n: int, seed: int) -> np.ndarray:
    """(n, 32, 32, 3) uint8 natural content for the artefact families: scikit-image/scikit-learn sample
    photographs and LFW faces (bench.real_photos), a source used nowhere else in this scenario."""
    from bench.real_photos import build_set

    pictures = [preprocess_image(image) for images in build_set(seed).values() for image in images]
    rng = np.random.default_rng(seed)
    return np.stack(pictures)[rng.permutation(len(pictures))[:n]]


def synthetic_families(n: int = 60, seed: int = 0) -> dict[str, np.ndarray]:
    """{family: (n, 32, 32, 3) uint8}: four kinds of generator artefacts, none in any repository."""
    rng = np.random.default_rng(seed)
    base = _base_photos(4 * n, seed).astype(np.float32)
    yy, xx = np.mgrid[:32, :32]
    families = {}
    # transposed-convolution upsampling: content from a 16x16 code, doubled, with a 2-pixel checkerboard
    small = base[:n].reshape(n, 16, 2, 16, 2, 3).mean(axis=(2, 4))
    checker = np.where((yy + xx) % 2 == 0, 1.0, -1.0)[None, :, :, None] * rng.uniform(6, 14, (n, 1, 1, 3))
    families["upsampling-checkerboard"] = small.repeat(2, axis=1).repeat(2, axis=2) + checker
    # periodic noise: a fixed-frequency grating of random orientation and phase
    angle, phase = rng.uniform(0, np.pi, (n, 1, 1)), rng.uniform(0, 2 * np.pi, (n, 1, 1))
    grating = np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / 4.0 + phase)
    families["periodic-noise"] = base[n:2 * n] + grating[..., None] * rng.uniform(8, 16, (n, 1, 1, 1))
    # block artefacts: 4x4 blocks of flat colour blended with the content (a coarse-latent decoder's grid)
    blocks = base[2 * n:3 * n].reshape(n, 8, 4, 8, 4, 3).mean(axis=(2, 4)).repeat(4, axis=1).repeat(4, axis=2)
    families["block-grid"] = 0.6 * blocks + 0.4 * base[2 * n:3 * n]
    families["random-convnet"] = _random_convnet_images(n, rng)
    return {name: np.clip(images, 0, 255).astype(np.uint8) for name, images in families.items()}


def _random_convnet_images(n: int, rng: np.random.Generator) -> np.ndarray:
    """A tiny untrained 'GAN': noise 4x4x16 -> (nearest x2, 3x3 conv, leaky ReLU) x 3 -> 3 channels."""
    weights = [rng.normal(0, 1 / np.sqrt(9 * c_in), (3, 3, c_in, c_out)) for c_in, c_out in ((16, 32), (32, 16), (16, 8))]
    to_rgb = rng.normal(0, 1 / np.sqrt(8), (8, 3))
    x = rng.normal(0, 1, (n, 4, 4, 16))
    for kernel in weights:
        x = x.repeat(2, axis=1).repeat(2, axis=2)
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
        out = sum(padded[:, dy:dy + x.shape[1], dx:dx + x.shape[2]] @ kernel[dy, dx] for dy in range(3) for dx in range(3))
        x = np.where(out > 0, out, 0.2 * out)
    rgb = x @ to_rgb
    rgb = (rgb - rgb.mean(axis=(1, 2, 3), keepdims=True)) / (rgb.std(axis=(1, 2, 3), keepdims=True) + 1e-6)
    return 128 + 50 * rgb


def synthetic_scenario(real: dict, share: float, real_share: float, seed: int, n: int = 60) -> dict:
    """Like `split_scenario`, with the synthetic families as generators and offdomain real photos."""
    families = synthetic_families(n, seed)
    is_real = real["label"] == 0
    images = np.concatenate([real["images"][is_real], *families.values()])
    groups = np.concatenate([real["group"][is_real], *[[name] * len(x) for name, x in families.items()]])
    labels = np.concatenate([np.zeros(is_real.sum(), np.uint8), np.ones(sum(map(len, families.values())), np.uint8)])
    data = {"images": images, "label": labels, "group": groups}
    return data, split_scenario(data, share, real_share, seed)


# -- one run ----------------------------------------------------------------------------------------
def write_accepted(folder: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """A fresh app data folder whose database holds `images` as accepted labelled feedback, and the labels
    file the app writes for the worker when an admin presses Retrain."""
    from retraining.labels import LABELS_NAME, latest_labels, write_labels
    from webapp.store import Store

    store = Store(folder=folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for i, (pixels, label) in enumerate(zip(images, labels)):
        path = folder / "images" / f"new_{i:05d}.png"
        Image.fromarray(pixels).save(path)
        store.add_feedback("bench", ("REAL", "FAKE")[int(label)], str(path.relative_to(folder)), "upload",
                           status="accepted")
    write_labels(folder / LABELS_NAME, latest_labels(store.list_feedback("accepted")))
    store.engine.dispose()


METHOD_ARGS = {"head": ["--method", "head"], "head-ungated": ["--method", "head", "--no-head-gate"],
               "memory": ["--method", "memory"], "finetune": ["--method", "finetune"]}


def run_worker(folder: Path, method: str, cifake: str | None, extra: list[str]) -> tuple[dict, float]:
    """`python -m retraining` in a fresh process, as the Retrain button starts it (never activates)."""
    cmd = [sys.executable, "-m", "retraining", "--data-dir", str(folder), *METHOD_ARGS[method],
           "--status", str(folder / "status.json"), "--no-activate", *extra]
    if cifake:
        cmd += ["--cifake", cifake]
    started = time.time()
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.time() - started
    if result.returncode != 0:
        raise RuntimeError(f"retraining failed ({result.returncode}): {result.stdout[-2000:]}{result.stderr[-2000:]}")
    return json.loads((folder / "status.json").read_text()), wall


def detection(classifier, data: dict, split: dict) -> dict:
    """Held-out fakes called FAKE (P(FAKE) >= threshold) per generator, and held-out real photos called FAKE."""
    p_fake, _ = classifier.run(data["images"])
    called = p_fake >= classifier.threshold
    per_generator = {g: float(called[idx].mean()) for g, idx in split["held_fake"].items() if len(idx)}
    return {"per_generator": per_generator, "mean_over_generators": float(np.mean(list(per_generator.values()))),
            "real_false_positives": float(called[split["held_real"]].mean()),
            "held_out_fakes": int(sum(len(i) for i in split["held_fake"].values())),
            "held_out_real": int(len(split["held_real"]))}


def cifake_test_accuracy(classifier, test) -> float | None:
    if test is None:
        return None
    p_fake, _ = classifier.run(test.images)
    return float(((p_fake >= classifier.threshold).astype(int) == test.labels).mean())


def run_case(data: dict, split: dict, method: str, parent_dir: Path, test, cifake: str | None,
             parent_scores: dict) -> dict:
    from inference.classifier import Classifier

    with tempfile.TemporaryDirectory(dir=ROOT / ".cache") as tmp:
        folder = Path(tmp) / "data"
        labelled = split["labelled"]
        write_accepted(folder, data["images"][labelled], data["label"][labelled])
        status, wall = run_worker(folder, method, cifake, [])
        new_dir = folder / "models" / f"v{status['version']}"
        meta = json.loads((new_dir / "model.json").read_text())
        new_clf = Classifier(new_dir)
        row = {"method": method, "labelled_fakes": int((data["label"][labelled] == 1).sum()),
               "labelled_real": int((data["label"][labelled] == 0).sum()), "real_sources_labelled": split["real_sources"],
               "parent": parent_scores, "new": detection(new_clf, data, split),
               "cifake_test_new": cifake_test_accuracy(new_clf, test), "gate": meta["retraining"]["gate"],
               "worker_wall_seconds": round(wall, 1), "worker_fit_seconds": meta["retraining"]["seconds"],
               "worker_peak_rss_mb": meta["retraining"]["peak_rss_mb"]}
    return row


def summary_table(rows: list[dict]) -> str:
    lines = ["| parent | scenario | share | seed | method | held-out detection (mean over generators) parent → new | "
             "real-photo FPs parent → new | CIFAKE test parent → new | gate | worker wall s | peak MB |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        test = "n/a" if r["cifake_test_new"] is None else f"{r['cifake_test_parent'] * 100:.2f} → {r['cifake_test_new'] * 100:.2f} %"
        lines.append(f"| v{r.get('parent_version')} | {r['scenario']} | {r['share']:.0%} | {r['seed']} | {r['method']} | "
                     f"{r['parent']['mean_over_generators'] * 100:.1f} → {r['new']['mean_over_generators'] * 100:.1f} % | "
                     f"{r['parent']['real_false_positives'] * 100:.1f} → {r['new']['real_false_positives'] * 100:.1f} % | "
                     f"{test} | {'passed' if r['gate']['passed'] else 'refused'} | {r['worker_wall_seconds']:.0f} | "
                     f"{r['worker_peak_rss_mb']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=["head", "head-ungated", "memory", "finetune"],
                        choices=list(METHOD_ARGS))
    parser.add_argument("--shares", nargs="+", type=float, default=[0.1, 0.3], help="labelled share per generator")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="scenario splits")
    parser.add_argument("--real-share", type=float, default=0.35, help="share of real photos (whole sources) labelled")
    parser.add_argument("--scenarios", nargs="+", default=["offdomain", "synthetic"], choices=["offdomain", "synthetic"])
    parser.add_argument("--cifake", default=str(CIFAKE), help="CIFAKE folder (replay, gate, test); 'slice' without it")
    parser.add_argument("--out", default=str(RESULTS / "retrain.json"))
    parser.add_argument("--append", action="store_true",
                        help="keep the rows already in --out (a row of the same parent, scenario, share, seed "
                             "and method is replaced)")
    args = parser.parse_args(argv)
    from inference.classifier import Classifier
    from inference.model_card import EXPORTED_DIR

    parent = Classifier(EXPORTED_DIR)
    test = None
    if args.cifake != "slice" and (Path(args.cifake) / "test.zip").exists():
        from training.data import read_split

        test = read_split(Path(args.cifake), "test")[0]
    parent_test = cifake_test_accuracy(parent, test)
    offdomain = load_offdomain()
    rows = []
    for scenario in args.scenarios:
        for share in args.shares:
            for seed in args.seeds:
                if scenario == "offdomain":
                    data, split = offdomain, split_scenario(offdomain, share, args.real_share, seed)
                else:
                    data, split = synthetic_scenario(offdomain, share, args.real_share, seed)
                parent_scores = detection(parent, data, split)
                for method in args.methods:
                    row = run_case(data, split, method, EXPORTED_DIR, test, args.cifake, parent_scores)
                    row.update(scenario=scenario, share=share, seed=seed, cifake_test_parent=parent_test,
                               parent_version=parent.metadata.get("version"), parent_created=parent.metadata.get("created"),
                               load_average=os.getloadavg()[0])
                    rows.append(row)
                    print(summary_table([row]).splitlines()[-1], flush=True)
    out = Path(args.out)
    command = "python -m bench.retrain " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.append and out.exists():
        def key(r):
            return (r["parent_created"], r["scenario"], r["share"], r["seed"], r["method"])

        previous = json.loads(out.read_text())
        fresh = {key(r) for r in rows}
        rows = [r for r in previous["rows"] if key(r) not in fresh] + rows
        command = "; ".join([previous.get("command", ""), command])
    result = {"machine": {"cpus": os.cpu_count(), "note": "load_average in each row: the machine was shared"},
              "command": command, "rows": rows}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(summary_table(rows))
    return result


if __name__ == "__main__":
    main()
