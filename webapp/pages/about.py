"""About: what the model can and cannot do, how a verdict is chosen (the served model's own `Decision`,
so the text cannot drift from the rule) and its verdict bands measured on the CIFAKE test split."""
from __future__ import annotations

import gradio as gr

from inference.bands import Decision
from inference.model_card import load_metadata
from webapp.context import AppContext
from webapp.pages import Page
from webapp.views import bands_markdown


def build(ctx: AppContext) -> Page:
    def show_about():
        return about_markdown(load_metadata(ctx.service.registry.active_dir(), check_files=()))

    with gr.Tab("About", id="about") as tab:
        text = gr.Markdown(show_about())
    return Page(tab, "everyone", [(show_about, [text])])


def about_markdown(metadata: dict) -> str:
    test = metadata.get("metrics", {}).get("test", {})
    accuracy = f"{test['accuracy'] * 100:.2f} %" if test else "n/a"
    return f"""
## What this model can and cannot do

It was trained on **CIFAKE** (Bird & Lotfi 2024): 32×32 pictures — real ones from CIFAR-10 (photos of
planes, cars, birds, cats, deer, dogs, frogs, horses, ships and trucks, collected around 2008) and
AI-generated ones made with **Stable Diffusion 1.4** for the same ten classes. On the official CIFAKE test
split it is right {accuracy} of the time.

- **Every picture is squashed to 32×32** before the model looks at it. A 12-megapixel photo loses almost
  all of its detail; the verdict on large pictures is less reliable, and the explanation says so.
- It learned *CIFAR-10 photos versus Stable Diffusion 1.4 pictures*, not "camera versus any generator".
  Pictures from other generators (Midjourney, DALL·E, newer Stable Diffusion) and real photos unlike
  CIFAR-10 are outside what it knows; when its features show that, it answers **Uncertain** instead.
- The probabilities are calibrated (Platt scaling) on held-out CIFAKE pictures: on such pictures,
  "80 %" is right about 80 % of the time. Off that domain no calibration holds.
- A heatmap shows what drove *this* verdict, not proof. The faithfulness check under it says how much the
  highlighted pixels really mattered.

### How a verdict is chosen

{Decision.from_dict(metadata["decision"]).describe()}

### Verdict bands, measured on the CIFAKE test split

{bands_markdown(metadata)}

### Citation
Bird, J.J., Lotfi, A. (2024). *CIFAKE: Image Classification and Explainable Identification of
AI-Generated Synthetic Images.* IEEE Access 12, 15642–15650. arXiv:2303.14126.
Dataset: Kaggle "CIFAKE: Real and AI-Generated Synthetic Images" (real images © CIFAR-10, Krizhevsky & Hinton 2009).
"""
