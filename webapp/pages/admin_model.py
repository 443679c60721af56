"""Admin · Model: the served version's metadata, metrics and plots."""
from __future__ import annotations

import gradio as gr
from PIL import Image

from inference.model_card import load_metadata
from webapp.context import AppContext
from webapp.pages import Page, admin_loader
from webapp.views import METRIC_HEADERS, bands_markdown, metrics_rows


def build(ctx: AppContext) -> Page:
    registry = ctx.service.registry

    def admin_model(request: gr.Request):
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

    with gr.Tab("Admin · Model", id="admin-model") as tab:
        summary = gr.Markdown(elem_id="admin-model-summary")
        metrics = gr.Dataframe(headers=METRIC_HEADERS, interactive=False)
        plots = gr.Gallery(label="Test-split plots and training curves", columns=4, height=360, object_fit="contain")
        refresh = gr.Button("Refresh", size="sm")
        refresh.click(admin_model, None, [summary, metrics, plots], api_name="admin_model")
    return Page(tab, "admin", [(admin_loader(ctx, admin_model, 3), [summary, metrics, plots])])
