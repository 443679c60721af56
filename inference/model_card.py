"""Reading and checking `model.json`, the metadata written beside `model.onnx` and `model.keras`.

Only the standard library: the classifier imports this without TensorFlow.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

SCHEMA_VERSION = 1
PROJECT_ROOT = Path(__file__).resolve().parent.parent
EXPORTED_DIR = PROJECT_ROOT / "exported"
REQUIRED_KEYS = ("schema_version", "class_names", "input", "outputs", "preprocessing", "decision", "files")


class ModelMetadataError(ValueError):
    """model.json is missing, of another schema, or does not match the files beside it."""


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_metadata(model_dir: str | Path = EXPORTED_DIR, check_files: tuple[str, ...] = ("model.onnx",)) -> dict:
    """Read `model_dir/model.json`, check its schema version and the sha256 of `check_files`."""
    model_dir = Path(model_dir)
    path = model_dir / "model.json"
    if not path.is_file():
        raise ModelMetadataError(f"No model metadata at {path}: export a model first (python -m training.export).")
    try:
        metadata = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ModelMetadataError(f"{path} is not valid JSON: {err}") from err
    missing = [key for key in REQUIRED_KEYS if key not in metadata]
    if missing:
        raise ModelMetadataError(f"{path} lacks the keys {missing}.")
    if metadata["schema_version"] != SCHEMA_VERSION:
        raise ModelMetadataError(
            f"{path} has schema_version {metadata['schema_version']!r}; this code reads version {SCHEMA_VERSION}."
        )
    for name in check_files:
        entry = metadata["files"].get(name)
        if entry is None:
            raise ModelMetadataError(f"{path} records no sha256 for {name}.")
        file_path = model_dir / entry["path"]
        if not file_path.is_file():
            raise ModelMetadataError(f"{file_path} is missing (model.json lists it).")
        actual = sha256_of(file_path)
        if actual != entry["sha256"]:
            raise ModelMetadataError(
                f"{file_path} has sha256 {actual[:12]}… but model.json expects {entry['sha256'][:12]}…: "
                "the file was changed or belongs to another export."
            )
    return metadata
