"""Model versions: version 1 is the shipped `exported/` (never written to); retrained versions live in
`<data dir>/models/v<N>/`, each a complete export with its own `model.json`. The version being served
is recorded in the database (`app_state`, shared by every app process on it) and in `active.json`
(replaced atomically: write a temporary file, then rename); the newer of the two records wins, so a
retraining worker that only writes the file is served too, and so is a data folder from before the
database record existed.

A version folder appears only once complete: retraining writes into `models/.retrain-<run id>` and
renames it into place as its last step, so a crash leaves no partial version. The app removes a stopped
run's staging folder when it notices the run ended (`webapp.retrain_jobs`); on start, any staging folder
untouched for an hour is removed too (a younger one may belong to another replica's retraining).
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import sqlalchemy as sa

from inference.model_card import EXPORTED_DIR, ModelMetadataError, load_metadata

SHIPPED_VERSION = 1
STAGING_PREFIX = ".retrain-"  # models/.retrain-<run id>: a retraining run's export before it is committed
STALE_STAGING_SECONDS = 3600.0  # on start, only staging folders untouched this long are a crash's leftovers
ACTIVE_KEY = "active_model"  # app_state key of the served version's record


class Registry:
    def __init__(self, root: str | Path, shipped_dir: str | Path = EXPORTED_DIR, engine: sa.Engine | None = None):
        self.root = Path(root)
        self.shipped_dir = Path(shipped_dir)
        self.engine = engine  # the app's database; None: active.json only (e.g. a retraining worker)
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
        """The served version: the newer record of the database and active.json (read on every call)."""
        records = [r for r in (self._file_record(), self._database_record()) if r]
        try:
            version = int(max(records, key=lambda r: float(r.get("at", 0)))["version"]) if records else SHIPPED_VERSION
        except (TypeError, ValueError, KeyError):
            version = SHIPPED_VERSION
        return version if version in self.versions() else SHIPPED_VERSION

    def _file_record(self) -> dict | None:
        path = self.root / "active.json"
        try:
            return json.loads(path.read_text()) if path.exists() else None
        except (ValueError, OSError):
            return None

    def _database_record(self) -> dict | None:
        if self.engine is None:
            return None
        from webapp.state import read_state

        return read_state(self.engine, ACTIVE_KEY)

    def set_active(self, version: int, by: str = "", reason: str = "") -> None:
        if version not in self.versions():
            raise ValueError(f"There is no model version {version}; versions: {self.versions()}.")
        load_metadata(self.version_dir(version), check_files=("model.onnx", "model.keras"))
        record = {"version": version, "by": by, "reason": reason, "at": time.time()}
        if self.engine is not None:
            from webapp.state import write_state

            write_state(self.engine, ACTIVE_KEY, record)
        tmp = self.root / f"active.json.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(record))
        tmp.replace(self.root / "active.json")
        with (self.root / "activations.log").open("a") as log:
            log.write(json.dumps(record) + "\n")

    def active_dir(self) -> Path:
        return self.version_dir(self.active_version())

    def describe(self) -> list[dict]:
        """One row per version: metrics and promotion decision from its metadata."""
        active = self.active_version()
        rows = []
        for version in self.versions():
            try:
                meta = load_metadata(self.version_dir(version), check_files=())
            except ModelMetadataError as err:
                rows.append({"version": version, "active": version == active, "error": str(err)})
                continue
            gate = meta.get("retraining", {}).get("gate", {})
            rows.append({
                "version": version, "active": version == active, "parent": meta.get("parent_version"),
                "created": meta.get("created", ""),
                "test_accuracy": meta.get("metrics", {}).get("test", {}).get("accuracy"),
                "new_images": meta.get("retraining", {}).get("new_images", 0),
                "promoted": gate.get("passed") if gate else None, "reason": gate.get("reason", "shipped model"),
            })
        return rows

    def describe_rows(self) -> list[list]:
        """`describe()` as table rows for the admin page."""
        return [[r["version"], "yes" if r["active"] else "", r.get("parent"), r.get("created", ""),
                 None if r.get("test_accuracy") is None else round(r["test_accuracy"], 4), r.get("new_images"),
                 r.get("promoted"), r.get("reason") or r.get("error", "")] for r in self.describe()]
