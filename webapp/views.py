"""Text and tables that more than one page shows (pages never import each other): the metric table of
Admin · Model and Admin · Evaluate, the verdict bands of About and Admin · Model."""
from __future__ import annotations

from inference.bands import BANDS, Decision
from webapp.context import VERDICT_TEXT

METRIC_HEADERS = ["data", "n", "accuracy", "precision", "recall", "F1", "ROC-AUC", "ECE"]


def metrics_row(data: str, values: dict) -> list:
    """One row under METRIC_HEADERS from `evaluation.metrics.compute_metrics`' dict."""
    return [data, values["n"], f"{values['accuracy'] * 100:.2f} %", f"{values['precision']:.4f}",
            f"{values['recall']:.4f}", f"{values['f1']:.4f}",
            f"{values['roc_auc']:.4f}" if values.get("roc_auc") is not None else "—", f"{values['ece']:.4f}"]


def metrics_rows(metadata: dict) -> list[list]:
    """One row per data set the model's metadata has metrics for."""
    return [metrics_row(split, values) for split, values in metadata.get("metrics", {}).items()]


def bands_markdown(metadata: dict) -> str:
    """The verdict bands measured on the CIFAKE test split, each with its rule from the model's Decision."""
    bands = metadata.get("bands", {}).get("test")
    if not bands:
        return ""
    rules = Decision.from_dict(metadata["decision"]).band_rules()
    lines = ["| band | rule | share of CIFAKE test | error rate |", "|---|---|---|---|"]
    for band in BANDS:
        row = bands[band]
        error = "—" if row["error_rate"] is None else f"{row['error_rate'] * 100:.1f} %"
        lines.append(f"| {band} | {rules[band]} | {row['share'] * 100:.1f} % | {error} |")
    return "\n".join(lines)


# -- the Home page's result card (issue 25: one verdict, one confidence that agrees with it) ------------------
HEADLINES = {("FAKE", "confident"): "AI-generated", ("FAKE", "leaning"): "Probably AI-generated",
             ("REAL", "confident"): "Real photograph", ("REAL", "leaning"): "Probably a real photograph"}
SENTENCES = {
    "confident": "The model is confident about this picture (About says how often such verdicts were right).",
    "leaning": "The model leans this way but is not sure: treat it as a hint, not a verdict.",
}
CARD_PICTURE_PX = 192  # the uploaded picture's longer side on the card


def _picture_data_uri(image, size: int = CARD_PICTURE_PX) -> str:
    """The picture as an inline PNG, shrunk (or, for tiny inputs, enlarged without smoothing) to `size`."""
    import base64
    import io

    from PIL import Image

    picture = image.convert("RGB")
    scale = size / max(picture.size)
    target = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    picture = picture.resize(target, Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def verdict_parts(prediction) -> tuple[str, str, str]:
    """(headline, confidence or the reason there is none, one plain sentence) for a Prediction.

    Only confident and leaning verdicts carry a percentage, and it is the probability of the class the
    headline names; an uncertain one says why instead (a high percentage under "Uncertain" reads as a
    contradiction)."""
    p = prediction
    if p.band != "uncertain":
        return (HEADLINES[(p.label, p.band)], f"Confidence {p.confidence * 100:.0f} %", SENTENCES[p.band])
    lean = "AI-generated" if p.likely_label == "FAKE" else "a real photograph"
    if p.out_of_domain:
        return ("Uncertain", "This picture is unlike the pictures the model learned from",
                f"Its score is not reliable here (it would lean {lean}); the model was trained on tiny 32×32 "
                "photos and Stable Diffusion pictures.")
    return ("Uncertain", "The evidence points both ways",
            f"The model gives it about even odds (P(AI-generated) {p.p_fake * 100:.0f} %); it leans {lean}.")


def card_html(label: str, band: str, picture_src: str, alt: str, headline: str, confidence: str, sentence: str,
              footer: str) -> str:
    """A verdict card (Home's result, History's reopened one), coloured by the label; texts are escaped."""
    import html

    tone = {"FAKE": "fake", "REAL": "real"}.get(label, "uncertain")
    return (f'<div class="result-card tone-{tone}" data-label="{html.escape(label)}" data-band="{html.escape(band)}">'
            f'<img class="result-picture" src="{html.escape(picture_src)}" alt="{html.escape(alt)}">'
            f'<div class="result-text"><div class="verdict-label">{html.escape(headline)}</div>'
            f'<div class="verdict-confidence">{html.escape(confidence)}</div>'
            f'<p class="verdict-sentence">{html.escape(sentence)}</p>'
            f'<p class="verdict-file">{html.escape(footer)}</p></div></div>')


def result_card_html(analysis) -> str:
    """The verdict card: the uploaded picture, one coloured headline, its confidence (or the reason there
    is none) and one sentence. Everything else goes to `details_markdown`."""
    p = analysis.prediction
    width, height = analysis.original_size
    return card_html(p.label, p.band, _picture_data_uri(analysis.original), f"Your picture: {analysis.name}",
                     *verdict_parts(p), f"{analysis.name} · {width}×{height} px · model v{analysis.model_version}")


def details_markdown(analysis) -> str:
    """What the card leaves out: the numbers behind the verdict, the heatmap's method and check, and the
    full explanation."""
    p, heat = analysis.prediction, analysis.heatmap
    rows = [("P(AI-generated), calibrated", f"{p.p_fake * 100:.1f} %"),
            ("Band", f"{p.band} (About explains the bands)"),
            ("Out-of-domain score", "—" if p.ood_score is None else
             f"{p.ood_score:.1f}" + (" (outside the training domain)" if p.out_of_domain else " (within the domain)"))]
    if heat is not None:
        check = heat.faithfulness
        rows += [("Heatmap", f"{heat.method}, explaining '{VERDICT_TEXT[heat.explained]}'"),
                 ("Deletion check", f"blurring the most highlighted {check['share_removed'] * 100:.0f} % of pixels "
                                    f"moves P by {check['drop_most_relevant'] * 100:+.1f} points, the least "
                                    f"{check['drop_least_relevant'] * 100:+.1f}")]
    table = "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])
    return f"{table}\n\n{analysis.explanation.text}"

