"""What more than one page does (pages never import each other): analyse an upload, write its report and
flag a verdict (Home and the API endpoints), read an admin's labelled zip (Admin · Evaluate and Admin · Retraining),
check for and run an evaluation (Admin · Model and Admin · Evaluate), keep and show a profile picture
(Register, Profile and the server's /media route), read a stored picture (Admin · Retraining and /media).
Each is a plain function of the app context and the request; errors reach the user as gr.Error."""
from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator
from urllib.parse import quote

import gradio as gr
import numpy as np
from PIL import Image

from inference.archive import ZipLimitError, ZipLimits, check_zip
from inference.preprocess import load_image
from webapp.context import VERDICT_TEXT, AppContext, file_path
from webapp.service import Analysis, HeatmapRequest
from webapp.views import metrics_row

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


OFFICIAL_TEST = "Official test split"


def official_test_check(ctx: AppContext) -> tuple[bool, str]:
    """Is the CIFAKE test split where the settings say (`CIFAKE_EVAL_DATA`)? (usable, a line saying what
    is there or what to do), from the file names alone, so pages can show it before anyone clicks."""
    from evaluation.labelled import DatasetLayoutError, count_split  # admins only: lazy

    where = Path(ctx.settings.eval_data)
    try:
        counts = count_split(where, "test")
    except (DatasetLayoutError, OSError) as err:
        return False, (f"**Test data missing.** {err} Set `CIFAKE_EVAL_DATA` to a folder holding CIFAKE's "
                       "`test.zip` (or `test/REAL`, `test/FAKE`), or evaluate an uploaded labelled zip.")
    return True, (f"**Test data ready:** {counts['REAL'] + counts['FAKE']:,} pictures ({counts['REAL']:,} REAL, "
                  f"{counts['FAKE']:,} FAKE) in `{where}`.")


def evaluation_data(ctx: AppContext, source: str, upload, max_pictures: int) -> Split:
    """The official test split (the decoded cache training fills) or an admin's labelled zip."""
    from evaluation.labelled import DEFAULT_CACHE_DIR, DatasetLayoutError, read_split  # admins only: lazy

    if source != OFFICIAL_TEST:
        return load_labelled_upload(ctx, upload, max_pictures)
    usable, message = official_test_check(ctx)
    if not usable:
        raise gr.Error(message.replace("**", "").replace("`", ""), title="No test data")
    try:
        return read_split(Path(ctx.settings.eval_data), "test", DEFAULT_CACHE_DIR)[0]
    except (DatasetLayoutError, OSError) as err:
        raise gr.Error(str(err), title="No test data") from None


def evaluate(ctx: AppContext, split: Split, title: str, progress: gr.Progress) -> tuple[list, list, dict]:
    """The served model on `split`: (one row under views.METRIC_HEADERS, the plots as pictures, all metrics)."""
    from evaluation.metrics import compute_metrics, save_plots  # admins only: lazy

    clf, version = ctx.service.classifier()
    scores = []
    for start in progress.tqdm(range(0, len(split), 1024), desc="Classifying"):
        scores.append(clf.run(split.images[start:start + 1024])[0])
    p_fake = np.concatenate(scores)
    metrics = compute_metrics(split.labels, p_fake, clf.threshold)
    out_dir = Path(tempfile.mkdtemp(prefix="cifake-eval-"))
    try:
        plots = save_plots(split.labels, p_fake, out_dir, clf.threshold, f"({title.lower()}, v{version})")
        images = [Image.open(p).convert("RGB") for p in plots.values()]
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    return metrics_row(f"{title} (v{version})", metrics), images, metrics


def save_profile_picture(ctx: AppContext, username: str, path: str) -> str:
    """Decode an uploaded picture (same guards as predictions), keep a 256 px PNG; returns its data path."""
    try:
        image, _ = load_image(path)
    except ValueError as err:
        raise gr.Error(f"Profile picture: {err}") from None
    image.thumbnail((256, 256))
    target = ctx.service.folder / "profiles" / f"{username}.png"
    target.parent.mkdir(exist_ok=True)
    image.save(target)
    ctx.service.store.update_profile(username, picture=str(target.relative_to(ctx.service.folder)))
    return str(target)


def stored_picture(ctx: AppContext, relative: str) -> Image.Image | None:
    """A picture the app keeps in its data folder (a prediction's or a flag's 32x32 input, a profile
    picture), or None if it is gone or the path leads out of the folder."""
    path = (ctx.service.folder / relative).resolve()
    if ctx.service.folder not in path.parents or not path.is_file():
        return None
    with Image.open(path) as image:
        return image.convert("RGB")


def profile_picture(ctx: AppContext, username: str) -> Image.Image | None:
    """The stored picture of `username` (callers check that the asker may see it)."""
    user = ctx.service.store.get_user(username)
    picture = user.profile.get("picture") if user else ""
    return stored_picture(ctx, picture) if picture else None  # older rows hold absolute paths; "/" keeps them


def profile_picture_html(ctx: AppContext, username: str) -> str:
    """The picture from /media/profile/<name>, which checks the asker (never an open Gradio file URL)."""
    user = ctx.service.store.get_user(username)
    picture = user.profile.get("picture") if user else ""
    path = ctx.service.folder / picture if picture else None
    if path is None or not path.is_file():
        return "<p>No picture yet.</p>"
    version = path.stat().st_mtime_ns  # a new picture gets a new address, so the page shows it
    return (f'<img src="/media/profile/{quote(username)}?v={version}" alt="Your profile picture" '
            'style="height:160px">')
