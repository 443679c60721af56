"""Score many pictures on Ray Data: `python -m inference.batch PATH [PATH ...] --output results.parquet`.

PATH may be a folder (searched recursively), a zip, or a Parquet file with a column of image bytes.
Each Ray actor holds one ONNX Runtime session (`inference.classifier.Classifier`) and scores batches in
`map_batches`; the results have the CLI's columns (file, label, p_fake, confidence, band,
out_of_domain, error), in the CLI's order and with its file names, and go to one Parquet or CSV file.

Local Ray by default (`ray.init(num_cpus=...)` on this machine); `--address ray://host:10001` (or
`auto`) runs on a cluster, whose workers must see the same paths (a shared folder). Ray is an optional
extra (`pip install "ray[data]"`): nothing else in the project imports it.

Threads: an actor's session runs one ONNX Runtime thread by default (`--threads 1`), the CLI's two, so
one run of 256 pictures takes an actor about twice the CLI's wall time while costing the same CPU time
per picture (bench/batch.py measures both against a CLI session with the actor's thread count). Keep
actors x threads at most the cores: two actors of one thread each keep both cores of a 2-core machine
busy, while 2 x 2 threads oversubscribe them. Actors' threads never spin-wait (`spin=False`): a
spinning thread holds a core that another actor, or Ray's own processes, needs.
"""
from __future__ import annotations

import argparse
import csv
import logging
import os
import signal
import sys
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from inference.archive import ZipLimitError, _read_entry
from inference.batch_inputs import BATCH_ZIP_LIMITS, count_pictures, list_work, parquet_columns
from inference.classifier import result_row
from inference.csvsafe import spreadsheet_safe
from inference.model_card import EXPORTED_DIR

RESULT_COLUMNS = ("file", "label", "p_fake", "confidence", "band", "out_of_domain", "error")
RAY_MISSING = 'Ray is not installed; batch scoring needs the optional extra: pip install "ray[data]==2.60.0"'


@dataclass(frozen=True)
class BatchConfig:
    model_dir: str = str(EXPORTED_DIR)
    actors: int = 2  # Ray actors, each with its own ONNX Runtime session
    threads: int = 1  # ONNX Runtime intra-op threads per actor
    batch_size: int = 256  # pictures per map_batches call (and per ONNX run)
    address: str | None = None  # None: start Ray locally; else a cluster address ("auto", "ray://host:10001")
    num_cpus: int | None = None  # local Ray only; default: all cores of this machine
    image_column: str | None = None  # Parquet column of image bytes; default: guessed
    name_column: str | None = None  # Parquet column naming each picture; default: guessed, else "<file>#<row>"
    timings: bool = False  # add decode_s / model_s columns (seconds spent per picture), for bench/batch.py


