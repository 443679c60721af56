"""Home: a picture -> one result card (the picture, a coloured verdict, one confidence that agrees with it,
one sentence), the heatmap, and the numbers under Details. Open to visitors (nothing stored, rate-limited
per address); for signed-in users the prediction goes to History and can be flagged.

A picture runs as soon as it is uploaded (Analyse runs it again, e.g. with another heatmap method). The
examples are thumbnails with neutral captions that run when clicked; the server maps the clicked index to
its own file, so a client never names a path."""
from __future__ import annotations

import random

import gradio as gr
from PIL import Image

from inference.model_card import PROJECT_ROOT
from webapp.actions import analyse_upload, flag_prediction, write_report
from webapp.context import IMAGE_TYPES, AppContext
from webapp.pages import Page
from webapp.service import CAM_METHODS, HeatmapRequest
from webapp.views import details_markdown, result_card_html

EXAMPLES_DIR = PROJECT_ROOT / "examples"
TARGETS = {"predicted class": None, "AI-generated": "FAKE", "Real": "REAL"}
EXAMPLE_THUMB_PX = 96
# On a phone the result column sits below the upload and the examples: bring the card into view as the
# analysis starts (the inputs pass through unchanged).
SHOW_RESULT_ON_PHONES = """(...inputs) => {
  if (window.innerWidth < 700) document.getElementById("verdict")?.scrollIntoView({block: "start"});
  return inputs;
}"""


def example_files() -> list[str]:
    """The committed example pictures in a fixed shuffled order, so neither name nor position gives the
    answer away (their file names say REAL or FAKE)."""
    files = sorted(str(p) for p in EXAMPLES_DIR.glob("*.jpg"))
    random.Random(7).shuffle(files)
    return files


def _thumbnail(path: str) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB").resize((EXAMPLE_THUMB_PX, EXAMPLE_THUMB_PX), Image.Resampling.NEAREST)


class HomeActions:
    """The page's handlers (visitors and members; the service decides what is stored); `build` lays the
    page out and wires them."""

    def __init__(self, ctx: AppContext):
        self.ctx = ctx
        self.examples = example_files()

    def analyse(self, file_value, method_label: str, target: str, opacity: float, request: gr.Request):
        """One service call: the card shows at once, the heatmap and details when they are ready."""
        heatmap = HeatmapRequest(CAM_METHODS.get(method_label, "gradcam"), TARGETS.get(target), opacity)
        steps = analyse_upload(self.ctx, file_value, request, "ui", "Upload a picture first (or click an example).",
                               heatmap)
        verdict = next(steps)
        card = result_card_html(verdict)
        flagging = (verdict.record_id, gr.Row(visible=verdict.record_id is not None), "")
        yield (card, None, "*Computing the heatmap…*", None, gr.File(value=None, visible=False), *flagging)
        analysis = next(steps)
        heat = analysis.heatmap
        if heat is None:
            yield (card, None, details_markdown(analysis) + f"\n\n*No heatmap: {analysis.heatmap_error}*", None,
                   gr.File(value=None, visible=False), *flagging)
            return
        files = [write_report(self.ctx, analysis), self.ctx.temp.png(heat.on_original, "cifake-heatmap-")]
        small = heat.on_model_input if max(analysis.original_size) > 32 else None  # else the same picture
        yield (card, heat.on_original, details_markdown(analysis), small, gr.File(value=files, visible=True),
               *flagging)

    def analyse_uploaded(self, file_value, method_label: str, target: str, opacity: float, request: gr.Request):
        if file_value is None:  # the upload was cleared
            return
        yield from self.analyse(file_value, method_label, target, opacity, request)

    def analyse_example(self, method_label: str, target: str, opacity: float, evt: gr.SelectData, request: gr.Request):
        index = evt.index if isinstance(evt.index, int) else -1
        if not 0 <= index < len(self.examples):
            raise gr.Error("Pick one of the examples.")
        yield from self.analyse(self.examples[index], method_label, target, opacity, request)

    def flag_as_real(self, record_id, request: gr.Request):
        return flag_prediction(self.ctx, record_id, "REAL", request)

    def flag_as_fake(self, record_id, request: gr.Request):
        return flag_prediction(self.ctx, record_id, "FAKE", request)


def build(ctx: AppContext) -> Page:
    actions = HomeActions(ctx)
    thumbnails = [(_thumbnail(path), f"{i + 1}") for i, path in enumerate(actions.examples)]

    with gr.Tab("Home", id="home") as tab:
        with gr.Row(elem_id="home-row"):
            with gr.Column(scale=1, min_width=280):
                upload = gr.File(label="Your picture (analysed on upload)", file_types=IMAGE_TYPES,
                                 type="filepath", elem_id="upload", height=120)
                gr.Markdown("JPEG, PNG, WebP, GIF, BMP or TIFF, up to "
                            f"{ctx.settings.max_file_mb} MB.", elem_classes="cifake-hint")
                run_button = gr.Button("Analyse", variant="primary", elem_id="analyse")
                if thumbnails:
                    gr.Markdown("**Or try an example** (CIFAKE test pictures; click one):")
                    gallery = gr.Gallery(thumbnails, columns=4, allow_preview=False, show_label=False,
                                         elem_id="examples", interactive=False, buttons=[])
                with gr.Accordion("Heatmap settings", open=False):
                    method = gr.Radio(list(CAM_METHODS), value="Grad-CAM", label="Heatmap method")
                    target = gr.Radio(list(TARGETS), value="predicted class", label="Explain which class")
                    opacity = gr.Slider(0.1, 0.9, value=0.45, step=0.05, label="Heatmap opacity")
            with gr.Column(scale=2, min_width=280):
                card = gr.HTML(elem_id="verdict")
                heatmap = gr.Image(label="Where the model looked (heatmap over your picture)", elem_id="heatmap",
                                   format="png", interactive=False, height=320)
                with gr.Accordion("Details", open=False, elem_id="details"):
                    details = gr.Markdown(elem_id="explanation")
                    heat_small = gr.Image(label="What the model saw (32×32, enlarged) + heatmap", format="png",
                                          interactive=False, height=200)
                downloads = gr.File(label="Download result (JSON) and heatmap (PNG)", file_count="multiple",
                                    interactive=False, visible=False)
                record_id = gr.Number(visible=False, precision=0)
                with gr.Row(visible=False, elem_id="flag-row") as flag_row:
                    gr.Markdown("Was the verdict right? Tell us what the picture really is:")
                    say_real = gr.Button("It is a real photo", size="sm", elem_id="say-real")
                    say_fake = gr.Button("It is AI-generated", size="sm", elem_id="say-fake")
                feedback_msg = gr.Markdown(elem_id="feedback-msg")
        outputs = [card, heatmap, details, heat_small, downloads, record_id, flag_row, feedback_msg]
        options = dict(api_visibility="private", concurrency_limit=ctx.settings.classify_concurrency,
                       concurrency_id="heatmap", js=SHOW_RESULT_ON_PHONES)
        run_button.click(actions.analyse, [upload, method, target, opacity], outputs, **options)
        upload.upload(actions.analyse_uploaded, [upload, method, target, opacity], outputs, **options)
        if thumbnails:
            gallery.select(actions.analyse_example, [method, target, opacity], outputs, **options)
        say_real.click(actions.flag_as_real, [record_id], feedback_msg, api_visibility="private")
        say_fake.click(actions.flag_as_fake, [record_id], feedback_msg, api_visibility="private")
    return Page(tab, "everyone")
