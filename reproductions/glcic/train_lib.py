"""GLCIC training: three phases, the completion network, and the context discriminators.

The paper's schedule, in one run (the phase follows from the step, so it
survives a resume):
  phase 0, "completion"     steps [0, T_C): the completion network alone, masked MSE;
  phase 1, "discriminator"  steps [T_C, T_C + T_D): the discriminators alone;
  phase 2, "joint"          the rest: both, with
      L_C = MSE + alpha * BCE(D(composite), real)
      L_D = alpha * (BCE(D(real), real) + BCE(D(composite), fake)),   alpha = 4e-4.

The MSE is the mean over all pixels of mask * (C(x) - x)^2 in [0, 1] units,
as in the public ports; the discriminators see the composite (prediction in
the hole, known pixels elsewhere), never the raw output. Their local patch
is the 128x128 box centred on the hole for completed images and a random
128x128 box for real ones, cut per sample inside the step.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from common import data as data_lib
from common import errors
from common import experiment
from common import losses
from common import masks
from common import model_utils
from common import patches
from common import run_configs
from common import train_loop
from common.config_flags import option
from reproductions.glcic import masks as glcic_masks
from reproductions.glcic import model as model_lib

PHASES = ("completion", "discriminator", "joint")
OPTIMIZERS = ("adadelta", "adam")
MASK_TYPES = ("box", "strokes", "matched_strokes")


@dataclasses.dataclass(frozen=True)
class Config:
    """The paper's own settings (the run's settings live in common.run_configs.RunConfig)."""

    # Fields a run may change when it is resumed (optimizer settings, file locations);
    # any other change is refused (common.experiment.resume_changes).
    RESUMABLE: ClassVar[tuple[str, ...]] = ("learning_rate", "rho", "epsilon", "beta1")

    # The paper: batch 96; T_C = 90,000, T_D = 10,000, 500,000 iterations in all.
    # XLA off: its CPU convolutions, above all the input gradients of the
    # discriminator's stride-2 convolutions, make every phase slower on a CPU
    # (docs/performance.md); --jit_compile turns it on.
    RUN_DEFAULTS: ClassVar[dict[str, int | bool]] = {"batch_size": 96, "num_steps": 500_000,
                                                      "jit_compile": False}

    image_size: int = option(256, "Side of the training crops (the global discriminator's "
                             "input).")
    local_size: int = option(128, "Side of the local discriminator's patch.")
    mask_type: str = option("box", "box: one rectangle of sides --hole_min..--hole_max (the "
                            "paper's); strokes: free-form strokes whose hole area is uniform "
                            "over 1-60 % (the NVIDIA masks' bins); matched_strokes: the same, "
                            "thin for small holes and thick for large ones, as deep as the "
                            "NVIDIA masks in each bin. The local discriminator's "
                            "patch is centred on the hole's bounding box either way.",
                            choices=MASK_TYPES)
    hole_min: int = option(96, "Smallest hole side (width and height are drawn "
                           "independently).")
    hole_max: int = option(128, "Largest hole side.")
    shorter_side_min: int = option(256, "Images are resized so their shorter side is a random "
                                   "value in [min, max], then cropped.")
    shorter_side_max: int = option(384, "See --shorter_side_min.")
    alpha: float = option(4e-4, "Weight of the adversarial losses (of both networks).")
    completion_steps: int = option(90_000, "T_C: steps training the completion network alone "
                                   "with the MSE.")
    discriminator_steps: int = option(10_000, "T_D: steps training the discriminators alone; "
                                      "joint training follows until --num_steps.")
    optimizer: str = option("adadelta", "ADADELTA (paper) or Adam.", choices=OPTIMIZERS)
    # Keras' own Adadelta default is 1e-3; the paper's ADADELTA means 1.0.
    learning_rate: float = option(1.0, "Learning rate (1.0 for ADADELTA as in the paper; about "
                                  "2e-4 for Adam).")
    rho: float = option(0.95, "ADADELTA decay (Zeiler's 0.95; PyTorch's default is 0.9).")
    epsilon: float = option(1e-6, "ADADELTA epsilon.")
    beta1: float = option(0.5, "Adam beta1.")
    cn_channels: int = option(64, "Base width of the completion network (64 in the paper).")
    d_channels: int = option(64, "Base width of the discriminators (64 in the paper).")
    mean_pixel: Sequence[float] | None = option(None, "Training set mean colour R,G,B in [0, "
                                                "1]; empty: computed from --train_data when a "
                                                "run starts, and stored in its checkpoints.")
    mean_pixel_images: int = option(1000, "Images used to compute the mean pixel.")
    conv_padding: str = option("symmetric", "symmetric: stride-2 convolutions pad as Torch does "
                               "(the authors' released network); tf_same: TensorFlow's 'same', "
                               "only for runs trained with it.", choices=model_utils.PADDINGS)
    d_fc_activation: str = option("none", "What follows each discriminator branch's FC-1024: "
                                  "nothing (the paper's text), ReLU (the PyTorch port) or "
                                  "BatchNorm + ReLU (a public reconstruction).",
                                  choices=model_lib.FC_ACTIVATIONS)

    def __post_init__(self):
        for name in ("image_size", "local_size"):
            size = getattr(self, name)
            if size < 8 or size % 4 or (size & (size - 1)):
                raise errors.UserError(f"--{name} must be a power of two >= 8, got {size}.")
        if not self.local_size <= self.image_size:
            raise errors.UserError(f"--local_size ({self.local_size}) must not exceed --image_size "
                             f"({self.image_size}).")
        if not 1 <= self.hole_min <= self.hole_max <= self.local_size:
            raise errors.UserError(f"Need 1 <= --hole_min ({self.hole_min}) <= --hole_max "
                             f"({self.hole_max}) <= --local_size ({self.local_size}).")
        if not self.image_size <= self.shorter_side_min <= self.shorter_side_max:
            raise errors.UserError(f"Need --image_size ({self.image_size}) <= --shorter_side_min "
                             f"({self.shorter_side_min}) <= --shorter_side_max "
                             f"({self.shorter_side_max}).")
        if self.completion_steps < 0 or self.discriminator_steps < 0:
            raise errors.UserError("--completion_steps and --discriminator_steps must be >= 0.")
        model_utils.check_padding(self.conv_padding)
        if self.d_fc_activation not in model_lib.FC_ACTIVATIONS:
            raise errors.UserError(f"--d_fc_activation must be one of {model_lib.FC_ACTIVATIONS}, got "
                             f"{self.d_fc_activation!r}.")
        if self.optimizer not in OPTIMIZERS:
            raise errors.UserError(f"--optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}.")
        errors.check_positive(self, ("alpha", "learning_rate", "cn_channels", "d_channels",
                                     "mean_pixel_images"))
        if self.mean_pixel is not None and (
                len(self.mean_pixel) != 3 or not all(0 <= v <= 1 for v in self.mean_pixel)):
            raise errors.UserError(f"--mean_pixel must be three values in [0, 1] (R,G,B), got "
                             f"{self.mean_pixel}.")


def _optimizer(config: Config) -> keras.optimizers.Optimizer:
    if config.optimizer == "adadelta":
        return keras.optimizers.Adadelta(config.learning_rate, rho=config.rho,
                                         epsilon=config.epsilon)
    return keras.optimizers.Adam(config.learning_rate, beta_1=config.beta1)


class GLCICTask(train_loop.Task):
    """Completion network, context discriminators, optimizers and the mean pixel."""

    def __init__(self, config: Config):
        self.config = config
        self.completion = model_lib.build_completion_network(config.cn_channels,
                                                             padding=config.conv_padding)
        self.discriminator = model_lib.build_discriminator(
            config.image_size, config.local_size, config.d_channels,
            padding=config.conv_padding, fc_activation=config.d_fc_activation)
        self.c_optimizer = train_loop.make_optimizer(_optimizer(config))
        self.d_optimizer = train_loop.make_optimizer(_optimizer(config))
        # The training set's mean colour in [0, 1]: subtracted from the input
        # and used as the hole's fill. Part of the checkpoint, so a resumed
        # run and inference use the value the network was trained with.
        self.mean_pixel = tf.Variable(tf.fill([3], 0.5), trainable=False, name="mean_pixel")

    def checkpoint_items(self) -> dict[str, object]:
        return {"completion": self.completion, "discriminator": self.discriminator,
                "c_optimizer": self.c_optimizer, "d_optimizer": self.d_optimizer,
                "mean_pixel": self.mean_pixel}

    def build_optimizers(self) -> None:
        self.c_optimizer.build(self.completion.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def phase_at(self, step: int) -> int:
        if step < self.config.completion_steps:
            return 0
        if step < self.config.completion_steps + self.config.discriminator_steps:
            return 1
        return 2

    def phase_name(self, phase: int) -> str:
        return PHASES[phase]

    def network_input(self, image: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """[0, 1] image minus the mean pixel, hole set to 0 (the mean colour), plus the mask."""
        centered = ((image + 1.0) / 2.0 - self.mean_pixel) * (1.0 - mask)
        return tf.concat([centered, mask], axis=-1)

    def complete(self, image: tf.Tensor, mask: tf.Tensor,
                 training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        """Returns (raw output, composite), both in [0, 1]."""
        output = tf.cast(self.completion(self.network_input(image, mask), training=training),
                         tf.float32)
        composite = mask * output + (1.0 - mask) * (image + 1.0) / 2.0
        return output, composite

    def discriminate(self, images: tf.Tensor, corners: tf.Tensor) -> tf.Tensor:
        """Logits of [-1, 1] images with their local patches at `corners`."""
        local = patches.crop_patches(images, corners, self.config.local_size)
        return tf.cast(self.discriminator([images, local], training=True), tf.float32)

    def train_step(self, batch: Mapping[str, tf.Tensor], phase: int) -> dict[str, tf.Tensor]:
        config = self.config
        image, mask = batch["image"], batch["mask"]
        target = (image + 1.0) / 2.0
        train_completion, train_discriminator = phase in (0, 2), phase in (1, 2)
        with tf.GradientTape() as c_tape, tf.GradientTape() as d_tape:
            output, composite = self.complete(image, mask, training=True)
            mse = losses.masked_l2(output, target, mask, normalize="all")
            result = {"mse": mse}
            c_loss = mse
            if train_discriminator:
                real_logits = self.discriminate(image, batch["real_corner"])
                fake_logits = self.discriminate(composite * 2.0 - 1.0, batch["fake_corner"])
                d_loss = config.alpha * losses.discriminator_bce_loss(real_logits, fake_logits)
                result["d_loss"] = d_loss
                if phase == 2:
                    adversarial = losses.generator_bce_loss(fake_logits)
                    c_loss = mse + config.alpha * adversarial
                    result.update(adversarial=adversarial, c_loss=c_loss)
        if train_completion:
            train_loop.update(self.c_optimizer, c_tape, c_loss, self.completion)
        if train_discriminator:
            train_loop.update(self.d_optimizer, d_tape, d_loss, self.discriminator)
        return result

    def predict(self, batch: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        image = tf.convert_to_tensor(batch["image"], tf.float32)
        mask = tf.convert_to_tensor(batch["mask"], tf.float32)
        output, composite = self.complete(image, mask, training=False)
        filled = (1.0 - mask) * image + mask * (self.mean_pixel * 2.0 - 1.0)
        return {"input": filled, "output": output * 2.0 - 1.0,
                "composite": composite * 2.0 - 1.0, "target": image, "mask": mask}


def build_task(config: Config) -> GLCICTask:
    return GLCICTask(config)


def parameter_counts(task: GLCICTask) -> dict[str, int]:
    """Trainable parameters; the discriminator counts global, local and the final layer."""
    return model_utils.parameter_counts(task.completion, task.discriminator)


def example_fn(config: Config, seed: int, batch_size: int) -> data_lib.ExampleFn:
    """One hole per image (a box with sides drawn independently, or strokes), and the two
    local patch corners (the fake one centred on the hole's bounding box)."""
    del seed, batch_size

    def glcic_example(image, example_seed, index):
        del index
        mask_seed = tf.random.experimental.stateless_fold_in(example_seed, 0)
        if config.mask_type in ("strokes", "matched_strokes"):
            mask = masks.strokes_by_area_mask(
                mask_seed, config.image_size,
                depth_matched=config.mask_type == "matched_strokes")
        else:
            mask, _ = glcic_masks.glcic_hole_and_local_box(
                mask_seed, config.image_size, (config.hole_min, config.hole_max),
                config.local_size)
        return {"image": image, "mask": mask,
                "fake_corner": patches.hole_centered_corner(mask, config.local_size),
                "real_corner": patches.random_corner(
                    tf.random.experimental.stateless_fold_in(example_seed, 1),
                    config.image_size, config.local_size)}
    return glcic_example


def paper_input(config: Config) -> experiment.PaperInput:
    """Shorter side to a random size in [256, 384], random 256x256 crop; then the hole."""
    policy = data_lib.CropPolicy(crop_size=config.image_size,
                                 shorter_side=(config.shorter_side_min, config.shorter_side_max))
    return experiment.PaperInput(policy=policy, example_fn=functools.partial(example_fn, config))


def set_mean_pixel(task: GLCICTask, config: Config, data: run_configs.DataConfig,
                   resuming: bool) -> None:
    """A new run stores the mean pixel (given, or computed from the training data)."""
    if resuming:
        return  # restored from the checkpoint with everything else
    if config.mean_pixel is not None:
        value = np.asarray(config.mean_pixel, np.float32)
    else:
        value = data_lib.mean_pixel(data.train_data, paper_input(config).policy,
                                    config.mean_pixel_images, seed=data.seed)
    task.mean_pixel.assign(value)
    logging.info("Mean pixel (RGB, [0, 1]): %s", [round(float(v), 4) for v in value])


def describe(config: Config) -> str:
    """The phase boundaries, for the log line that opens a run."""
    return (f"phases: completion to step {config.completion_steps}, discriminators to step "
            f"{config.completion_steps + config.discriminator_steps}, then joint")
