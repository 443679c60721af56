"""Admin · Evaluate: the served model on the official test split or an uploaded labelled zip."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import gradio as gr
import numpy as np
from PIL import Image

from webapp.actions import load_labelled_upload
from webapp.context import AppContext
from webapp.pages import Page
from webapp.views import METRIC_HEADERS, metrics_row

EVAL_MAX_PICTURES = 30_000  # the CIFAKE test split has 20,000


def build(ctx: AppContext) -> Page:
    def admin_evaluate(source: str, upload, request: gr.Request, progress=gr.Progress()):
        ctx.require_admin(request)
        from evaluation.labelled import DEFAULT_CACHE_DIR, DatasetLayoutError, read_split  # admins only: lazy
        from evaluation.metrics import compute_metrics, save_plots

        progress(0.02, desc="Loading data")
        try:
            if source == "Official test split":
                data_path = Path(ctx.settings.eval_data)
                if not data_path.exists():
                    raise gr.Error(f"No CIFAKE data at {data_path}; set CIFAKE_EVAL_DATA or upload a labelled zip.")
                split = read_split(data_path, "test", DEFAULT_CACHE_DIR)[0]  # the cache training fills
            else:
                split = load_labelled_upload(ctx, upload, EVAL_MAX_PICTURES)
        except (DatasetLayoutError, ValueError, FileNotFoundError) as err:
            raise gr.Error(str(err)) from None
        clf, version = ctx.service.classifier()
        scores = []
        for start in progress.tqdm(range(0, len(split), 1024), desc="Classifying"):
            scores.append(clf.run(split.images[start:start + 1024])[0])
        p_fake = np.concatenate(scores)
        metrics = compute_metrics(split.labels, p_fake, clf.threshold)
        out_dir = Path(tempfile.mkdtemp(prefix="cifake-eval-"))
        try:
            plots = save_plots(split.labels, p_fake, out_dir, clf.threshold, f"({source.lower()}, v{version})")
            images = [Image.open(p).convert("RGB") for p in plots.values()]
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)
        rows = [metrics_row(f"{source} (v{version})", metrics)]
        return rows, images, metrics

    with gr.Tab("Admin · Evaluate", id="admin-eval") as tab:
        source = gr.Radio(["Official test split", "Uploaded labelled zip"], value="Official test split", label="Data")
        upload = gr.File(label="Labelled zip (REAL/ and FAKE/ folders)", file_types=[".zip"])
        run = gr.Button("Run evaluation", variant="primary")
        metrics = gr.Dataframe(headers=METRIC_HEADERS, interactive=False)
        plots = gr.Gallery(label="Confusion matrix, ROC, reliability", columns=3, height=360, object_fit="contain")
        details = gr.JSON(label="All metrics")
        run.click(admin_evaluate, [source, upload], [metrics, plots, details], api_name="admin_evaluate",
                  concurrency_limit=1)
    return Page(tab, "admin")
