"""What more than one page does (pages never import each other): analyse an upload, write its report and
flag a verdict (Home and the API endpoints), read an admin's labelled zip (Admin · Evaluate and Admin · Retraining).
Each is a plain function of the app context and the request; errors reach the user as gr.Error."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import gradio as gr

from inference.archive import ZipLimitError, ZipLimits, check_zip
from webapp.context import VERDICT_TEXT, AppContext, file_path
from webapp.service import Analysis, HeatmapRequest

if TYPE_CHECKING:
    from evaluation.labelled import Split


def analyse_upload(ctx: AppContext, file_value, request: gr.Request, source: str, missing: str,
                   heatmap: HeatmapRequest | None = None) -> Iterator[Analysis]:
    """An upload -> the service's one analysis, step by step (`DetectorService.analyse_in_steps`: the
    verdict, then with `heatmap` the finished analysis), recorded in the user's history when signed in.
    Visitors (the Home page and the public `/predict`, `/predict_heatmap`) share one per-address limit and
    nothing of theirs is stored. Visitors over their limit, missing and unreadable files -> a message."""
    user = ctx.user(request)
    if ctx.signed_out(request, user):
        raise gr.Error("You have been signed out (your session ended or your account was disabled). Reload the "
                       "page to go on as a visitor, or sign in again.", title="Signed out")
    if user is None:
        ctx.check_rate(ctx.visitor_limit, request, "pictures (sign in for more)")
    path = file_path(file_value)
    if not path:
        raise gr.Error(missing)
    steps = ctx.service.analyse_in_steps(path, user.username if user else None, name=Path(path).name,
                                         source=source, heatmap=heatmap)
    try:
        verdict = next(steps)
    except ValueError as err:
        raise gr.Error(str(err), title="Cannot read this file") from None
    yield verdict
    yield from steps


HISTORY_API_FIELDS = ("id", "created_at", "username", "file_name", "label", "p_fake", "confidence", "band",
                      "model_version", "source")


def history_records(ctx: AppContext, user) -> list[dict]:
    """The user's predictions, newest first (admins: everyone's) — the History page and `/history`."""
    return ctx.service.store.history(None if user.is_admin else user.username)


def write_report(ctx: AppContext, analysis: Analysis) -> str:
    """The analysis as a downloadable JSON file; its path."""
    return ctx.temp.write(json.dumps(analysis.to_dict(), indent=2).encode(), ".json", "cifake-result-")


def flag_prediction(ctx: AppContext, record_id, claimed: str, request: gr.Request) -> str:
    user = ctx.require_user(request)
    if not record_id:
        raise gr.Error("Analyse a picture first.")
    if claimed not in ("REAL", "FAKE"):
        raise gr.Error(f"The label must be REAL or FAKE; got {claimed!r}.")
    try:
        kind = ctx.service.flag(user.username, int(record_id), claimed)
    except (PermissionError, ValueError) as err:
        raise gr.Error(str(err)) from None
    return ("Thanks — noted as correct." if kind == "confirm" else
            f"Thanks — flagged as wrong; an admin will review the label '{VERDICT_TEXT[claimed]}'.")


def labelled_zip_limits(ctx: AppContext, max_entries: int) -> ZipLimits:
    return ZipLimits(max_entries=max_entries, max_total_bytes=ctx.settings.zip_max_mb * 2**20,
                     max_entry_bytes=ctx.settings.max_file_mb * 2**20)


def load_labelled_upload(ctx: AppContext, upload, max_entries: int) -> Split:
    """An admin's uploaded labelled zip (REAL/ and FAKE/ folders) that passed the streaming limits ->
    Split of (N, 32, 32, 3) uint8 pictures; gr.Error naming the problem otherwise."""
    from evaluation.labelled import DatasetLayoutError, load_labelled  # admins only: lazy

    path = file_path(upload)
    if not path:
        raise gr.Error("Upload a labelled zip (REAL/ and FAKE/ folders).")
    if not zipfile.is_zipfile(path):
        raise gr.Error(f"{Path(path).name} is not a zip file.")
    try:
        check_zip(path, labelled_zip_limits(ctx, max_entries), Path(path).name)
    except ZipLimitError as err:
        raise gr.Error(str(err), title="Upload refused") from None
    try:
        return load_labelled(path)  # the same loader as training
    except DatasetLayoutError as err:
        raise gr.Error(str(err)) from None
