"""Model versions on disk: version 1 is the shipped `exported/` (never written to); retrained versions
live in `<data dir>/models/v<N>/`, each a complete export with its own `model.json`. The served version
is recorded in `active.json` (replaced atomically: write a temporary file, then rename).

A version folder appears only once complete: the worker writes into `models/.retrain-<run id>` and
renames it into place as its last step, so a crash leaves no partial version. The app removes a stopped
run's staging folder when it notices the run ended (`retraining.jobs`); on start, any staging folder
untouched for an hour is removed too (a younger one may belong to another replica's retraining).

The app adds a second record of the served version in its database (`webapp.registry.Registry`, a
subclass): `active_records` and `record_active` are the two places it hooks in.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from inference.model_card import EXPORTED_DIR, load_metadata

SHIPPED_VERSION = 1
STAGING_PREFIX = ".retrain-"  # models/.retrain-<run id>: a retraining run's export before it is committed
STALE_STAGING_SECONDS = 3600.0  # on start, only staging folders untouched this long are a crash's leftovers


class ModelVersions:
    def __init__(self, root: str | Path, shipped_dir: str | Path = EXPORTED_DIR):
        self.root = Path(root)
        self.shipped_dir = Path(shipped_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.clean_staging(older_than=STALE_STAGING_SECONDS)  # not a staging folder another replica is writing

    # -- layout ---------------------------------------------------------------------------------
    def version_dir(self, version: int) -> Path:
        return self.shipped_dir if version == SHIPPED_VERSION else self.root / f"v{version}"

    def versions(self) -> list[int]:
        found = [SHIPPED_VERSION]
        for path in self.root.glob("v*"):
            if path.is_dir() and path.name[1:].isdigit() and (path / "model.json").exists():
                found.append(int(path.name[1:]))
        return sorted(set(found))

    def next_version(self) -> int:
        return max(self.versions()) + 1

    def commit(self, staging: Path, version: int) -> Path:
        """Rename a complete staging folder into place as `v<version>` (atomic on one filesystem)."""
        load_metadata(staging, check_files=("model.onnx", "model.keras"))  # refuse an incomplete export
        target = self.version_dir(version)
        if target.exists():
            raise FileExistsError(f"Version {version} already exists at {target}.")
        staging.rename(target)
        return target

    def clean_staging(self, older_than: float = 0.0) -> None:
        """Remove staging folders last written more than `older_than` seconds ago (all by default)."""
        for path in self.root.glob(f"{STAGING_PREFIX}*"):
            try:
                age = time.time() - max(p.stat().st_mtime for p in [path, *path.rglob("*")])
            except OSError:  # removed meanwhile
                continue
            if age >= older_than:
                shutil.rmtree(path, ignore_errors=True)

    # -- active version ---------------------------------------------------------------------------
    def active_version(self) -> int:
        """The served version: the newest of `active_records()` (read on every call)."""
        records = [r for r in self.active_records() if r]
        try:
            version = int(max(records, key=lambda r: float(r.get("at", 0)))["version"]) if records else SHIPPED_VERSION
        except (TypeError, ValueError, KeyError):
            version = SHIPPED_VERSION
        return version if version in self.versions() else SHIPPED_VERSION

    def active_records(self) -> list[dict | None]:
        """Every record of the served version ({"version", "by", "reason", "at"}); here `active.json`."""
        path = self.root / "active.json"
        try:
            return [json.loads(path.read_text()) if path.exists() else None]
        except (ValueError, OSError):
            return [None]

    def set_active(self, version: int, by: str = "", reason: str = "") -> None:
        if version not in self.versions():
            raise ValueError(f"There is no model version {version}; versions: {self.versions()}.")
        load_metadata(self.version_dir(version), check_files=("model.onnx", "model.keras"))
        record = {"version": version, "by": by, "reason": reason, "at": time.time()}
        self.record_active(record)
        tmp = self.root / f"active.json.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(record))
        tmp.replace(self.root / "active.json")
        with (self.root / "activations.log").open("a") as log:
            log.write(json.dumps(record) + "\n")

    def record_active(self, record: dict) -> None:
        """Where else the served version is recorded before `active.json` (nowhere here)."""

    def active_dir(self) -> Path:
        return self.version_dir(self.active_version())
