"""Admin · Evaluate: the served model on the official test split or an uploaded labelled zip. The page says
whether the test split is there before anyone clicks, and Run is only offered when its data is."""
from __future__ import annotations

import gradio as gr

from webapp.actions import OFFICIAL_TEST, evaluate, evaluation_data, official_test_check
from webapp.context import AppContext, file_path
from webapp.pages import Page, admin_loader
from webapp.views import METRIC_HEADERS

EVAL_MAX_PICTURES = 30_000  # the CIFAKE test split has 20,000
UPLOADED = "Uploaded labelled zip"


def build(ctx: AppContext) -> Page:
    def admin_evaluate(source: str, upload, request: gr.Request, progress=gr.Progress()):
        ctx.require_admin(request)
        progress(0.02, desc="Loading data")
        split = evaluation_data(ctx, source, upload, EVAL_MAX_PICTURES)
        row, images, metrics = evaluate(ctx, split, source, progress)
        return [row], images, metrics

    def ready(source: str, upload, request: gr.Request):
        """The data check beside the choice, and Run only when the chosen data is there."""
        ctx.require_admin(request)
        usable, message = official_test_check(ctx)
        if source == UPLOADED:
            usable = bool(file_path(upload))
            message = "Upload a zip with REAL/ and FAKE/ folders." if not usable else "Ready to evaluate the zip."
        return message, gr.Button(interactive=usable)

    def open_page(request: gr.Request):
        usable, _ = official_test_check(ctx)
        source_value = OFFICIAL_TEST if usable else UPLOADED
        return (gr.Radio(value=source_value), *ready(source_value, None, request))

    with gr.Tab("Admin · Evaluate", id="admin-eval") as tab:
        source = gr.Radio([OFFICIAL_TEST, UPLOADED], value=OFFICIAL_TEST, label="Data")
        check = gr.Markdown(elem_id="eval-data-check")
        upload = gr.File(label="Labelled zip (REAL/ and FAKE/ folders)", file_types=[".zip"])
        run = gr.Button("Run evaluation", variant="primary", elem_id="eval-run")
        metrics = gr.Dataframe(headers=METRIC_HEADERS, interactive=False)
        plots = gr.Gallery(label="Confusion matrix, ROC, reliability", columns=3, height=360, object_fit="contain")
        details = gr.JSON(label="All metrics")
        for changed in (source.change, upload.change):
            changed(ready, [source, upload], [check, run], api_visibility="private")
        run.click(admin_evaluate, [source, upload], [metrics, plots, details], api_name="admin_evaluate",
                  concurrency_limit=1, concurrency_id="evaluation", show_progress_on=metrics)  # one progress bar, not one per output
    return Page(tab, "admin", [(admin_loader(ctx, open_page, 3), [source, check, run])])
