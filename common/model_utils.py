"""Small helpers about Keras models shared by the papers."""

from __future__ import annotations

import math

import keras
import tensorflow as tf


def count_trainable_params(*models: keras.Model) -> int:
    """Total number of trainable parameters of the given models."""
    return sum(math.prod(w.shape) for model in models for w in model.trainable_weights)


def parameter_counts(generator: keras.Model,
                     discriminator: keras.Model | None = None) -> dict[str, int]:
    """What `train.py --dry_run` prints: trainable parameters (0 without a discriminator)."""
    return {"generator_params": count_trainable_params(generator),
            "discriminator_params": (count_trainable_params(discriminator)
                                     if discriminator is not None else 0)}


def normal_initializer(mean: float = 0.0, stddev: float = 0.02) -> keras.initializers.Initializer:
    """A *fresh* N(mean, stddev) initializer; call once per layer.

    An unseeded Keras 3 initializer fixes its seed when it is constructed. One
    instance shared by several layers would give every layer of the same shape
    the same initial weights, and one built at import time would ignore
    `keras.utils.set_random_seed`. A new instance per layer, made after the
    seed is set, avoids both.
    """
    return keras.initializers.RandomNormal(mean=mean, stddev=stddev)


def batch_norm(name: str, gamma_initializer: keras.initializers.Initializer | str = "ones"
               ) -> keras.layers.BatchNormalization:
    """Torch-default BatchNorm (momentum 0.1, i.e. Keras 0.9; eps 1e-5).

    Built inside a strategy's scope with several replicas (`--strategy=mirrored`
    or `multi_worker`), the batch statistics are synchronised across replicas,
    so they are those of the global batch, as when the papers trained on one
    GPU. On one device the ordinary (cheaper, more precise) moments are used.
    """
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5,
                                           gamma_initializer=gamma_initializer,
                                           synchronized=replicas > 1, name=name)
