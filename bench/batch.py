"""Batch scoring on Ray Data against the single-process CLI: `python -m bench.batch [--zip TEST_ZIP]`.

In one run on this machine, on the CIFAKE test split (20,000 JPEGs in a zip):
1. end to end, as a user runs them (fresh processes, start-up included): `python -m inference ZIP --csv`
   versus `python -m inference.batch ZIP --output x.parquet` with 1 actor (1 and 2 ONNX threads) and
   2 actors (1 thread each); median wall time over --repeats, images/s, ratio to the CLI;
2. where the time goes, in this process: starting Ray, starting the actors (time to the first result),
   scoring; and inside the actors the seconds spent decoding + shrinking pictures versus in ONNX Runtime,
   against the same split of the CLI's work (Classifier.prepare vs predict_pixels) with a session of
   the actor's thread count: an actor with one ONNX Runtime thread takes about twice as long per run
   as the CLI's two threads, for the same CPU time, so only the same thread count is a fair comparison
   (`onnx_vs_cli`: the actors' ONNX milliseconds per picture over the CLI's).
Checks that every configuration gives the CLI's rows. Writes `bench/results/batch.json`.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DEFAULT_ZIP = ROOT.parent / "shared" / "datasets" / "cifake" / "test.zip"
CONFIGS = ((1, 1), (1, 2), (2, 1))  # (actors, ONNX Runtime threads per actor)


def timed_command(args: list[str]) -> float:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def read_rows(path: Path) -> list[tuple]:
    """(file, label, p_fake) of a CSV or Parquet result file, for comparing runs."""
    if path.suffix == ".csv":
        with path.open() as handle:
            return [(r["file"], r["label"], float(r["p_fake"] or "nan")) for r in csv.DictReader(handle)]
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["file", "label", "p_fake"]).to_pylist()
    return [(r["file"], r["label"], float("nan") if r["p_fake"] is None else r["p_fake"]) for r in table]


def same_rows(rows: list[tuple], reference: list[tuple]) -> bool:
    """Same files, labels and probabilities (to the CLI's 5 decimals), in the same order."""
    return len(rows) == len(reference) and all(
        a[:2] == b[:2] and (a[2] == b[2] or (np.isnan(a[2]) and np.isnan(b[2]))) for a, b in zip(rows, reference))


def end_to_end(zip_path: Path, repeats: int, workdir: Path) -> dict:
    """Fresh processes, as a user would run them; medians of wall seconds."""
    runs: dict[str, dict] = {}
    commands = {"cli": (["-m", "inference", str(zip_path), "--json", "--csv", str(workdir / "cli.csv")],
                        workdir / "cli.csv")}
    for actors, threads in CONFIGS:
        out = workdir / f"ray_{actors}x{threads}.parquet"
        commands[f"ray_{actors}_actor_{threads}_thread"] = (
            ["-m", "inference.batch", str(zip_path), "--output", str(out), "--quiet", "--actors", str(actors),
             "--threads", str(threads)], out)
    for _ in range(repeats):  # interleaved, so a slow minute on a shared machine hits every configuration
        for name, (args, _) in commands.items():
            runs.setdefault(name, {"seconds": []})["seconds"].append(timed_command(args))
    reference = read_rows(commands["cli"][1])
    for name, (_, out) in commands.items():
        runs[name]["same_rows_as_cli"] = same_rows(read_rows(out), reference)
        runs[name]["median_seconds"] = statistics.median(runs[name]["seconds"])
        runs[name]["images_per_second"] = len(reference) / runs[name]["median_seconds"]
    for name in runs:
        runs[name]["speed_vs_cli"] = runs[name]["images_per_second"] / runs["cli"]["images_per_second"]
    return runs


def cli_breakdown(zip_path: Path, threads: int) -> dict:
    """The CLI's work split: decoding + shrinking (Classifier.prepare) vs ONNX Runtime, one process,
    its session with `threads` intra-op threads (the CLI's own has 2)."""
    from inference.classifier import Classifier

    classifier = Classifier(threads=threads)
    decode = model = 0.0
    pixels = []
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(n for n in archive.namelist() if n.lower().endswith(".jpg"))
        for name in names:
            data = archive.read(name)
            started = time.perf_counter()
            pixels.append(classifier.prepare(data, name).pixels)
            decode += time.perf_counter() - started
            if len(pixels) == 256:
                started = time.perf_counter()
                classifier.predict_pixels(np.stack(pixels))
                model += time.perf_counter() - started
                pixels = []
    if pixels:
        started = time.perf_counter()
        classifier.predict_pixels(np.stack(pixels))
        model += time.perf_counter() - started
    return {"images": len(names), "threads": threads, "decode_seconds": decode, "onnx_seconds": model,
            "onnx_ms_per_picture": 1e3 * model / len(names)}


def ray_breakdown(zip_path: Path, cli: dict) -> dict:
    """Ray started once here; per configuration: actor start-up, scoring, and the actors' own split,
    their ONNX time per picture against `cli[threads]` (cli_breakdown with the actor's thread count)."""
    from inference import batch

    started = time.perf_counter()
    ray = batch.start_ray(batch.BatchConfig())
    out = {"ray_init_seconds": time.perf_counter() - started, "runs": {}}
    for actors, threads in CONFIGS:
        config = batch.BatchConfig(actors=actors, threads=threads, timings=True)
        started = time.perf_counter()
        first = None
        rows = decode = model = 0
        for table in batch.score([str(zip_path)], config):
            first = first or time.perf_counter() - started
            rows += table.num_rows
            decode += sum(table.column("decode_s").to_pylist())
            model += sum(table.column("model_s").to_pylist())
        total = time.perf_counter() - started
        out["runs"][f"ray_{actors}_actor_{threads}_thread"] = {
            "images": rows, "seconds": total, "seconds_to_first_result": first,
            "images_per_second_after_first_result": (rows / (total - first)) if total > first else None,
            "actor_decode_seconds": decode, "actor_onnx_seconds": model,
            "other_seconds_per_actor": total - (decode + model) / actors,  # start-up, Ray's transfers, idle
            "actor_onnx_ms_per_picture": 1e3 * model / rows,
            "onnx_vs_cli": (1e3 * model / rows) / cli[threads]["onnx_ms_per_picture"],
        }
    ray.shutdown()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="zip of JPEGs (default: CIFAKE test.zip)")
    parser.add_argument("--repeats", type=int, default=3, help="end-to-end runs per configuration (median)")
    parser.add_argument("--out", type=Path, default=RESULTS / "batch.json")
    args = parser.parse_args(argv)
    if not args.zip.is_file():
        print(f"error: {args.zip} not found; pass --zip", file=sys.stderr)
        return 2
    result = {"machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()},
              "data": str(args.zip.name), "repeats": args.repeats}
    with tempfile.TemporaryDirectory() as tmp:
        result["end_to_end"] = end_to_end(args.zip, args.repeats, Path(tmp))
    result["cli_breakdown"] = {threads: cli_breakdown(args.zip, threads) for threads in sorted({t for _, t in CONFIGS})}
    result["ray_breakdown"] = ray_breakdown(args.zip, result["cli_breakdown"])
    result["machine"]["load_average_at_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print_table(result)
    return 0


def print_table(result: dict) -> None:
    print("| run | median s | images/s | vs CLI | same rows |\n|---|---|---|---|---|")
    for name, run in result["end_to_end"].items():
        print(f"| {name} | {run['median_seconds']:.1f} | {run['images_per_second']:.0f} | "
              f"{run['speed_vs_cli']:.2f}x | {run['same_rows_as_cli']} |")
    for threads, cli in result["cli_breakdown"].items():
        print(f"\nCLI work, {threads} ONNX thread(s): decode {cli['decode_seconds']:.1f} s, ONNX "
              f"{cli['onnx_seconds']:.1f} s = {cli['onnx_ms_per_picture']:.3f} ms a picture ({cli['images']} images)")
    ray = result["ray_breakdown"]
    print(f"Ray start: {ray['ray_init_seconds']:.1f} s")
    for name, run in ray["runs"].items():
        print(f"{name}: {run['seconds']:.1f} s, first result after {run['seconds_to_first_result']:.1f} s, "
              f"then {run['images_per_second_after_first_result'] or 0:.0f} images/s; actors: decode "
              f"{run['actor_decode_seconds']:.1f} s, ONNX {run['actor_onnx_seconds']:.1f} s = "
              f"{run['actor_onnx_ms_per_picture']:.3f} ms a picture, {run['onnx_vs_cli']:.2f}x the CLI's")


if __name__ == "__main__":
    sys.exit(main())
