"""Model definitions (Keras functional API).

Every model takes (N, 32, 32, 3) float32 RGB pixels in 0-255 and rescales them itself
(`Rescaling(1/255)` is the first layer), ends in a linear `logit` layer and a `p_fake` sigmoid
(probability that the image is AI-generated), names its last convolutional feature map
`last_conv` (the Grad-CAM layer) and its pooled features `features` (the out-of-domain score's
input).
"""
from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from inference.layers import PositionEmbedding

GRADCAM_LAYER = "last_conv"
FEATURES_LAYER = "features"
LOGIT_LAYER = "logit"
OUTPUT_LAYER = "p_fake"


@dataclass(frozen=True)
class CNNConfig:
    """A plain VGG-style CNN: stages of 3x3 convs (conv -> BN -> ReLU), max-pool between stages."""

    filters: tuple[int, ...] = (32, 64, 128)  # one entry per stage; stage i runs at 32 / 2**i pixels
    convs_per_stage: tuple[int, ...] = (2, 2, 2)
    dense_units: int = 0  # 0: global average pooling straight into the logit
    dropout: float = 0.2  # before the logit
    stem_stride: int = 1  # 2 halves the resolution at the first conv (cheaper, loses fine texture)


# Search candidate D's shape (MODEL_CARD.md: Topology search) widened to 32/64/96: D trained in full reached
# 96.42 % validation accuracy, this 97.04 % (both with re-delivery augmentation); 8x8 Grad-CAM maps.
DEFAULT_CONFIG = CNNConfig(filters=(32, 64, 96), convs_per_stage=(1, 2, 2), dense_units=0, dropout=0.2)
# The published from-scratch anchor (issue 9): 2 x conv-BN-ReLU per stage at 32/64/128, full-resolution
# first stage, global average pooling, linear head, no dropout. 288 k parameters, 77 MFLOPs.
ANCHOR_CONFIG = CNNConfig(filters=(32, 64, 128), convs_per_stage=(2, 2, 2), dense_units=0, dropout=0.0)


def _inputs() -> tuple[keras.KerasTensor, keras.KerasTensor]:
    inputs = keras.Input(shape=(32, 32, 3), dtype="float32", name="pixels")  # RGB 0-255
    return inputs, layers.Rescaling(1.0 / 255, name="rescale")(inputs)


def conv_stages(x, filters: tuple[int, ...], convs: tuple[int, ...], stem_stride: int = 1, last_name: str = ""):
    """Stages of 3x3 conv -> BN -> ReLU (`conv{k}`, `bn{k}`, `relu{k}`), a 2x max-pool between stages; the
    last activation is named `last_name` when given (the CNN's Grad-CAM layer)."""
    n_convs, k = sum(convs), 0
    for stage, (width, repeats) in enumerate(zip(filters, convs)):
        if stage > 0:
            x = layers.MaxPooling2D(2, name=f"pool{stage}")(x)
        for _ in range(repeats):
            k += 1
            stride = stem_stride if k == 1 else 1
            x = layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False, name=f"conv{k}")(x)
            # momentum 0.9: running statistics settle within ~50 steps (0.99 lags short runs badly)
            x = layers.BatchNormalization(momentum=0.9, name=f"bn{k}")(x)
            x = layers.Activation("relu", name=last_name if last_name and k == n_convs else f"relu{k}")(x)
    return x


def build_cnn(config: CNNConfig = DEFAULT_CONFIG, name: str = "default") -> keras.Model:
    """The `default` family; `training.search` explores `CNNConfig`s."""
    if len(config.filters) != len(config.convs_per_stage):
        raise ValueError(
            f"filters has {len(config.filters)} stages but convs_per_stage has {len(config.convs_per_stage)}."
        )
    inputs, x = _inputs()
    x = conv_stages(x, config.filters, config.convs_per_stage, config.stem_stride, last_name=GRADCAM_LAYER)
    x = layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(x)
    if config.dense_units:
        x = layers.Dense(config.dense_units, activation="relu", name="dense")(x)
    x = layers.Dropout(config.dropout, name="dropout")(x)
    logit = layers.Dense(1, name=LOGIT_LAYER)(x)
    p_fake = layers.Activation("sigmoid", name=OUTPUT_LAYER, dtype="float32")(logit)
    return keras.Model(inputs, p_fake, name=name)


