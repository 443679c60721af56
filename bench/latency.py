"""Speed and memory of the shipped model: `python -m bench.latency [--data ../shared/datasets/cifake]`.

`--model-dir runs/export_pair --baseline exported --out bench/results/latency_pair.json` measures another
exported folder and, in the same run, the baseline's ONNX latency and throughput (interleaved), with ratios.

Measures, in one run on this machine:
- ORT vs Keras (`model.predict`, `model(x)` in a `tf.function`) latency at batch 1 and 256;
- throughput including JPEG decode (the inference package's preprocessing) over the test split;
- Grad-CAM time per method;
- import time and resident memory of a classify-only process vs one with Grad-CAM loaded.
Medians over repeats; writes `bench/results/latency.json` and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def median_seconds(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def probe_process(code: str, model_dir: Path) -> dict:
    """Run `code` in a fresh interpreter; it prints JSON. Adds the process's peak RSS (MB, VmHWM: getrusage
    would report this benchmark's own memory, which Linux carries over fork + exec)."""
    wrapped = f"MODEL_DIR = {str(model_dir)!r}\n" + code + "\nfrom training.memory import peak_rss_mb\nprint(json.dumps({**out, 'peak_rss_mb': peak_rss_mb()}))"
    result = subprocess.run([sys.executable, "-c", "import json, time\n" + wrapped], cwd=ROOT, capture_output=True,
                            text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


CLASSIFY_ONLY = """
started = time.perf_counter()
from inference.classifier import Classifier
clf = Classifier(MODEL_DIR)
clf.predict(sorted(__import__('glob').glob('examples/*.jpg'))[0])
import sys
out = {'seconds_to_first_verdict': time.perf_counter() - started, 'tensorflow_loaded': 'tensorflow' in sys.modules}
"""
WITH_GRADCAM = CLASSIFY_ONLY + """
started = time.perf_counter()
from inference.gradcam import GradCAM
import numpy as np
cam = GradCAM(MODEL_DIR)
cam.compute(np.zeros((1, 32, 32, 3), np.float32))
out['seconds_to_load_gradcam'] = time.perf_counter() - started
out['tensorflow_loaded'] = 'tensorflow' in sys.modules
"""


def jpeg_files(data: Path | None, limit: int) -> list[bytes]:
    if data is not None and (data / "test.zip").exists():
        with zipfile.ZipFile(data / "test.zip") as archive:
            names = [n for n in archive.namelist() if n.endswith(".jpg")][:limit]
            return [archive.read(n) for n in names]
    files = sorted((ROOT / "examples").rglob("*.jpg"))
    return [p.read_bytes() for p in files] * max(1, limit // max(1, len(files)))


def onnx_speed(clf, files: list[bytes], repeats: int) -> dict:
    """ORT batch-1 and batch-256 latency (ms) and images/s with JPEG decode on 2 threads, medians."""
    from inference.preprocess import preprocess_image

    rng = np.random.default_rng(0)
    batch1 = rng.integers(0, 256, (1, 32, 32, 3)).astype(np.float32)
    batch256 = rng.integers(0, 256, (256, 32, 32, 3)).astype(np.float32)

    def decode_chunk(chunk):
        return np.stack([preprocess_image(data) for data in chunk])

    def classify_all():
        chunks = [files[i:i + 512] for i in range(0, len(files), 512)]
        with ThreadPoolExecutor(2) as pool:  # decode on 2 threads (Pillow releases the GIL), ORT on 2 cores
            for pixels in pool.map(decode_chunk, chunks):
                clf.run(pixels)

    return {"ort_b1_ms": median_seconds(lambda: clf.run(batch1), repeats * 10) * 1e3,
            "ort_b256_ms": median_seconds(lambda: clf.run(batch256), repeats) * 1e3,
            "images_per_second_with_decode": len(files) / median_seconds(classify_all, 3, warmup=1)}


def compare_onnx(model_dir: Path, baseline: Path, files: list[bytes], repeats: int, rounds: int = 3) -> dict:
    """Both folders' ONNX speed, alternating A, B, A, B ... so that the machine's noise hits both alike."""
    from inference.classifier import Classifier

    runs = {"model": [], "baseline": []}
    classifiers = {"model": Classifier(model_dir), "baseline": Classifier(baseline)}
    for _ in range(rounds):
        for name, clf in classifiers.items():
            runs[name].append(onnx_speed(clf, files, max(1, repeats // rounds)))
    medians = {name: {k: statistics.median(r[k] for r in rows) for k in rows[0]} for name, rows in runs.items()}
    medians["ratio"] = {k: medians["model"][k] / medians["baseline"][k] for k in medians["model"]}
    medians["baseline_dir"] = str(baseline)
    return medians


def main(argv: list[str] | None = None) -> None:
    """The measurements of the module docstring in order (fresh processes first); one JSON, one table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "cifake"))
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--throughput-images", type=int, default=20000)
    parser.add_argument("--model-dir", default="", help="exported folder to measure (default: the shipped one)")
    parser.add_argument("--baseline", default="", help="another exported folder measured in the same run (ONNX only)")
    parser.add_argument("--out", default=str(RESULTS / "latency.json"))
    args = parser.parse_args(argv)
    from inference.model_card import EXPORTED_DIR

    model_dir = Path(args.model_dir) if args.model_dir else EXPORTED_DIR
    results: dict = {"machine": {"cpus": os.cpu_count()}, "model_dir": str(model_dir)}

    # fresh processes first, before this one loads anything
    results["process"] = {"classify_only": probe_process(CLASSIFY_ONLY, model_dir),
                          "with_gradcam": probe_process(WITH_GRADCAM, model_dir)}

    from inference.classifier import Classifier
    from inference.preprocess import preprocess_image

    files = jpeg_files(Path(args.data), args.throughput_images)
    if args.baseline:  # the model's own figures are then its medians over the alternating rounds
        results["against_baseline"] = compare_onnx(model_dir, Path(args.baseline), files, args.repeats)
        speed = results["against_baseline"]["model"]
    else:
        speed = onnx_speed(Classifier(model_dir), files, args.repeats)
    latency = {"ort_b1_ms": speed["ort_b1_ms"], "ort_b256_ms": speed["ort_b256_ms"]}
    results["throughput"] = {"images": len(files), "images_per_second_with_decode": speed["images_per_second_with_decode"],
                             "source": "CIFAKE test.zip" if (Path(args.data) / "test.zip").exists() else "examples"}
    decode_only = median_seconds(lambda: [preprocess_image(d) for d in files[:2000]], 3, warmup=1)
    results["throughput"]["decode_images_per_second_one_thread"] = 2000 / decode_only
    rng = np.random.default_rng(0)
    batch1 = rng.integers(0, 256, (1, 32, 32, 3)).astype(np.float32)
    batch256 = rng.integers(0, 256, (256, 32, 32, 3)).astype(np.float32)

    import keras
    import tensorflow as tf

    from inference.gradcam import GradCAM

    import inference.layers  # noqa: F401 (custom layers a shipped model may hold)

    model = keras.models.load_model(model_dir / "model.keras")
    graph_call = tf.function(lambda x: model(x, training=False))
    latency["keras_predict_b1_ms"] = median_seconds(lambda: model.predict(batch1, verbose=0), args.repeats) * 1e3
    latency["keras_predict_b256_ms"] = median_seconds(lambda: model.predict(batch256, verbose=0), args.repeats) * 1e3
    latency["keras_tf_function_b1_ms"] = median_seconds(lambda: graph_call(batch1), args.repeats * 10) * 1e3
    latency["keras_tf_function_b256_ms"] = median_seconds(lambda: graph_call(batch256), args.repeats) * 1e3
    best_keras_b1 = min(latency["keras_predict_b1_ms"], latency["keras_tf_function_b1_ms"])
    best_keras_b256 = min(latency["keras_predict_b256_ms"], latency["keras_tf_function_b256_ms"])
    latency["ort_speedup_b1_vs_best_keras"] = best_keras_b1 / latency["ort_b1_ms"]
    latency["ort_speedup_b256_vs_best_keras"] = best_keras_b256 / latency["ort_b256_ms"]
    results["latency"] = latency

    cam = GradCAM(model_dir)
    one = batch1
    results["gradcam_ms"] = {m: median_seconds(lambda m=m: cam.compute(one, method=m), args.repeats) * 1e3
                             for m in ("gradcam", "gradcam++", "hirescam")}

    RESULTS.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(markdown(results))


def markdown(r: dict) -> str:
    lat, thr, proc, cam = r["latency"], r["throughput"], r["process"], r["gradcam_ms"]
    return "\n".join([
        "| measurement | batch 1 | batch 256 |", "|---|---|---|",
        f"| ONNX Runtime | {lat['ort_b1_ms']:.3f} ms | {lat['ort_b256_ms']:.1f} ms |",
        f"| Keras `model.predict` | {lat['keras_predict_b1_ms']:.2f} ms | {lat['keras_predict_b256_ms']:.1f} ms |",
        f"| Keras `tf.function` | {lat['keras_tf_function_b1_ms']:.3f} ms | {lat['keras_tf_function_b256_ms']:.1f} ms |",
        f"| ORT speed-up vs best Keras | {lat['ort_speedup_b1_vs_best_keras']:.1f}× | {lat['ort_speedup_b256_vs_best_keras']:.1f}× |",
        "",
        f"Throughput with JPEG decode ({thr['images']} images from {thr['source']}): "
        f"**{thr['images_per_second_with_decode']:.0f} images/s** (decode alone, one thread: "
        f"{thr['decode_images_per_second_one_thread']:.0f} images/s).",
        "",
        "Grad-CAM per image: " + ", ".join(f"{k} {v:.1f} ms" for k, v in cam.items()) + ".",
        "",
        "| process | peak resident memory | time to first verdict | TensorFlow loaded |", "|---|---|---|---|",
        f"| classify only (ONNX Runtime) | {proc['classify_only']['peak_rss_mb']:.0f} MB | "
        f"{proc['classify_only']['seconds_to_first_verdict']:.2f} s | {proc['classify_only']['tensorflow_loaded']} |",
        f"| + Grad-CAM (TensorFlow) | {proc['with_gradcam']['peak_rss_mb']:.0f} MB | "
        f"+{proc['with_gradcam']['seconds_to_load_gradcam']:.1f} s to load | {proc['with_gradcam']['tensorflow_loaded']} |",
    ] + ([] if "against_baseline" not in r else [
        "", f"Against `{r['against_baseline']['baseline_dir']}` in the same run (ONNX, medians of alternating rounds):",
        "", "| | batch 1 | batch 256 | images/s with decode |", "|---|---|---|---|",
        *(f"| {name} | {r['against_baseline'][name]['ort_b1_ms']:.3f} ms | {r['against_baseline'][name]['ort_b256_ms']:.1f} ms | "
          f"{r['against_baseline'][name]['images_per_second_with_decode']:.0f} |" for name in ("model", "baseline")),
        f"| ratio | {r['against_baseline']['ratio']['ort_b1_ms']:.2f}× | {r['against_baseline']['ratio']['ort_b256_ms']:.2f}× | "
        f"{r['against_baseline']['ratio']['images_per_second_with_decode']:.2f}× |"]))


if __name__ == "__main__":
    main()
