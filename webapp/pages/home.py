"""Home: upload -> verdict, confidence, explanation and heatmap. Open to visitors (nothing stored,
rate-limited per address); for signed-in users the prediction goes to History and can be flagged."""
from __future__ import annotations

import gradio as gr

from inference.model_card import PROJECT_ROOT
from webapp.actions import analyse_upload, flag_prediction, write_report
from webapp.context import IMAGE_TYPES, AppContext, verdict_markdown
from webapp.pages import Page
from webapp.service import CAM_METHODS, HeatmapRequest

EXAMPLES_DIR = PROJECT_ROOT / "examples"
TARGETS = {"predicted class": None, "AI-generated": "FAKE", "Real": "REAL"}


def build(ctx: AppContext) -> Page:
    def analyse(file_value, method_label: str, target: str, opacity: float, request: gr.Request):
        """One service call: the verdict shows at once, the heatmap when it is ready."""
        heatmap = HeatmapRequest(CAM_METHODS.get(method_label, "gradcam"), TARGETS.get(target), opacity)
        steps = analyse_upload(ctx, file_value, request, "ui", "Upload a picture first (or click an example).",
                               heatmap)
        verdict = next(steps)
        shown = (verdict_markdown(verdict), {"AI-generated": verdict.prediction.p_fake,
                                             "Real": 1 - verdict.prediction.p_fake})
        flagging = (verdict.record_id, gr.Row(visible=verdict.record_id is not None), "")
        yield (*shown, verdict.explanation.text + "\n\n*Computing the heatmap…*", None, None, None, *flagging)
        analysis = next(steps)
        heat = analysis.heatmap
        if heat is None:
            yield (*shown, verdict.explanation.text + f"\n\n*No heatmap: {analysis.heatmap_error}*", None, None,
                   None, *flagging)
            return
        files = [write_report(ctx, analysis), ctx.temp.png(heat.on_original, "cifake-heatmap-")]
        yield (*shown, analysis.explanation.text, heat.on_model_input, heat.on_original, files, *flagging)

    def flag_as_real(record_id, request: gr.Request):
        return flag_prediction(ctx, record_id, "REAL", request)

    def flag_as_fake(record_id, request: gr.Request):
        return flag_prediction(ctx, record_id, "FAKE", request)

    examples = sorted(str(p) for p in EXAMPLES_DIR.glob("*.jpg"))
    with gr.Tab("Home", id="home") as tab:
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Picture (JPEG, PNG, WebP, GIF, BMP, TIFF)", file_types=IMAGE_TYPES,
                                 type="filepath", elem_id="upload")
                method = gr.Radio(list(CAM_METHODS), value="Grad-CAM", label="Heatmap method")
                target = gr.Radio(list(TARGETS), value="predicted class", label="Explain which class")
                opacity = gr.Slider(0.1, 0.9, value=0.45, step=0.05, label="Heatmap opacity")
                run = gr.Button("Analyse", variant="primary", elem_id="analyse")
                if examples:
                    gr.Examples(examples, inputs=upload, label="CIFAKE test pictures (real and AI-generated)")
            with gr.Column(scale=2):
                verdict = gr.Markdown(elem_id="verdict")
                scores = gr.Label(label="Probabilities (calibrated)", num_top_classes=2)
                explanation = gr.Markdown(elem_id="explanation")
                with gr.Row():
                    heat_small = gr.Image(label="What the model saw (32×32, enlarged) + heatmap",
                                          elem_id="heatmap", format="png", interactive=False)
                    heat_large = gr.Image(label="Heatmap over your picture", format="png", interactive=False)
                downloads = gr.File(label="Download result (JSON) and heatmap (PNG)", file_count="multiple",
                                    interactive=False)
                record_id = gr.Number(visible=False, precision=0)
                with gr.Row(visible=False, elem_id="flag-row") as flag_row:
                    gr.Markdown("Was the verdict right? Tell us what the picture really is:")
                    say_real = gr.Button("It is a real photo", size="sm", elem_id="say-real")
                    say_fake = gr.Button("It is AI-generated", size="sm", elem_id="say-fake")
                feedback_msg = gr.Markdown(elem_id="feedback-msg")
        run.click(analyse, [upload, method, target, opacity],
                  [verdict, scores, explanation, heat_small, heat_large, downloads, record_id, flag_row, feedback_msg],
                  api_visibility="private", concurrency_limit=ctx.settings.classify_concurrency,
                  concurrency_id="heatmap")
        say_real.click(flag_as_real, [record_id], feedback_msg, api_visibility="private")
        say_fake.click(flag_as_fake, [record_id], feedback_msg, api_visibility="private")
    return Page(tab, "everyone")
