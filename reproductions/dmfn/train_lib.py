"""DMFN training: the generator, the global + local discriminator, and the official losses.

Each step updates the discriminator and the generator once, both from one
forward pass of both networks (the generator's gradient goes through the
discriminator as it was before its update):

  L_G = pixel_weight * L1 + feature_weight * (L_self_guided + L_vgg_fm)
        + align_weight * L_align + gan_weight * L_RaGAN
        + dfm_weight * L_discriminator_fm
  L_D = RaGAN discriminator loss

all computed on the composite (the prediction in the hole, the known pixels
elsewhere), as the authors' code does. Adam for both networks, its rate halved
at `lr_decay_step`. The weights and rates are the fields of `Config`, whose
defaults are the official configs/*.yaml values.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import ClassVar, Mapping

import keras
import tensorflow as tf

from common import data as data_lib
from common import errors
from common import experiment
from common import image_files
from common import losses as common_losses
from common import masks
from common import model_utils
from common import patches
from common import train_loop
from common import vgg
from common.config_flags import option
from reproductions.dmfn import losses
from reproductions.dmfn import masks as dmfn_masks
from reproductions.dmfn import model as model_lib

MASK_TYPES = ("box", "irregular", "strokes", "matched_strokes")
BOX_POSITIONS = ("random", "center")


@dataclasses.dataclass(frozen=True)
class Config:
    """The paper's own settings (the run's settings live in common.run_configs.RunConfig)."""

    # Fields a run may change when it is resumed (optimizer settings, file locations);
    # any other change is refused (common.experiment.resume_changes).
    RESUMABLE: ClassVar[tuple[str, ...]] = ("lr", "beta1", "beta2", "lr_decay_step", "vgg_weights")

    # The authors' configuration: batch 16, 100,000 iterations. XLA off: its CPU
    # convolutions make this step slower on a CPU (docs/performance.md).
    RUN_DEFAULTS: ClassVar[dict[str, int | bool]] = {"batch_size": 16, "num_steps": 100_000,
                                                      "jit_compile": False}

    image_size: int = option(256, "Side of the training images.")
    local_size: int = option(128, "Side of the box hole (before shrinking) and of the local "
                             "discriminator's patch.")
    mask_type: str = option("box", "box: one rectangle; irregular: masks from --mask_dir; "
                            "strokes: free-form strokes whose hole area is uniform over 1-60 % "
                            "(the NVIDIA masks' bins, without their files); matched_strokes: the "
                            "same, thin for small holes and thick for large ones, as deep as the "
                            "NVIDIA masks in each bin.", choices=MASK_TYPES)
    box_position: str = option("random", "Where the box goes.", choices=BOX_POSITIONS)
    max_shrink: int = option(17, "In training each side of the box shrinks by a random "
                             "0..max_shrink px (the official 0-17).")
    mask_dir: str = option("", "Folder of mask images (white = hole) for "
                           "--mask_type=irregular.")
    invert_masks: bool = option(False, "The mask images are black = hole.")
    mask_augment: bool = option(False, "--mask_type=irregular: change each mask file by a "
                                "random crop (side 1/2-1), rotation, dilation (0-2 px) and "
                                "flips, as the partial-convolution protocol augments the NVIDIA "
                                "masks (the authors' code reads the files as they are).")
    random_crop: bool = option(False, "Square crop at a random place (scenes) instead of the "
                               "centre (faces).")
    dmfb: str = option("official", "official: the block as the authors coded it; paper: as "
                       "the paper's figure draws it.", choices=model_lib.DMFB_VARIANTS)
    generator_norm: str = option("instance", "instance: the authors' instance normalisation "
                                 "without parameters; batch: BatchNorm instead, an ablation that "
                                 "keeps each picture's colour level in the features "
                                 "(benchmarks/README.md, Irregular holes).",
                                 choices=model_lib.GENERATOR_NORMS)
    num_blocks: int = option(8, "DMFBs in the generator.")
    channels: int = option(64, "Base width of the generator (64).")
    d_channels: int = option(64, "Base width of the discriminator (64).")
    lr: float = option(2e-4, "Adam learning rate of both networks.")
    beta1: float = option(0.5, "Adam beta1.")
    beta2: float = option(0.999, "Adam beta2.")
    # MultiStepLR, gamma 0.5
    lr_decay_step: int = option(100_000, "The learning rate halves at this step.")
    pixel_weight: float = option(1.0, "L1 weight.")
    feature_weight: float = option(25.0, "Weight of the VGG19 self-guided regression + feature "
                                   "matching losses.")
    align_weight: float = option(1.0, "Geometrical alignment loss weight.")
    gan_weight: float = option(0.003, "Relativistic average GAN loss weight.")
    dfm_weight: float = option(5.0, "Discriminator feature matching weight.")
    official_align_grid: bool = option(False, "Use the official code's coordinate grid, whose "
                                       "two axes are both horizontal (a vertical shift goes "
                                       "unseen).")
    vgg_weights: str | None = option("imagenet", "VGG19 weights: 'imagenet' (Keras downloads "
                                     "them), a local notop .weights.h5 file, or 'none' (random; "
                                     "tests only).", none="none")
    vgg: str = option("vgg19", "Network of the feature losses: VGG19 (the authors'), or VGG16 "
                      "(same tap names relu1_1 ... relu5_1) where only VGG16 ImageNet weights "
                      "are at hand.", choices=("vgg19", "vgg16"))
    conv_padding: str = option("symmetric", "symmetric: stride-2 convolutions pad as PyTorch "
                               "does (the authors' network); tf_same: TensorFlow's 'same', only "
                               "for runs trained with it.", choices=model_utils.PADDINGS)

    def __post_init__(self):
        if self.mask_type not in MASK_TYPES:
            raise errors.UserError(f"--mask_type must be one of {MASK_TYPES}, got {self.mask_type!r}.")
        if self.box_position not in BOX_POSITIONS:
            raise errors.UserError(f"--box_position must be one of {BOX_POSITIONS}, got "
                             f"{self.box_position!r}.")
        if self.mask_dir and self.mask_type != "irregular":
            raise errors.UserError(f"--mask_dir is read only with --mask_type=irregular (got "
                             f"--mask_type={self.mask_type}): add that flag, or drop --mask_dir.")
        if self.mask_augment and self.mask_type != "irregular":
            raise errors.UserError(f"--mask_augment changes mask files, read only with "
                                   f"--mask_type=irregular (got --mask_type={self.mask_type}).")
        if self.mask_type == "irregular":
            if not self.mask_dir:
                raise errors.UserError("--mask_type=irregular needs --mask_dir (a folder of mask "
                                 "images, white = hole).")
            if not os.path.isdir(self.mask_dir):
                raise errors.UserError(f"--mask_dir {self.mask_dir!r} is not a folder.")
            if not image_files.has_image_file(self.mask_dir, masks.MASK_EXTENSIONS):
                raise errors.UserError(f"--mask_dir {self.mask_dir!r} holds no mask image (expected "
                                 f"{', '.join(masks.MASK_EXTENSIONS)}).")
        if self.vgg not in ("vgg19", "vgg16"):
            raise errors.UserError(f"--vgg must be vgg19 or vgg16, got {self.vgg!r}.")
        model_utils.check_padding(self.conv_padding)
        if self.dmfb not in model_lib.DMFB_VARIANTS:
            raise errors.UserError(f"--dmfb must be one of {model_lib.DMFB_VARIANTS}, got "
                             f"{self.dmfb!r}.")
        if self.generator_norm not in model_lib.GENERATOR_NORMS:
            raise errors.UserError(f"--generator_norm must be one of {model_lib.GENERATOR_NORMS}, "
                                   f"got {self.generator_norm!r}.")
        for name in ("image_size", "local_size"):
            size = getattr(self, name)
            if size < 8 or size & (size - 1):
                raise errors.UserError(f"--{name} must be a power of two >= 8, got {size}.")
        if self.local_size > self.image_size:
            raise errors.UserError(f"--local_size ({self.local_size}) must not exceed --image_size "
                             f"({self.image_size}).")
        if not 0 <= 2 * self.max_shrink < self.local_size:
            raise errors.UserError(f"--max_shrink must be in [0, local_size / 2), got {self.max_shrink}.")
        errors.check_non_negative(self, ("pixel_weight", "feature_weight", "align_weight",
                                         "gan_weight", "dfm_weight"))
        errors.check_positive(self, ("num_blocks", "channels", "d_channels", "lr",
                                     "lr_decay_step"))


def _adam(learning_rate: float, beta1: float, beta2: float,
          halve_at: int) -> keras.optimizers.Optimizer:
    # MultiStepLR in the official code steps every iteration, so update number
    # halve_at (0-based) is the first at half the rate. The optimizer's
    # iteration count plays that role; PiecewiseConstantDecay keeps the first
    # value up to and including its boundary, hence the - 1.
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
        [halve_at - 1], [learning_rate, learning_rate / 2])
    return train_loop.make_optimizer(keras.optimizers.Adam(
        schedule, beta_1=beta1, beta_2=beta2, epsilon=1e-8))


class DMFNTask(train_loop.Task):
    """Generator, discriminator, their optimizers, and a frozen VGG19 (not checkpointed)."""

    def __init__(self, config: Config):
        self.config = config
        self.generator = model_lib.build_generator(config.num_blocks, config.dmfb, config.channels,
                                                   padding=config.conv_padding,
                                                   norm=config.generator_norm)
        self.discriminator = model_lib.build_discriminator(config.image_size, config.local_size,
                                                           config.d_channels,
                                                           padding=config.conv_padding)
        self.g_optimizer = _adam(config.lr, config.beta1, config.beta2, config.lr_decay_step)
        self.d_optimizer = _adam(config.lr, config.beta1, config.beta2, config.lr_decay_step)
        self.feature_extractor = vgg.FeatureExtractor(config.vgg, losses.VGG_LAYERS,
                                                      weights=config.vgg_weights)
        self.caveat = vgg.random_weights_caveat(config.vgg, config.vgg_weights)

    def checkpoint_items(self) -> dict[str, object]:
        return {"generator": self.generator, "discriminator": self.discriminator,
                "g_optimizer": self.g_optimizer, "d_optimizer": self.d_optimizer}

    def build_optimizers(self) -> None:
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def phase_name(self, phase: int) -> str:
        del phase
        return "joint"  # both networks, every step

    def complete(self, image: tf.Tensor, mask: tf.Tensor,
                 training: bool) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """(network input, raw output, composite); the hole is 0 (mid-gray) in the input."""
        masked = image * (1.0 - mask)
        output = tf.cast(self.generator(tf.concat([masked, mask], axis=-1), training=training),
                         tf.float32)
        return masked, output, mask * output + (1.0 - mask) * image

    def discriminate(self, images: tf.Tensor, corners: tf.Tensor) -> tuple[tf.Tensor, list]:
        """(logits, local feature maps) of whole images and their local boxes."""
        local = patches.crop_patches(images, corners, self.config.local_size)
        logit, *features = self.discriminator([images, local], training=True)
        return logit, features

    def generator_losses(self, image: tf.Tensor, composite: tf.Tensor, real_logits: tf.Tensor,
                         fake_logits: tf.Tensor, real_features: list,
                         fake_features: list) -> dict[str, tf.Tensor]:
        """Every term of L_G (unweighted) and the weighted total, "g_loss"."""
        config = self.config
        terms = {"pixel": losses.pixel_loss(composite, image)}
        terms.update(losses.vgg_terms(self.feature_extractor, composite, image,
                                      official_grid=config.official_align_grid))
        terms["gan"] = common_losses.ragan_generator_loss(real_logits, fake_logits)
        terms["discriminator_fm"] = losses.discriminator_feature_matching_loss(
            fake_features, real_features, [f.shape[-1] for f in fake_features])
        terms["g_loss"] = (config.pixel_weight * terms["pixel"]
                           + config.feature_weight * (terms["self_guided"]
                                                      + terms["feature_matching"])
                           + config.align_weight * terms["align"]
                           + config.gan_weight * terms["gan"]
                           + config.dfm_weight * terms["discriminator_fm"])
        return terms

    def train_step(self, batch: Mapping[str, tf.Tensor], phase: int) -> dict[str, tf.Tensor]:
        del phase  # one phase
        image, mask, corner = batch["image"], batch["mask"], batch["corner"]
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            _, _, composite = self.complete(image, mask, training=True)
            real_logits, real_features = self.discriminate(image, corner)
            fake_logits, fake_features = self.discriminate(composite, corner)
            result = self.generator_losses(image, composite, real_logits, fake_logits,
                                           real_features, fake_features)
            d_loss = common_losses.ragan_discriminator_loss(real_logits, fake_logits)
            result["d_loss"] = d_loss
        train_loop.update(self.g_optimizer, g_tape, result["g_loss"], self.generator)
        train_loop.update(self.d_optimizer, d_tape, d_loss, self.discriminator)
        return result

    def predict(self, batch: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        image = tf.convert_to_tensor(batch["image"], tf.float32)
        mask = tf.convert_to_tensor(batch["mask"], tf.float32)
        masked, output, composite = self.complete(image, mask, training=False)
        return {"input": masked, "output": output, "composite": composite, "target": image,
                "mask": mask}


def build_task(config: Config) -> DMFNTask:
    return DMFNTask(config)


def parameter_counts(task: DMFNTask) -> dict[str, int]:
    """Trainable parameters of the generator and discriminator; the frozen VGG19 is not counted."""
    return model_utils.parameter_counts(task.generator, task.discriminator)


def example_fn(config: Config, seed: int, batch_size: int) -> data_lib.ExampleFn:
    """A box hole (and its unshrunk box), or a mask from the folder or of strokes (and a
    random box)."""
    del seed, batch_size
    mask_folder = (masks.load_mask_folder(config.mask_dir, invert=config.invert_masks)
                   if config.mask_type == "irregular" else None)
    strokes = config.mask_type in ("strokes", "matched_strokes")
    augmentation = masks.MaskAugmentation() if config.mask_augment else None

    def dmfn_example(image, example_seed, index):
        del index
        mask_seed, box_seed = (tf.random.experimental.stateless_fold_in(example_seed, k)
                               for k in range(2))
        if strokes or mask_folder is not None:
            # As the authors' irregular setting: the local discriminator sees a random box.
            mask = (masks.strokes_by_area_mask(
                        mask_seed, config.image_size,
                        depth_matched=config.mask_type == "matched_strokes") if strokes
                    else mask_folder.sample(mask_seed, config.image_size, augmentation))
            corner = patches.random_corner(box_seed, config.image_size, config.local_size)
        else:
            mask, box = dmfn_masks.dmfn_box_mask(mask_seed, config.image_size, config.local_size,
                                            max_delta=2 * config.max_shrink,
                                            position=config.box_position)
            corner = box[:2]
        return {"image": image, "mask": mask, "corner": tf.cast(corner, tf.int32)}
    return dmfn_example


def paper_input(config: Config) -> experiment.PaperInput:
    """Square crop (central for faces, random for scenes) resized to 256, then the mask."""
    policy = data_lib.CropPolicy(crop_size=config.image_size,
                                 shorter_side=(config.image_size, config.image_size),
                                 random_crop=config.random_crop)
    return experiment.PaperInput(policy=policy, example_fn=functools.partial(example_fn, config))


def describe(config: Config) -> str:
    """The block variant and masks, for the log line that opens a run."""
    return f"{config.dmfb} DMFB, {config.mask_type} masks"
