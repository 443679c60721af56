"""Benchmarks: each module is `python -m bench.<name>`, writes `bench/results/<name>.json` and prints Markdown."""
from __future__ import annotations

import json
from pathlib import Path


def mean_rows(rows: list[dict], keys) -> dict:
    """{key: mean over the rows} for each key (rows: one dict of numbers per generator, fold, ...)."""
    return {key: float(sum(row[key] for row in rows) / len(rows)) for key in keys}


def save_partial(results: dict, out: str | Path | None) -> None:
    """Write what a long run has so far (each generator or fold), so a cut run keeps its finished part."""
    if out:
        Path(out).write_text(json.dumps(results, indent=2))
