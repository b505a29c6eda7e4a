"""Structural Inpainting training: Context Encoders with a structural (perceptual) loss.

The port's two stages, in one run (the stage follows from the step):
  stage 0, "structural"  steps [0, structural_steps): the generator alone,
      L_struct = L_rec + lambda_feat * L_feat, Adam 2e-4 (beta1 0.5);
  stage 1, "joint"       the rest: a fresh Adam at 2e-5 for the generator with
      L_G = L_struct + lambda_adv * BCE(D(prediction), real), and the
      discriminator with L_D = lambda_adv * (BCE(D(real), real) + BCE(D(prediction), fake)),
      Adam 2e-5; lambda_adv = 0.1.

L_rec is the MSE of the 64x64 centre prediction with 10x weight on its 4-px
ring; L_feat compares VGG16 features (see losses.py). Images are handled in
[0, 1] units, as in the port. Without the adversarial loss (the ablations
"L2" and "L2 + feature") the whole run is stage 0.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import ClassVar, Mapping, Sequence

import keras
import tensorflow as tf

from common import data as data_lib
from common import errors
from common import experiment
from common import losses as common_losses
from common import masks
from common import model_utils
from common import patches
from common import train_loop
from common import vgg
from common.config_flags import option
from reproductions.context_encoder import model as ce_model
from reproductions.structural_inpainting import losses
from reproductions.structural_inpainting import model as model_lib

PHASES = ("structural", "joint")  # the paper's two stages
IMAGE_SIZE, HOLE_SIZE = 128, 64
PORT_GRAY_FILL = 0.437  # the port's hole value, in [0, 1]
FEATURE_INPUTS = ("composite", "patch")


@dataclasses.dataclass(frozen=True)
class Config:
    """The paper's own settings (the run's settings live in common.run_configs.RunConfig)."""

    # Fields a run may change when it is resumed (optimizer settings, file locations);
    # any other change is refused (common.experiment.resume_changes).
    RESUMABLE: ClassVar[tuple[str, ...]] = ("lr", "lr_joint", "lr_d", "beta1", "vgg_weights")

    # The port: batch 64; 50 epochs of the structural loss, then 10 joint, on
    # CelebA's 162,770 training images (2,543 steps an epoch). XLA off: on
    # CPUs with AVX-512 it makes both stages slower (1.05-1.4 times in float32,
    # 1.6-2.6 times in bfloat16), though an AVX2 CPU ran them 1.5 times faster
    # with it (docs/performance.md); --jit_compile turns it on.
    RUN_DEFAULTS: ClassVar[dict[str, int | bool]] = {"batch_size": 64, "num_steps": 152_580,
                                                      "jit_compile": False}

    architecture: str = option("port", "port: the TF port's networks (no normalisation, ReLU "
                               "output); context_encoder: Pathak et al.'s (use "
                               "--bottleneck=4000 for theirs).", choices=model_lib.ARCHITECTURES)
    output_activation: str = option("relu", "The port generator's last activation: relu (the "
                                    "port's) or linear (runs written before the suite "
                                    "followed the port).", choices=model_lib.OUTPUT_ACTIVATIONS)
    d_logit_relu: bool = option(False, "ReLU the port discriminator's logit as the port does "
                                "(no gradient through a negative logit); off: a linear logit.")
    lambda_feat: float = option(1.0, "Weight of the VGG16 feature loss; 0 turns it off.")
    feature_layers: Sequence[str] = option(("conv1_1", "conv2_1", "conv3_1"), "VGG16 taps.")
    feature_weights: Sequence[float] = option((1.0, 1.0, 1.0), "One weight per tap.")
    feature_on: str = option("composite", "composite: VGG sees the prediction pasted into its "
                             "128x128 context; patch: the 64x64 patches (the port).",
                             choices=FEATURE_INPUTS)
    lambda_adv: float = option(0.1, "Weight of the adversarial losses; 0: no discriminator.")
    overlap: int = option(4, "Width of the visible ring around the 56x56 hole.")
    overlap_weight: float = option(10.0, "Reconstruction weight on that ring.")
    structural_steps: int = option(127_150, "Steps of the first stage (structural loss only); "
                                   "joint adversarial training follows until --num_steps.")
    lr: float = option(2e-4, "Generator Adam rate in the first stage.")
    lr_joint: float = option(2e-5, "Generator Adam rate in the joint stage (a fresh Adam).")
    lr_d: float = option(2e-5, "Discriminator Adam rate.")
    beta1: float = option(0.5, "Adam beta1.")
    width: int = option(64, "Channels of the first generator layer (the discriminator uses "
                        "half).")
    bottleneck: int = option(2000, "Bottleneck channels.")
    vgg_weights: str | None = option("imagenet", "VGG16 weights: 'imagenet' (Keras downloads "
                                     "them), a local notop .weights.h5 file, or 'none' (random; "
                                     "tests only).", none="none")
    shorter_side_min: int = option(128, "Images are resized so their shorter side is a random "
                                   "value in [min, max], then cropped to 128.")
    shorter_side_max: int = option(200, "See --shorter_side_min.")

    def __post_init__(self):
        if self.architecture not in model_lib.ARCHITECTURES:
            raise errors.UserError(f"--architecture must be one of {model_lib.ARCHITECTURES}, got "
                             f"{self.architecture!r}.")
        if self.output_activation not in model_lib.OUTPUT_ACTIVATIONS:
            raise errors.UserError(f"--output_activation must be one of "
                                   f"{model_lib.OUTPUT_ACTIVATIONS}, got {self.output_activation!r}.")
        if self.feature_on not in FEATURE_INPUTS:
            raise errors.UserError(f"--feature_on must be one of {FEATURE_INPUTS}, got "
                             f"{self.feature_on!r}.")
        errors.check_non_negative(self, ("lambda_feat", "lambda_adv"))  # 0 turns a loss off
        if len(self.feature_layers) != len(self.feature_weights):
            raise errors.UserError(f"--feature_weights needs one weight per layer of --feature_layers "
                             f"({len(self.feature_layers)}), got {len(self.feature_weights)}.")
        if not 0 <= 2 * self.overlap < HOLE_SIZE:
            raise errors.UserError(f"--overlap must be in [0, {HOLE_SIZE // 2}), got {self.overlap}.")
        if self.structural_steps < 0:
            raise errors.UserError(f"--structural_steps must be >= 0, got {self.structural_steps}.")
        errors.check_positive(self, ("lr", "lr_joint", "lr_d", "width", "bottleneck"))
        if not IMAGE_SIZE <= self.shorter_side_min <= self.shorter_side_max:
            raise errors.UserError(f"Need {IMAGE_SIZE} <= --shorter_side_min <= --shorter_side_max, got "
                             f"{self.shorter_side_min}, {self.shorter_side_max}.")

    @property
    def adversarial(self) -> bool:
        return self.lambda_adv > 0


def _adam(learning_rate: float, beta1: float) -> keras.optimizers.Optimizer:
    """Adam with TF1's `AdamOptimizer` epsilon (1e-8), as the port; Keras' default is 1e-7."""
    return train_loop.make_optimizer(keras.optimizers.Adam(learning_rate, beta_1=beta1,
                                                           epsilon=1e-8))


class StructuralTask(train_loop.Task):
    """Generator, optional discriminator, optimizers, and a frozen VGG16 (not checkpointed)."""

    def __init__(self, config: Config):
        self.config = config
        if config.architecture == "port":
            self.generator = model_lib.build_generator(config.width, config.bottleneck,
                                                       config.output_activation)
        else:
            self.generator = ce_model.build_generator("center", ngf=config.width,
                                                      nef=config.width,
                                                      bottleneck=config.bottleneck)
        self.g_optimizer = _adam(config.lr, config.beta1)
        self.discriminator = self.g_joint_optimizer = self.d_optimizer = None
        if config.adversarial:
            self.discriminator = (model_lib.build_discriminator(config.width // 2,
                                                                config.d_logit_relu)
                                  if config.architecture == "port"
                                  else ce_model.build_discriminator("center", ndf=config.width))
            # The port's joint stage trains the generator with a second Adam
            # (fresh moments) at the lower rate.
            self.g_joint_optimizer = _adam(config.lr_joint, config.beta1)
            self.d_optimizer = _adam(config.lr_d, config.beta1)
        self.feature_extractor = None
        if config.lambda_feat > 0:
            self.feature_extractor = vgg.FeatureExtractor(
                "vgg16", tuple(config.feature_layers), weights=config.vgg_weights)
            self.caveat = vgg.random_weights_caveat("vgg16", config.vgg_weights)
        self.feature_weights = dict(zip(config.feature_layers, config.feature_weights))
        self.center_box = masks.center_box(IMAGE_SIZE, HOLE_SIZE)
        self.ring_weights = masks.overlap_weights(HOLE_SIZE, config.overlap,
                                                  config.overlap_weight)[None]

    def checkpoint_items(self) -> dict[str, object]:
        items = {"generator": self.generator, "g_optimizer": self.g_optimizer}
        if self.discriminator is not None:
            items.update(discriminator=self.discriminator, g_joint_optimizer=self.g_joint_optimizer,
                         d_optimizer=self.d_optimizer)
        return items

    def build_optimizers(self) -> None:
        self.g_optimizer.build(self.generator.trainable_variables)
        if self.discriminator is not None:
            self.g_joint_optimizer.build(self.generator.trainable_variables)
            self.d_optimizer.build(self.discriminator.trainable_variables)

    def phase_at(self, step: int) -> int:
        return int(self.config.adversarial and step >= self.config.structural_steps)

    def phase_name(self, phase: int) -> str:
        return PHASES[phase]

    # The port works in [0, 1] with a gray fill and a ReLU output; Pathak et
    # al.'s networks in [-1, 1] with the mean-pixel fill and tanh. These four
    # conversions are the only places the two differ.
    def network_input(self, image: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        if self.config.architecture == "port":
            return (image + 1.0) / 2.0 * (1.0 - mask) + PORT_GRAY_FILL * mask
        return masks.apply_fill(image, mask, masks.IMAGENET_MEAN_FILL)

    def input_for_display(self, inputs: tf.Tensor) -> tf.Tensor:
        return inputs * 2.0 - 1.0 if self.config.architecture == "port" else inputs

    def prediction(self, inputs: tf.Tensor, training: bool) -> tf.Tensor:
        """The generator's 64x64 centre patch, in [0, 1] units."""
        output = tf.cast(self.generator(inputs, training=training), tf.float32)
        return output if self.config.architecture == "port" else (output + 1.0) / 2.0

    def discriminate(self, patch01: tf.Tensor) -> tf.Tensor:
        patch = patch01 if self.config.architecture == "port" else patch01 * 2.0 - 1.0
        return tf.cast(self.discriminator(patch, training=True), tf.float32)

    def feature_loss(self, prediction: tf.Tensor, image01: tf.Tensor) -> tf.Tensor:
        """L_feat of the prediction composited into its context, or of the bare patches."""
        if self.config.feature_on == "composite":
            region = masks.center_mask(IMAGE_SIZE, HOLE_SIZE, overlap=0)[None]
            composite = (region * patches.paste_center(prediction, IMAGE_SIZE, self.center_box)
                         + (1.0 - region) * image01)
            return losses.feature_reconstruction_loss(self.feature_extractor, composite, image01,
                                                      self.feature_weights)
        return losses.feature_reconstruction_loss(
            self.feature_extractor, prediction, patches.center_patch(image01, self.center_box),
            self.feature_weights)

    def train_step(self, batch: Mapping[str, tf.Tensor], phase: int) -> dict[str, tf.Tensor]:
        config = self.config
        image01 = (batch["image"] + 1.0) / 2.0
        target = patches.center_patch(image01, self.center_box)
        joint = phase == 1
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            prediction = self.prediction(self.network_input(batch["image"], batch["mask"]),
                                         training=True)
            reconstruction = common_losses.weighted_l2(prediction, target, self.ring_weights)
            structural = reconstruction
            result = {"reconstruction": reconstruction}
            if self.feature_extractor is not None:
                feature = self.feature_loss(prediction, image01)
                structural = reconstruction + config.lambda_feat * feature
                result["feature"] = feature
            result["structural"] = structural
            g_loss = structural
            if joint:
                real_logits, fake_logits = self.discriminate(target), self.discriminate(prediction)
                d_loss = config.lambda_adv * common_losses.discriminator_bce_loss(real_logits,
                                                                                 fake_logits)
                adversarial = common_losses.generator_bce_loss(fake_logits)
                g_loss = structural + config.lambda_adv * adversarial
                result.update(adversarial=adversarial, g_loss=g_loss, d_loss=d_loss)
        g_optimizer = self.g_joint_optimizer if joint else self.g_optimizer
        train_loop.update(g_optimizer, g_tape, g_loss, self.generator)
        if joint:
            train_loop.update(self.d_optimizer, d_tape, d_loss, self.discriminator)
        return result

    def predict(self, batch: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        image = tf.convert_to_tensor(batch["image"], tf.float32)
        mask = tf.convert_to_tensor(batch["mask"], tf.float32)
        inputs = self.network_input(image, mask)
        patch = self.prediction(inputs, training=False) * 2.0 - 1.0
        return patches.center_predictions(self.input_for_display(inputs), image, mask, patch,
                                         self.center_box)


def build_task(config: Config) -> StructuralTask:
    return StructuralTask(config)


def parameter_counts(task: StructuralTask) -> dict[str, int]:
    """Trainable parameters of the generator and discriminator; the frozen VGG is not counted."""
    return model_utils.parameter_counts(task.generator, task.discriminator)


def example_fn(config: Config, seed: int, batch_size: int) -> data_lib.ExampleFn:
    """The Context Encoders center region: 56x56 blanked inside the 64x64 centre."""
    del seed, batch_size

    def center_example(image, example_seed, index):
        del example_seed, index
        return {"image": image, "mask": masks.center_mask(IMAGE_SIZE, HOLE_SIZE, config.overlap)}
    return center_example


def paper_input(config: Config) -> experiment.PaperInput:
    """The port's ImageNet preprocessing: shorter side to a random size in [128, 200], random crop."""
    policy = data_lib.CropPolicy(crop_size=IMAGE_SIZE,
                                 shorter_side=(config.shorter_side_min, config.shorter_side_max))
    return experiment.PaperInput(policy=policy, example_fn=functools.partial(example_fn, config))


def describe(config: Config) -> str:
    """The networks and loss weights, for the log line that opens a run."""
    return (f"{config.architecture} networks; lambda_feat {config.lambda_feat:g}, "
            f"lambda_adv {config.lambda_adv:g}")
