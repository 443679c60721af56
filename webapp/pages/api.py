"""API-only endpoints (/predict, /predict_heatmap, /history, /flag): hidden components give them file
handling and a documented schema. /predict and /predict_heatmap are public, as the Home page is: visitors
share its per-address limit and nothing of theirs is stored; signed-in callers (an API token or a sign-in)
get their results in History. /history and /flag need a sign-in."""
from __future__ import annotations

import gradio as gr

from webapp.actions import HISTORY_API_FIELDS, analyse_upload, flag_prediction, history_records, write_report
from webapp.context import AppContext
from webapp.service import CAM_METHODS, HeatmapRequest


def build(ctx: AppContext) -> None:
    def api_predict(image, request: gr.Request) -> tuple[str, float, float, str]:
        """Classify one picture.

        Returns (label, probability, confidence, explanation): label is "REAL", "FAKE" or "UNCERTAIN";
        probability is the calibrated P(AI-generated) in [0, 1]; confidence is the probability of
        the more likely class in [0.5, 1]; explanation is plain text.
        """
        *_, analysis = analyse_upload(ctx, image, request, "api",
                                      "Send a picture: client.predict(handle_file('photo.jpg'), api_name='/predict').")
        p = analysis.prediction
        return p.label, round(p.p_fake, 6), round(p.confidence, 6), analysis.explanation.text

    def api_predict_heatmap(image, method: str, request: gr.Request):
        """Classify one picture and explain it with a CAM heatmap.

        method: "Grad-CAM", "Grad-CAM++" or "HiResCAM". Returns (label, probability, confidence,
        explanation, heatmap overlay PNG, result JSON).
        """
        if method not in CAM_METHODS:
            raise gr.Error(f"method must be one of {list(CAM_METHODS)}; got {method!r}.")
        *_, analysis = analyse_upload(ctx, image, request, "api", "Send a picture.", HeatmapRequest(CAM_METHODS[method]))
        if analysis.heatmap is None:
            raise gr.Error(f"No heatmap: {analysis.heatmap_error}")
        p = analysis.prediction
        return (p.label, round(p.p_fake, 6), round(p.confidence, 6), analysis.explanation.text,
                analysis.heatmap.on_original, write_report(ctx, analysis))

    def api_history(request: gr.Request) -> list[dict]:
        """The caller's prediction history, newest first (admins: everyone's)."""
        user = ctx.require_user(request)
        return [{k: r[k] for k in HISTORY_API_FIELDS} for r in history_records(ctx, user)]

    def api_flag(record_id, label: str, request: gr.Request) -> str:
        """Say what a picture in your history really is: label "REAL" or "FAKE" (by history id)."""
        return flag_prediction(ctx, record_id, label, request)

    with gr.Row(visible=False):
        image = gr.File(label="image", type="filepath")
        method = gr.Textbox(label="method", value="Grad-CAM")
        record = gr.Number(label="record_id", precision=0)
        claimed = gr.Textbox(label="label")
        label = gr.Textbox(label="label")
        probability = gr.Number(label="probability")
        confidence = gr.Number(label="confidence")
        explanation = gr.Textbox(label="explanation")
        heatmap = gr.Image(label="heatmap", format="png", type="pil")
        result = gr.File(label="result")
        history = gr.JSON(label="history")
        message = gr.Textbox(label="message")
        button = gr.Button()
        button.click(api_predict, image, [label, probability, confidence, explanation], api_name="predict",
                     concurrency_limit=ctx.settings.classify_concurrency, concurrency_id="classify")
        button.click(api_predict_heatmap, [image, method], [label, probability, confidence, explanation, heatmap,
                                                            result],
                     api_name="predict_heatmap", concurrency_limit=ctx.settings.classify_concurrency,
                     concurrency_id="heatmap")
        button.click(api_history, None, history, api_name="history")
        button.click(api_flag, [record, claimed], message, api_name="flag")