# -- the actor ------------------------------------------------------------------------------------
class Scorer:
    """A Ray actor: one ONNX Runtime session; a batch of work items -> a pyarrow Table of results."""

    def __init__(self, config: BatchConfig):
        from inference.classifier import Classifier

        self.config = config
        self.classifier = Classifier(config.model_dir, threads=config.threads, spin=False)
        self.archives: dict[str, zipfile.ZipFile] = {}  # zips stay open across batches

    def __call__(self, batch: dict) -> "pyarrow.Table":  # noqa: F821 (pyarrow is imported lazily)
        rows: list[dict] = []
        for index in range(len(batch["file"])):
            item = {key: batch[key][index] for key in ("kind", "file", "path", "member", "row_group")}
            rows.extend(self._score(self._sources(item)))
        return _results_table(rows, self.config.timings)

    def _sources(self, item: dict) -> Iterator[tuple[str, object]]:
        """(name, source) pairs for one work item: a Path (as the CLI passes), zip bytes or Parquet bytes
        (or a ValueError naming why the entry could not be read)."""
        kind, path = str(item["kind"]), str(item["path"])
        if kind == "file":
            yield str(item["file"]), Path(path)
        elif kind == "zip":
            if path not in self.archives:
                self.archives[path] = zipfile.ZipFile(path)
            archive = self.archives[path]
            try:
                info = archive.getinfo(str(item["member"]))
                yield str(item["file"]), _read_entry(archive, info, BATCH_ZIP_LIMITS, path, 1 << 62)
            except (ZipLimitError, KeyError, zipfile.BadZipFile) as err:
                yield str(item["file"]), ValueError(str(err))
        else:
            yield from self._parquet_sources(path, int(item["row_group"]))

    def _parquet_sources(self, path: str, row_group: int) -> Iterator[tuple[str, object]]:
        import pyarrow.parquet as pq

        image_column, name_column = parquet_columns(path, self.config.image_column, self.config.name_column)
        parquet = pq.ParquetFile(path)
        first_row = sum(parquet.metadata.row_group(g).num_rows for g in range(row_group))
        table = parquet.read_row_group(row_group, columns=[image_column] + ([name_column] if name_column else []))
        images = table.column(image_column).to_pylist()
        names = table.column(name_column).to_pylist() if name_column else [None] * len(images)
        for offset, (image, name) in enumerate(zip(images, names)):
            if isinstance(image, dict):  # {"bytes": ..., "path": ...} (Hugging Face Image feature)
                image = image.get("bytes")
            yield (name if name else f"{path}#{first_row + offset}"), (b"" if image is None else image)

    def _score(self, sources: Iterator[tuple[str, object]]) -> list[dict]:
        """Decode each source, then run the model on batch_size pictures at a time (as predict_files does)."""
        rows, ready = [], []  # ready: (row, (32, 32, 3) uint8 pixels)
        for name, source in sources:
            started = time.perf_counter()
            row = {"file": name, "error": None, "decode_s": 0.0, "model_s": 0.0}
            try:
                if isinstance(source, ValueError):  # the picture could not even be read
                    raise source
                ready.append((row, self.classifier.prepare(source, name).pixels))
            except ValueError as err:
                row["error"] = str(err)
            row["decode_s"] = time.perf_counter() - started
            rows.append(row)
            if len(ready) >= self.config.batch_size:
                self._predict(ready)
                ready = []
        self._predict(ready)
        return rows

    def _predict(self, ready: list[tuple[dict, object]]) -> None:
        if not ready:
            return
        import numpy as np

        started = time.perf_counter()
        predictions = self.classifier.predict_pixels(np.stack([pixels for _, pixels in ready]))
        per_picture = (time.perf_counter() - started) / len(ready)
        for (row, _), prediction in zip(ready, predictions):
            row.update(result_row(row["file"], prediction, None), decode_s=row["decode_s"], model_s=per_picture)


def result_schema(timings: bool = False):
    import pyarrow as pa

    fields = [("file", pa.string()), ("label", pa.string()), ("p_fake", pa.float64()),
              ("confidence", pa.float64()), ("band", pa.string()), ("out_of_domain", pa.bool_()),
              ("error", pa.string())]
    if timings:
        fields += [("decode_s", pa.float64()), ("model_s", pa.float64())]
    return pa.schema(fields)


def _results_table(rows: list[dict], timings: bool):
    import pyarrow as pa

    schema = result_schema(timings)
    return pa.table({name: [row.get(name) for row in rows] for name in schema.names}, schema=schema)


