"""Multi-layer pooled features of a trained CNN, built from stock Keras layers only.

Heads fitted after training (the out-of-domain head in `training.export`, heads fitted by
`training.incremental`) read, for the last activation of every stage, the per-channel mean and mean
square over the spatial positions: E[a] and E[a^2] (the variance follows from both, and no custom
layer is needed, so `model.keras` loads without importing this package). For the 32/64/128 network
that is 2 x (32 + 64 + 128) = 448 numbers per picture.
"""
from __future__ import annotations

import numpy as np

from training.model import FEATURES_LAYER, GRADCAM_LAYER, LOGIT_LAYER


def stage_output_names(base) -> list[str]:
    """Names of the last activation of each stage (the layer feeding each max-pool, then `last_conv`)."""
    from keras import layers

    names = [_layer_name_of(base, layer) for layer in base.layers if isinstance(layer, layers.MaxPooling2D)]
    return [n for n in names if n] + [GRADCAM_LAYER]


def _layer_name_of(base, pool_layer) -> str | None:
    """The layer whose output a pooling layer consumes."""
    for layer in base.layers:
        if layer.output is pool_layer.input:
            return layer.name
    return None


def pooled_moments(base, prefix: str = "moments"):
    """Keras tensor (N, 2 * sum(widths)): [E[a], E[a^2]] of each stage's last activation, in stage order."""
    from keras import layers

    parts = []
    for i, name in enumerate(stage_output_names(base)):
        activation = base.get_layer(name).output
        squared = layers.Multiply(name=f"{prefix}_square{i}")([activation, activation])
        parts.append(layers.GlobalAveragePooling2D(name=f"{prefix}_mean{i}")(activation))
        parts.append(layers.GlobalAveragePooling2D(name=f"{prefix}_meansq{i}")(squared))
    return layers.Concatenate(name=f"{prefix}_concat")(parts)


def feature_model(base, logit=None):
    """base -> keras.Model(pixels -> [logit (N, 1), pooled features (N, D), moments (N, 2 * sum(widths))]).

    `logit`: a tensor on `base.input` to read instead of the base's own logit (e.g. an ensemble's mean)."""
    import keras

    logit = base.get_layer(LOGIT_LAYER).output if logit is None else logit
    return keras.Model(base.input, [logit, base.get_layer(FEATURES_LAYER).output, pooled_moments(base)])


def extract(base, images: np.ndarray, batch_size: int = 1024, logit=None) -> dict[str, np.ndarray]:
    """(N, 32, 32, 3) uint8/float 0-255 -> {"logit": (N,), "features": (N, D), "moments": (N, M)} float32."""
    logits, features, moments = feature_model(base, logit).predict(images.astype(np.float32),
                                                                   batch_size=batch_size, verbose=0)
    return {"logit": logits.reshape(-1), "features": features, "moments": moments}
