"""Batch: many pictures or zips at once -> a table and a CSV. Zips are streamed under limits."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import gradio as gr

from inference.archive import ZipLimitError, ZipLimits, iter_zip_pictures, picture_entries
from inference.csvsafe import write_rows
from webapp.context import IMAGE_TYPES, VERDICT_TEXT, AppContext, file_path
from webapp.pages import Page

CSV_HEADER = ["file", "verdict", "p_fake", "confidence", "band", "error"]


def batch_limits(ctx: AppContext) -> ZipLimits:
    return ZipLimits(max_entries=ctx.settings.batch_max_files, max_total_bytes=ctx.settings.zip_max_mb * 2**20,
                     max_entry_bytes=ctx.settings.max_file_mb * 2**20)


def count_pictures(paths: list[str], limits: ZipLimits) -> int:
    """Pictures in the upload, from the zips' directories; raises ZipLimitError over the limit."""
    total = 0
    for path in paths:
        if path.lower().endswith(".zip") and zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                total += len(picture_entries(archive, limits, Path(path).name))
        else:
            total += 1
    if total > limits.max_entries:
        raise ZipLimitError(f"The upload holds {total} pictures; at most {limits.max_entries} are accepted per "
                            "batch. Split it.")
    return total


def iter_batch_sources(paths: list[str], limits: ZipLimits):
    """(name, path or bytes) per picture, one zip entry in memory at a time."""
    for path in paths:
        if path.lower().endswith(".zip") and zipfile.is_zipfile(path):
            yield from iter_zip_pictures(path, limits, Path(path).name)
        else:
            yield Path(path).name, path


def build(ctx: AppContext) -> Page:
    def run_batch(files, request: gr.Request, progress=gr.Progress()):
        user = ctx.require_user(request)
        paths = [file_path(f) for f in (files or []) if file_path(f)]
        if not paths:
            raise gr.Error("Upload pictures or a zip first.")
        limits = batch_limits(ctx)
        try:
            total = count_pictures(paths, limits)
        except (ZipLimitError, zipfile.BadZipFile) as err:
            raise gr.Error(str(err), title="Upload refused") from None
        if total == 0:
            raise gr.Error("No pictures found in the upload (accepted: JPEG, PNG, WebP, GIF, BMP, TIFF, or a zip).")
        rows, stopped = [], ""
        try:
            for name, source in progress.tqdm(iter_batch_sources(paths, limits), total=total, desc="Classifying"):
                try:
                    analysis = ctx.service.analyse(source, user.username, name=name, source="batch")
                except ValueError as err:
                    rows.append([name, "error", None, None, "", str(err)])
                    continue
                p = analysis.prediction
                rows.append([name, VERDICT_TEXT[p.label], round(p.p_fake, 4), round(p.confidence, 4), p.band, ""])
        except ZipLimitError as err:  # met while streaming: keep what was classified, say why it stopped
            if not rows:
                raise gr.Error(str(err), title="Upload refused") from None
            stopped = f"\n\n**Stopped:** {err}"
        counts = {k: sum(r[1] == v for r in rows) for k, v in VERDICT_TEXT.items()}
        errors = sum(r[1] == "error" for r in rows)
        summary = (f"**{len(rows)} files:** {counts['FAKE']} AI-generated · {counts['REAL']} real · "
                   f"{counts['UNCERTAIN']} uncertain · {errors} unreadable{stopped}")
        buffer = io.StringIO()
        write_rows(buffer, CSV_HEADER, rows)
        return rows, summary, ctx.temp.write(buffer.getvalue().encode(), ".csv", "cifake-batch-")

    with gr.Tab("Batch", id="batch") as tab:
        gr.Markdown(f"Up to {ctx.settings.batch_max_files} pictures per run, as files or zips.")
        files = gr.File(label="Pictures or zips", file_count="multiple", type="filepath",
                        file_types=IMAGE_TYPES + [".zip"], elem_id="batch-files")
        run = gr.Button("Classify all", variant="primary")
        summary = gr.Markdown()
        table = gr.Dataframe(headers=CSV_HEADER, interactive=False, wrap=True)
        csv_file = gr.File(label="Results (CSV)", interactive=False)
        run.click(run_batch, files, [table, summary, csv_file], api_name="batch", concurrency_limit=2)
    return Page(tab, "member")