def build_seed() -> keras.Model:
    """Exactly the original project's CNN (Dense(1, sigmoid) split into a logit and a sigmoid)."""
    inputs, x = _inputs()
    for i, width in enumerate((32, 64, 128), start=1):
        x = layers.Conv2D(width, 3, activation="relu", name=GRADCAM_LAYER if i == 3 else f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
        x = layers.Dropout(0.25, name=f"drop{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(128, activation="relu", name="dense")(x)
    x = layers.BatchNormalization(name=FEATURES_LAYER)(x)
    x = layers.Dropout(0.5, name="dropout")(x)
    logit = layers.Dense(1, name=LOGIT_LAYER)(x)
    p_fake = layers.Activation("sigmoid", name=OUTPUT_LAYER, dtype="float32")(logit)
    return keras.Model(inputs, p_fake, name="seed")


@dataclass(frozen=True)
class HybridConfig:
    """A small hybrid vision transformer: a convolutional stem down to 8x8 tokens, then attention blocks.

    The stem keeps full resolution for its first stage (CIFAKE's evidence sits in high frequencies) and
    halves it between stages; attention then mixes the 64 tokens globally, which a CNN of this size does
    not (another kind of network, whose mistakes correlate less with the CNN's, for an ensemble)."""

    stem_filters: tuple[int, ...] = (32, 64, 96)  # one entry per stage: 32, 16, 8 px; the last is the token width
    stem_convs: tuple[int, ...] = (2, 1, 1)  # 3x3 conv-BN-ReLU per stage
    depth: int = 4  # attention blocks
    heads: int = 4
    mlp_ratio: int = 2  # hidden width of each block's MLP, in token widths
    dropout: float = 0.0  # before the logit


HYBRID_CONFIG = HybridConfig()


def _attention_block(x, width: int, config: HybridConfig, i: int):
    """Pre-norm transformer block: x + MHA(LN(x)), then x + MLP(LN(x)). (N, T, width) -> same.

    SiLU rather than GELU in the MLP: Keras exports exact GELU through Erfc, which ONNX Runtime lacks."""
    y = layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_ln1")(x)
    y = layers.MultiHeadAttention(config.heads, width // config.heads, name=f"block{i}_attention")(y, y)
    x = layers.Add(name=f"block{i}_add1")([x, y])
    y = layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_ln2")(x)
    y = layers.Dense(width * config.mlp_ratio, activation="silu", name=f"block{i}_mlp1")(y)
    y = layers.Dense(width, name=f"block{i}_mlp2")(y)
    return layers.Add(name=f"block{i}_add2")([x, y])


def build_hybrid(config: HybridConfig = HYBRID_CONFIG, name: str = "hybrid") -> keras.Model:
    """Conv stem -> 8x8 tokens -> attention blocks; `last_conv` is the final tokens laid out as an 8x8
    map (Grad-CAM reads it as pytorch-grad-cam's reshape transform does for ViTs)."""
    if len(config.stem_filters) != len(config.stem_convs):
        raise ValueError(f"stem_filters has {len(config.stem_filters)} stages but stem_convs has "
                         f"{len(config.stem_convs)}.")
    inputs, x = _inputs()
    x = conv_stages(x, config.stem_filters, config.stem_convs)
    side, width = x.shape[1], x.shape[-1]
    x = layers.Reshape((side * side, width), name="tokens")(x)
    x = PositionEmbedding(name="positions")(x)
    for i in range(1, config.depth + 1):
        x = _attention_block(x, width, config, i)
    x = layers.LayerNormalization(epsilon=1e-6, name="final_ln")(x)
    x = layers.Reshape((side, side, width), name=GRADCAM_LAYER)(x)
    x = layers.GlobalAveragePooling2D(name=FEATURES_LAYER)(x)
    x = layers.Dropout(config.dropout, name="dropout")(x)
    logit = layers.Dense(1, name=LOGIT_LAYER)(x)
    p_fake = layers.Activation("sigmoid", name=OUTPUT_LAYER, dtype="float32")(logit)
    return keras.Model(inputs, p_fake, name=name)


def build_model(name: str, config: CNNConfig | None = None) -> keras.Model:
    if name == "seed":
        return build_seed()
    if name == "default":
        return build_cnn(config or DEFAULT_CONFIG, name="default")
    if name == "hybrid":
        return build_hybrid()
    raise ValueError(f"model must be 'default', 'seed' or 'hybrid'; got {name!r}.")


def count_flops(model: keras.Model) -> int:
    """Multiply-adds x 2 of the conv and dense layers for one image (the rest is negligible)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            c_in = layer.input.shape[-1]
            total += 2 * h * w * c_out * kh * kw * c_in
        elif isinstance(layer, layers.Dense):
            tokens = layer.input.shape[1] if len(layer.input.shape) == 3 else 1
            total += 2 * tokens * layer.input.shape[-1] * layer.units
        elif isinstance(layer, layers.MultiHeadAttention):  # q, k, v, output projections + the two products
            query = layer.input[0] if isinstance(layer.input, (list, tuple)) else layer.input
            tokens, width = query.shape[1], query.shape[-1]
            total += 2 * tokens * width * width * 4 + 2 * 2 * tokens * tokens * width
    return int(total)