# -- running ------------------------------------------------------------------------------------
def import_ray(local: bool = False):
    """Ray, imported only here; RuntimeError with the install command when the extra is missing.
    `local`: Ray is about to start a new local cluster (read before Ray reads its settings at import)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage telemetry
    if local and "ray" not in sys.modules:  # Ray reads it once, at import; set later, it breaks ray.init
        os.environ.setdefault("RAY_AUTH_MODE", "token")  # token authentication as Ray's default, but no
        # warning that it chose it
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as err:
        raise RuntimeError(RAY_MISSING) from err
    return ray


def start_ray(config: BatchConfig):
    """Connect to `config.address`, or start a local Ray without a dashboard; returns the ray module."""
    ray = import_ray(local=not config.address)
    if not ray.is_initialized():
        if config.address:  # ship this package to the cluster's workers (numpy, Pillow, ORT must be there)
            ray.init(address=config.address, runtime_env={"py_modules": [str(Path(__file__).resolve().parent)]},
                     logging_level="WARNING", log_to_driver=False)
        else:
            ray.init(num_cpus=config.num_cpus or os.cpu_count(), include_dashboard=False,
                     logging_level="WARNING", log_to_driver=False)
    for name, level in (("ray.data._internal.progress", logging.ERROR),  # "progress bars disabled"
                        ("ray.data._internal.execution.streaming_executor", logging.WARNING)):
        logging.getLogger(name).setLevel(level)
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows come back in the CLI's order
    context.enable_progress_bars = False  # one bar of ours (with the total) instead of Ray's per operator
    context.print_on_execution_start = False
    return ray


def score(paths: list[str], config: BatchConfig) -> Iterator["pyarrow.Table"]:  # noqa: F821
    """Yield result tables in input order. Starts (or joins) Ray; checks Parquet columns before any actor."""
    items = check_inputs(paths, config)
    ray = start_ray(config)
    for group in _consecutive_groups(items):
        yield from _score_group(ray, group, config)


def check_inputs(paths: list[str], config: BatchConfig) -> list[dict]:
    """The work items; ValueError if a Parquet file has no usable image column (nothing is written then)."""
    items = list(list_work(paths))
    for item in items:
        if item["kind"] == "parquet" and item["row_group"] == 0:
            parquet_columns(item["path"], config.image_column, config.name_column)
    return items


def _consecutive_groups(items: list[dict]) -> Iterator[list[dict]]:
    """Runs of Parquet row groups and runs of single pictures, in order (they batch differently)."""
    group: list[dict] = []
    for item in items:
        if group and (item["kind"] == "parquet") != (group[0]["kind"] == "parquet"):
            yield group
            group = []
        group.append(item)
    if group:
        yield group


def actor_restarts(config: BatchConfig) -> dict:
    """Ray Data hands each actor its own set-up (our Scorer and its config, the data context) as objects
    in the object store, and by default restarts dead actors; Ray's core worker then logs an error line
    on every run ("constructor arguments in the object store and max_restarts > 0", ray#53727), however
    small our arguments are. On a cluster, restarting actors on lost nodes is worth that line; locally a
    dead actor means a bug or no memory left, and a restart would only fail again: no restarts.
    (Ray 2.60 takes `max_restarts` only through its deprecated `ray_remote_args`; it names no parameter
    for it yet, so `_score_group` silences that one deprecation warning.)"""
    return {} if config.address else {"max_restarts": 0}


def _score_group(ray, items: list[dict], config: BatchConfig):
    # A Parquet row group holds many pictures: one per call (the actor batches inside); else batch_size.
    per_call = 1 if items[0]["kind"] == "parquet" else config.batch_size
    blocks = max(1, min(-(-len(items) // per_call), 1000))
    dataset = ray.data.from_items(items, override_num_blocks=blocks)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")  # see actor_restarts
        results = dataset.map_batches(
            Scorer, fn_constructor_args=(config,), batch_size=per_call, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=config.actors), num_cpus=1, **actor_restarts(config),
        )
    yield from results.iter_batches(batch_size=None, batch_format="pyarrow")


class ResultWriter:
    """Streams result tables into one Parquet file, or a CSV file written exactly as the CLI's `--csv`
    (text a spreadsheet would run as a formula gets a leading apostrophe)."""

    def __init__(self, path: str | Path, timings: bool = False):
        self.path = Path(path)
        self.format = "csv" if self.path.suffix.lower() == ".csv" else "parquet"
        self.schema = result_schema(timings)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._parquet = None
        self._csv_file = None
        self._csv = None
        self.rows = 0
        self.errors = 0

    def write(self, table) -> None:
        table = table.select(self.schema.names).cast(self.schema)
        if self.format == "csv":
            self._write_csv(table)
        else:
            import pyarrow.parquet as pq

            if self._parquet is None:
                self._parquet = pq.ParquetWriter(str(self.path), self.schema)
            self._parquet.write_table(table)
        self.rows += table.num_rows
        self.errors += table.num_rows - table.column("error").null_count

    def _write_csv(self, table) -> None:
        if self._csv is None:
            self._csv_file = open(self.path, "w", newline="")
            self._csv = csv.DictWriter(self._csv_file, fieldnames=self.schema.names)
            self._csv.writeheader()
        self._csv.writerows({key: spreadsheet_safe(value) for key, value in row.items()} for row in table.to_pylist())

    def close(self) -> None:
        if self.rows == 0:
            self.write(self.schema.empty_table())  # an empty result still has its header / schema
        if self._parquet is not None:
            self._parquet.close()
        if self._csv_file is not None:
            self._csv_file.close()


def run(paths: list[str], output: str | Path, config: BatchConfig, progress: bool = True) -> tuple[int, int]:
    """Score `paths` into `output` (.parquet or .csv); returns (pictures, errors)."""
    check_inputs(paths, config)
    total = count_pictures(paths) if progress else 0
    writer = ResultWriter(output, config.timings)
    try:
        for table in score(paths, config):
            writer.write(table)
            if progress:
                _progress(writer.rows, total)
    finally:
        writer.close()
    return writer.rows, writer.errors


def _progress(done: int, total: int) -> None:
    width = 30
    filled = int(width * done / max(1, total))
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True)
    if done >= total:
        print(file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference.batch", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+", help="folders, zips, images or Parquet files of image bytes")
    parser.add_argument("--output", "-o", required=True, help="results file: .parquet or .csv")
    parser.add_argument("--model-dir", default=BatchConfig.model_dir, help="folder with model.onnx and model.json")
    parser.add_argument("--actors", type=int, default=BatchConfig.actors, help="Ray actors (ONNX sessions)")
    parser.add_argument("--threads", type=int, default=BatchConfig.threads, help="ONNX Runtime threads per actor")
    parser.add_argument("--batch-size", type=int, default=BatchConfig.batch_size, help="pictures per batch")
    parser.add_argument("--address", help="Ray cluster address (e.g. auto, ray://head:10001); default: local Ray")
    parser.add_argument("--num-cpus", type=int, help="CPUs for local Ray (default: all)")
    parser.add_argument("--image-column", help="Parquet column of image bytes (default: guessed)")
    parser.add_argument("--name-column", help="Parquet column naming each picture (default: guessed)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.actors < 1 or args.threads < 1 or args.batch_size < 1:
        parser.error("--actors, --threads and --batch-size must be at least 1")
    if Path(args.output).suffix.lower() not in (".parquet", ".pq", ".csv"):
        parser.error(f"--output must end in .parquet or .csv; got {args.output!r}")
    config = BatchConfig(args.model_dir, args.actors, args.threads, args.batch_size, args.address, args.num_cpus,
                         args.image_column, args.name_column)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the local Ray we started
    try:
        from inference.model_card import load_metadata

        load_metadata(Path(config.model_dir), check_files=("model.onnx",))  # a bad model fails before Ray starts
        pictures, errors = run(args.paths, args.output, config, progress=not args.quiet)
    except (RuntimeError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if "ray" in sys.modules and sys.modules["ray"].is_initialized():
            sys.modules["ray"].shutdown()
    print(f"{pictures} pictures scored, {errors} errors -> {args.output}", file=sys.stderr)
    return 1 if pictures and errors == pictures else 0


if __name__ == "__main__":
    sys.exit(main())
