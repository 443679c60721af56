"""One user action, one service call: an upload through the Home page is classified by one ONNX run on the
picture, with the active version looked up once; About shows the served model's own rule.

The pages are built in this process around a real `DetectorService` on the shipped exported/ model (a
real ONNX Runtime session, spied on, not mocked) and their handlers are called as Gradio calls them."""
import json

import numpy as np
import pytest

from conftest import EXPORTED


class CountingSession:
    """Wraps an ONNX Runtime session: every batch it runs is kept, then the real session runs it."""

    def __init__(self, session):
        self.session = session
        self.batches: list[np.ndarray] = []

    def run(self, output_names, feeds):
        (batch,) = feeds.values()
        self.batches.append(np.array(batch))
        return self.session.run(output_names, feeds)

    def __getattr__(self, name):
        return getattr(self.session, name)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    from webapp.context import AppContext
    from webapp.settings import Settings

    context = AppContext.create(Settings(data_dir=str(tmp_path_factory.mktemp("data")), warm_up=False))
    yield context
    context.service.store.engine.dispose()


def _page_handler(ctx, page_module, name: str):
    """The handler `name` as the page registered it with Gradio."""
    import gradio as gr

    with gr.Blocks() as demo:
        page = page_module.build(ctx)
    handlers = [f.fn for f in demo.fns.values() if f.name == name]
    assert len(handlers) == 1, f"{page_module.__name__} registers {len(handlers)} handlers named {name!r}"
    return page, handlers[0]


def test_one_upload_through_the_home_page_runs_the_onnx_model_once_for_the_verdict(ctx, sample_paths, monkeypatch):
    from webapp.pages import home
    from webapp.registry import Registry

    _, analyse = _page_handler(ctx, home, "analyse")
    clf, _ = ctx.service.classifier()
    spy = CountingSession(clf.session)
    monkeypatch.setattr(clf, "session", spy)
    look_ups = []
    real_active_version = Registry.active_version
    monkeypatch.setattr(ctx.service.registry, "active_version",
                        lambda: look_ups.append(1) or real_active_version(ctx.service.registry))

    path = str(sample_paths["FAKE"][0])
    steps = list(analyse(path, "Grad-CAM", "predicted class", 0.45, None))

    card, heatmap, details, small, downloads = steps[-1][:5]
    assert "result-card" in card and heatmap is not None, details
    assert "Check: blurring" in details  # the faithfulness check ran
    report = json.loads(open(downloads.value[0]["path"]).read())  # a gr.File update: shown, with the files
    seen = clf.prepare(path).pixels.astype(np.float32)  # (32, 32, 3): what the model saw
    runs_on_the_picture = sum(int(np.array_equal(row, seen)) for batch in spy.batches for row in batch)
    assert runs_on_the_picture == 1, f"the picture went through ONNX {runs_on_the_picture} times"
    assert [len(batch) for batch in spy.batches] == [1, 2]  # the verdict; the two perturbed copies
    assert len(look_ups) == 1
    assert report["p_fake"] == pytest.approx(float(spy.session.run(None, {clf.input_name: seen[None]})[0][0, 0]))
    assert report["faithfulness"]["score"] == pytest.approx(
        report["faithfulness"]["drop_most_relevant"] - report["faithfulness"]["drop_least_relevant"])


def test_a_failed_heatmap_leaves_the_verdict_and_says_why(ctx, sample_paths, monkeypatch):
    from webapp.service import HeatmapRequest

    def broken(version):
        raise RuntimeError("no TensorFlow today")

    monkeypatch.setattr(ctx.service, "gradcam", broken)
    analysis = ctx.service.analyse(str(sample_paths["REAL"][0]), heatmap=HeatmapRequest())
    assert analysis.heatmap is None and analysis.heatmap_error == "no TensorFlow today"
    assert analysis.prediction.label in ("REAL", "FAKE", "UNCERTAIN") and analysis.explanation.text


def test_about_shows_the_served_models_decision_rule_with_its_guard(ctx):
    import gradio as gr

    from inference.bands import Decision
    from inference.model_card import load_metadata
    from webapp.pages import about

    with gr.Blocks():
        page = about.build(ctx)
    (show_about, _), = page.loaders
    text = show_about()
    decision = Decision.from_dict(load_metadata(EXPORTED, check_files=())["decision"])
    assert decision.guard_threshold is not None, "the shipped model has a guard near the domain's edge"
    assert decision.describe() in text
    assert "Near the edge of the training domain" in text and f"{decision.guarded_confident_from:.2f}" in text
