"""Custom Keras layers a shipped model.keras may hold, registered under the "cifake" package so that
`keras.models.load_model` finds them wherever the model is loaded (training, Grad-CAM, benchmarks)
without the loader importing training code. Import this module before loading a model."""
from __future__ import annotations

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="cifake")
class PositionEmbedding(layers.Layer):
    """Adds a learned embedding per token position: (N, T, D) -> (N, T, D). The hybrid transformer's."""

    def build(self, input_shape):
        self.embedding = self.add_weight(shape=(1, input_shape[1], input_shape[2]), name="embedding",
                                         initializer=keras.initializers.RandomNormal(stddev=0.02))

    def call(self, tokens):
        return tokens + self.embedding
