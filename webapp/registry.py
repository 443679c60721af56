"""The app's view of the model versions: `retraining.versions.ModelVersions` (the folders and
`active.json` the retraining worker writes) plus a record of the served version in the database
(`app_state`, shared by every app process on it). The newer of the two records wins, so a retraining
worker that only writes the file is served too, and so is a data folder from before the database record
existed. `describe` gives the admin page its table of versions.
"""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from inference.model_card import EXPORTED_DIR, ModelMetadataError, load_metadata
from retraining.versions import ModelVersions

ACTIVE_KEY = "active_model"  # app_state key of the served version's record


class Registry(ModelVersions):
    def __init__(self, root: str | Path, shipped_dir: str | Path = EXPORTED_DIR, engine: sa.Engine | None = None):
        super().__init__(root, shipped_dir)
        self.engine = engine  # the app's database; None: active.json only

    def active_records(self) -> list[dict | None]:
        if self.engine is None:
            return super().active_records()
        from webapp.state import read_state

        return [*super().active_records(), read_state(self.engine, ACTIVE_KEY)]

    def record_active(self, record: dict) -> None:
        if self.engine is not None:
            from webapp.state import write_state

            write_state(self.engine, ACTIVE_KEY, record)

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
