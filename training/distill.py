"""Distillation targets (`--recipe v2-distill`): the teachers' P(FAKE) for every training picture and
re-delivered copy, computed once with ONNX and cached in the run folder."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from training.data import PROJECT_ROOT


def teacher_probabilities(teachers: tuple[str, ...], clean: np.ndarray, variants: np.ndarray | None,
                          run_dir: Path) -> np.ndarray:
    """(1 + V, N) float32: the teachers' P(FAKE) (their ONNX graphs as served, logits averaged) for each
    training picture's clean copy (row 0) and re-delivered variants; cached in the run folder, keyed by
    the teachers' ONNX files, so a resumed run reads the same targets."""
    import hashlib

    from training.graph import run_onnx

    if not teachers:
        raise ValueError("distillation needs at least one --teacher (an exported model folder)")
    onnx = [(Path(t) if Path(t).is_absolute() else PROJECT_ROOT / t) / "model.onnx" for t in teachers]
    digests = [hashlib.sha256(p.read_bytes()).hexdigest() for p in onnx]  # each file read once
    key = hashlib.sha256("".join(digests).encode())
    key.update(f"{len(clean)}-{0 if variants is None else len(variants)}".encode())
    cache = run_dir / f"teacher-{key.hexdigest()[:16]}.npy"
    if cache.exists():
        return np.load(cache)
    started = time.time()
    copies = [clean] + ([] if variants is None else [variants[v] for v in range(len(variants))])
    logits = np.zeros((len(copies), len(clean)), np.float64)
    for path in onnx:
        for row, images in enumerate(copies):
            p = np.clip(run_onnx(path, np.asarray(images))[0].astype(np.float64), 1e-6, 1 - 1e-6)
            logits[row] += np.log(p / (1 - p)) / len(onnx)
    probabilities = (1 / (1 + np.exp(-logits))).astype(np.float32)
    tmp = cache.with_suffix(".tmp.npy")
    np.save(tmp, probabilities)
    tmp.replace(cache)
    (run_dir / "teachers.json").write_text(json.dumps(
        {"teachers": [str(p) for p in onnx], "sha256": digests,
         "cache": cache.name, "seconds": round(time.time() - started, 1)}, indent=2))  # part of the training time
    return probabilities
