"""The hybrid transformer member (issue 22): a functional Keras model with the CNN's contract, exportable."""
import numpy as np


def test_hybrid_has_the_cnn_contract_and_survives_save_and_onnx(tmp_path):
    import keras
    import onnxruntime as ort

    from training.model import FEATURES_LAYER, GRADCAM_LAYER, LOGIT_LAYER, build_model, count_flops

    model = build_model("hybrid")
    assert model.get_layer(GRADCAM_LAYER).output.shape == (None, 8, 8, 96)  # tokens as a map for Grad-CAM
    assert model.get_layer(FEATURES_LAYER).output.shape == (None, 96)
    assert model.get_layer(LOGIT_LAYER).output.shape == (None, 1)
    assert 300_000 < model.count_params() < 500_000 and 50e6 < count_flops(model) < 120e6
    pixels = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3)).astype(np.float32)
    expected = model.predict(pixels, verbose=0)
    model.save(tmp_path / "hybrid.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "hybrid.keras").predict(pixels, verbose=0), expected,
                               atol=1e-6)
    model.export(str(tmp_path / "hybrid.onnx"), format="onnx", verbose=False)
    session = ort.InferenceSession(str(tmp_path / "hybrid.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: pixels})[0], expected, atol=1e-5)


def test_unknown_architecture_is_refused_with_the_choices():
    import pytest

    from training.model import build_model

    with pytest.raises(ValueError, match="'default', 'seed' or 'hybrid'; got 'vit'"):
        build_model("vit")
