"""Small helpers about Keras models shared by the papers."""

from __future__ import annotations

import math

import keras


def count_trainable_params(*models: keras.Model) -> int:
    """Total number of trainable parameters of the given models."""
    return sum(math.prod(w.shape) for model in models for w in model.trainable_weights)
