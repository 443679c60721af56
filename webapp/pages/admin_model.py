"""Admin · Model: the served version's metadata, metrics and plots, and "Run evaluation" on the official
test split (the original project's "Run Algorithm"), offered only when the test data is there."""
from __future__ import annotations

import gradio as gr
from PIL import Image

from inference.model_card import load_metadata
from webapp.actions import OFFICIAL_TEST, evaluate, evaluation_data, official_test_check
from webapp.context import AppContext
from webapp.pages import Page, admin_loader
from webapp.views import METRIC_HEADERS, bands_markdown, metrics_rows


def build(ctx: AppContext) -> Page:
    registry = ctx.service.registry

    def stored(request: gr.Request) -> tuple[str, list, list]:
        ctx.require_admin(request)
        folder = registry.active_dir()
        meta = load_metadata(folder, check_files=())
        plots = [Image.open(folder / p).convert("RGB") for p in meta.get("plots", {}).values() if (folder / p).exists()]
        calibration, decision, training = meta.get("calibration", {}), meta.get("decision", {}), meta.get("training", {})
        summary = (f"### Model v{registry.active_version()} — `{meta.get('model_name')}`, exported "
                   f"{meta.get('created')}\nPlatt calibration a={calibration.get('a', 1):.3f}, "
                   f"b={calibration.get('b', 0):.3f} · ECE on validation "
                   f"{calibration.get('validation_ece_before', float('nan')):.4f} → "
                   f"{calibration.get('validation_ece_after', float('nan')):.4f} · out-of-domain threshold "
                   f"{decision.get('ood_threshold', float('nan')):.1f} · trained {training.get('train_minutes')} min"
                   f"{' + ' + str(training['teacher_minutes']) + ' min teacher pass' if training.get('teacher_minutes') else ''}, "
                   f"{training.get('epochs_run')} epochs\n\n{bands_markdown(meta)}")
        return summary, metrics_rows(meta), plots

    def admin_model(request: gr.Request):
        """The served version's summary, its stored metrics and plots, and whether the test data is there."""
        usable, check = official_test_check(ctx)
        return *stored(request), check, gr.Button(interactive=usable)

    def admin_run_evaluation(request: gr.Request, progress=gr.Progress()):
        """Evaluate the served version on the official test split now: its stored rows plus this run's,
        and this run's plots."""
        _, rows, _ = stored(request)
        progress(0.02, desc="Loading the test split")
        row, images, _ = evaluate(ctx, evaluation_data(ctx, OFFICIAL_TEST, None, 0), "Test split, now", progress)
        return rows + [row], images

    with gr.Tab("Admin · Model", id="admin-model") as tab:
        summary = gr.Markdown(elem_id="admin-model-summary")
        metrics = gr.Dataframe(headers=METRIC_HEADERS, interactive=False, elem_id="admin-model-metrics")
        plots = gr.Gallery(label="Test-split plots and training curves", columns=4, height=360, object_fit="contain")
        with gr.Row():
            check = gr.Markdown(elem_id="model-data-check")
            run = gr.Button("Run evaluation", variant="primary", elem_id="model-run-eval", interactive=False)
            refresh = gr.Button("Refresh", size="sm")
        outputs = [summary, metrics, plots, check, run]
        refresh.click(admin_model, None, outputs, api_name="admin_model")
        run.click(admin_run_evaluation, None, [metrics, plots], api_name="admin_run_evaluation",
                  concurrency_limit=1, concurrency_id="evaluation", show_progress_on=metrics)
    return Page(tab, "admin", [(admin_loader(ctx, admin_model, len(outputs)), outputs)])
