"""Context Encoders training: the task (train step, prediction) and its data.

The objective, exactly as the official train.lua optimises it:

  L_G = wtl2 * mean(W * (G(x) - x_c)^2) + (1 - wtl2) * BCE(D(G(x)), real)
  L_D = BCE(D(x_c), real) + BCE(D(G(x)), fake)

with wtl2 = 0.999 and W = overlap_weight (10) on the 4-px ring of the 64x64
centre patch, 1 inside. One D update and one G update per step; as in the
official code, the G update reuses D's forward pass on the fake from *before*
D's update, so one forward pass of both networks serves both gradients.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar, Mapping

import keras
import tensorflow as tf

from common import data as data_lib
from common import errors
from common import experiment
from common import losses
from common import masks
from common import model_utils
from common import patches
from common import train_loop
from common.config_flags import option
from reproductions.context_encoder import masks as region_masks
from reproductions.context_encoder import model as model_lib

FILLS = {"mean_pixel": masks.IMAGENET_MEAN_FILL, "zero": masks.GRAY_FILL}


@dataclasses.dataclass(frozen=True)
class Config:
    """The paper's own settings (the run's settings live in common.run_configs.RunConfig)."""

    # Fields a run may change when it is resumed (optimizer settings, file locations);
    # any other change is refused (common.experiment.resume_changes).
    RESUMABLE: ClassVar[tuple[str, ...]] = ("lr_g", "lr_d", "beta1")

    # Official schedule: batch 64; 500 epochs of Paris StreetView (14,900 images,
    # 232 batches an epoch) = 116,000 steps. XLA on: it makes this step about five
    # times faster on a CPU (docs/performance.md); --nojit_compile turns it off.
    RUN_DEFAULTS: ClassVar[dict[str, int | bool]] = {"batch_size": 64, "num_steps": 116_000,
                                                      "jit_compile": True}

    variant: str = option("center", "center: 64x64 centre hole, predicts the centre patch; "
                          "random_region: noise masks anywhere, predicts the whole image.",
                          choices=model_lib.VARIANTS)
    adversarial: bool = option(True, "Train with the discriminator (joint L2 + adversarial "
                               "loss); --noadversarial gives the L2-only model.")
    wtl2: float = option(0.999, "Weight of the L2 loss; the adversarial loss gets 1 - wtl2.")
    overlap: int = option(4, "Width in px of the visible ring around the centre hole.")
    overlap_weight: float = option(10.0, "L2 weight on that ring (1 inside).")
    # Official: 10x the discriminator's rate when 0 < wtl2 < 1.
    lr_g: float = option(2e-3, "Generator Adam learning rate.")
    lr_d: float = option(2e-4, "Discriminator Adam learning rate.")
    beta1: float = option(0.5, "Adam beta1 of both optimizers.")
    ngf: int = option(64, "Decoder filters of the last layer (x8 at the bottleneck).")
    nef: int = option(64, "Encoder filters of the first layer.")
    ndf: int = option(64, "Discriminator filters of the first layer.")
    bottleneck: int = option(4000, "Channels of the bottleneck.")
    image_size: int = 128  # the networks' fixed input side
    hole_size: int = 64  # the centre patch side
    load_size: int = option(350, "Images are resized to this shorter side, then cropped to "
                            "128.")
    fill: str = option("mean_pixel", "Value of the hole pixels: the ImageNet mean pixel "
                       "(official) or 0 (gray).", choices=tuple(sorted(FILLS)))
    mask_per_batch: bool = option(False, "random_region: one mask for the whole batch, as the "
                                  "official code does (default: one per image).")

    def __post_init__(self):
        if self.variant not in model_lib.VARIANTS:
            raise errors.UserError(f"--variant must be one of {model_lib.VARIANTS}, got {self.variant!r}.")
        if not 0.0 < self.wtl2 <= 1.0:
            raise errors.UserError(f"--wtl2 must be in (0, 1], got {self.wtl2}.")
        if self.fill not in FILLS:
            raise errors.UserError(f"--fill must be one of {sorted(FILLS)}, got {self.fill!r}.")
        if not 0 <= 2 * self.overlap < self.hole_size:
            raise errors.UserError(f"--overlap must be in [0, hole_size / 2), got {self.overlap}.")
        if self.load_size < self.image_size:
            raise errors.UserError(f"--load_size ({self.load_size}) must be at least the crop "
                             f"size ({self.image_size}).")
        errors.check_positive(self, ("lr_g", "lr_d", "ngf", "nef", "ndf", "bottleneck"))


class ContextEncoderTask(train_loop.Task):
    """Generator, discriminator and their Adam optimizers. Build under strategy.scope()."""

    def __init__(self, config: Config):
        self.config = config
        self.generator = model_lib.build_generator(config.variant, config.ngf, config.nef,
                                                   config.bottleneck, config.image_size)
        self.g_optimizer = train_loop.make_optimizer(keras.optimizers.Adam(
            config.lr_g, beta_1=config.beta1, beta_2=0.999, epsilon=1e-8))
        self.discriminator = None
        self.d_optimizer = None
        if config.adversarial:
            self.discriminator = model_lib.build_discriminator(config.variant, config.ndf)
            self.d_optimizer = train_loop.make_optimizer(keras.optimizers.Adam(
                config.lr_d, beta_1=config.beta1, beta_2=0.999, epsilon=1e-8))
        self.fill = FILLS[config.fill]
        self.center_box = masks.center_box(config.image_size, config.hole_size)
        # Center: 10x L2 weight on the visible ring of the predicted patch.
        # Random region: a uniform weight over the whole image (official
        # README: useOverlapPred=0).
        self.l2_weights = (masks.overlap_weights(config.hole_size, config.overlap,
                                                 config.overlap_weight)[None]
                           if config.variant == "center" else None)

    def checkpoint_items(self) -> dict[str, object]:
        items = {"generator": self.generator, "g_optimizer": self.g_optimizer}
        if self.discriminator is not None:
            items.update(discriminator=self.discriminator, d_optimizer=self.d_optimizer)
        return items

    def phase_name(self, phase: int) -> str:
        del phase
        return "joint" if self.config.adversarial else "l2_only"

    def build_optimizers(self) -> None:
        self.g_optimizer.build(self.generator.trainable_variables)
        if self.discriminator is not None:
            self.d_optimizer.build(self.discriminator.trainable_variables)

    def network_input(self, image: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """The image with its hole filled (no mask channel, as in the paper)."""
        return masks.apply_fill(image, mask, self.fill)

    def target(self, image: tf.Tensor) -> tf.Tensor:
        """What the generator must output: the centre patch, or the whole image."""
        if self.config.variant != "center":
            return image
        return patches.center_patch(image, self.center_box)

    def train_step(self, batch: Mapping[str, tf.Tensor], phase: int) -> dict[str, tf.Tensor]:
        del phase  # Context Encoders trains in one phase.
        config = self.config
        inputs = self.network_input(batch["image"], batch["mask"])
        real = self.target(batch["image"])
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = self.generator(inputs, training=True)
            l2 = losses.weighted_l2(fake, real, self.l2_weights)
            result = {"l2": l2}
            if config.adversarial:
                real_logits = self.discriminator(real, training=True)
                fake_logits = self.discriminator(fake, training=True)
                d_loss = losses.discriminator_bce_loss(real_logits, fake_logits)
                adversarial = losses.generator_bce_loss(fake_logits)
                g_loss = config.wtl2 * l2 + (1.0 - config.wtl2) * adversarial
                result.update(adversarial=adversarial, d_loss=d_loss)
            else:
                g_loss = l2
            result["g_loss"] = g_loss
        train_loop.update(self.g_optimizer, g_tape, g_loss, self.generator)
        if config.adversarial:
            train_loop.update(self.d_optimizer, d_tape, d_loss, self.discriminator)
        return result

    def predict(self, batch: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        image = tf.convert_to_tensor(batch["image"], tf.float32)
        mask = tf.convert_to_tensor(batch["mask"], tf.float32)
        inputs = self.network_input(image, mask)
        output = tf.cast(self.generator(inputs, training=False), tf.float32)
        if self.config.variant == "center":
            return patches.center_predictions(inputs, image, mask, output, self.center_box)
        composite = mask * output + (1.0 - mask) * image
        return {"input": inputs, "output": output, "composite": composite, "target": image,
                "mask": mask}


def build_task(config: Config) -> ContextEncoderTask:
    return ContextEncoderTask(config)


def parameter_counts(task: ContextEncoderTask) -> dict[str, int]:
    """Trainable parameters of the generator and discriminator (0 without one)."""
    return model_utils.parameter_counts(task.generator, task.discriminator)


def paper_input(config: Config) -> experiment.PaperInput:
    """Official donkey_folder.lua: shorter side to loadSize, random crop, random flip; then masks."""
    policy = data_lib.CropPolicy(crop_size=config.image_size,
                                 shorter_side=(config.load_size, config.load_size), flip=True)
    return experiment.PaperInput(policy=policy,
                                 example_fn=functools.partial(example_fn, config))


def example_fn(config: Config, seed: int, batch_size: int) -> data_lib.ExampleFn:
    """The masking step of the pipeline: adds the variant's mask to each image."""
    if config.variant == "center":
        def center_example(image, example_seed, index):
            del example_seed, index
            return {"image": image,
                    "mask": masks.center_mask(config.image_size, config.hole_size, config.overlap)}
        return center_example

    def random_region_example(image, example_seed, index):
        if config.mask_per_batch:
            # The official code draws one mask per batch; examples of the same
            # batch share a seed.
            example_seed = data_lib.element_seed(seed + 1, index // batch_size)
        return {"image": image,
                "mask": region_masks.random_region_mask(example_seed, config.image_size)}
    return random_region_example


def describe(config: Config) -> str:
    """The variant, for the log line that opens a run."""
    return config.variant + ("" if config.adversarial else ", L2 only")
