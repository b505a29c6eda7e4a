r"""Trains DMFN, Image Fine-grained Inpainting (Hui, Li, Wang, Gao; 2020).

  python reproductions/dmfn/train.py --flagfile=reproductions/dmfn/configs/demo.cfg \
      --workdir=runs/dmfn_demo

The flag defaults are the authors' CelebA-HQ configuration; configs/ hold the
named runs. Rerun the same command to resume.
"""

from absl import flags

from common import flags as common_flags
from reproductions.dmfn import losses
from reproductions.dmfn import model as model_lib
from reproductions.dmfn import train_lib

common_flags.define_common_flags()
flags.DEFINE_integer("image_size", 256, "Side of the training images.")
flags.DEFINE_integer("local_size", 128, "Side of the box hole (before shrinking) and of the "
                     "local discriminator's patch.")
flags.DEFINE_enum("mask_type", "box", list(train_lib.MASK_TYPES), "box: one rectangle; "
                  "irregular: masks from --mask_dir.")
flags.DEFINE_enum("box_position", "random", list(train_lib.BOX_POSITIONS), "Where the box goes.")
flags.DEFINE_integer("max_shrink", 17, "In training each side of the box shrinks by a random "
                     "0..max_shrink px (the official 0-17).")
flags.DEFINE_string("mask_dir", "", "Folder of mask images (white = hole) for "
                    "--mask_type=irregular.")
flags.DEFINE_boolean("invert_masks", False, "The mask images are black = hole.")
flags.DEFINE_boolean("random_crop", False, "Square crop at a random place (scenes) instead of "
                     "the centre (faces).")
flags.DEFINE_enum("dmfb", "official", list(model_lib.DMFB_VARIANTS), "official: the block as "
                  "the authors coded it; paper: as the paper's figure draws it.")
flags.DEFINE_integer("num_blocks", 8, "DMFBs in the generator.")
flags.DEFINE_integer("channels", 64, "Base width of the generator (64).")
flags.DEFINE_integer("d_channels", 64, "Base width of the discriminator (64).")
flags.DEFINE_float("lr", 2e-4, "Adam learning rate of both networks.")
flags.DEFINE_float("beta1", 0.5, "Adam beta1.")
flags.DEFINE_float("beta2", 0.999, "Adam beta2.")
flags.DEFINE_integer("lr_decay_step", 100_000, "The learning rate halves at this step.")
flags.DEFINE_float("pixel_weight", losses.PIXEL_WEIGHT, "L1 weight.")
flags.DEFINE_float("feature_weight", losses.FEATURE_WEIGHT, "Weight of the VGG19 self-guided "
                   "regression + feature matching losses.")
flags.DEFINE_float("align_weight", losses.ALIGN_WEIGHT, "Geometrical alignment loss weight.")
flags.DEFINE_float("gan_weight", losses.GAN_WEIGHT, "Relativistic average GAN loss weight.")
flags.DEFINE_float("dfm_weight", losses.DISCRIMINATOR_FM_WEIGHT, "Discriminator feature "
                   "matching weight.")
flags.DEFINE_boolean("official_align_grid", False, "Use the official code's coordinate grid, "
                     "whose two axes are both horizontal (a vertical shift goes unseen).")
flags.DEFINE_enum("conv_padding", "symmetric", ["symmetric", "tf_same"], "symmetric: "
                  "stride-2 convolutions pad as PyTorch does (the authors' network); tf_same: "
                  "TensorFlow's 'same', only for runs trained with it.")
flags.DEFINE_enum("vgg", "vgg19", ["vgg19", "vgg16"], "Network of the feature losses: VGG19 "
                  "(the authors'), or VGG16 (same tap names relu1_1 ... relu5_1) where only "
                  "VGG16 ImageNet weights are at hand.")
flags.DEFINE_string("vgg_weights", "imagenet", "VGG19 weights: 'imagenet' (Keras downloads them), "
                    "a local notop .weights.h5 file, or 'none' (random; tests only).")

# The authors' configuration: batch 16, 100,000 iterations.
flags.FLAGS.set_default("batch_size", 16)
flags.FLAGS.set_default("num_steps", 100_000)

FLAGS = flags.FLAGS


def paper_config() -> train_lib.Config:
    return train_lib.Config(
        image_size=FLAGS.image_size, local_size=FLAGS.local_size, mask_type=FLAGS.mask_type,
        box_position=FLAGS.box_position, max_shrink=FLAGS.max_shrink, mask_dir=FLAGS.mask_dir,
        invert_masks=FLAGS.invert_masks, random_crop=FLAGS.random_crop, dmfb=FLAGS.dmfb,
        num_blocks=FLAGS.num_blocks, channels=FLAGS.channels, d_channels=FLAGS.d_channels,
        lr=FLAGS.lr, beta1=FLAGS.beta1, beta2=FLAGS.beta2, lr_decay_step=FLAGS.lr_decay_step,
        pixel_weight=FLAGS.pixel_weight, feature_weight=FLAGS.feature_weight,
        align_weight=FLAGS.align_weight, gan_weight=FLAGS.gan_weight,
        dfm_weight=FLAGS.dfm_weight, official_align_grid=FLAGS.official_align_grid,
        vgg_weights=None if FLAGS.vgg_weights == "none" else FLAGS.vgg_weights,
        vgg=FLAGS.vgg, conv_padding=FLAGS.conv_padding)


def main(argv):
    return common_flags.train_main(argv, paper_config, train_lib)


if __name__ == "__main__":
    common_flags.run_app(main, __doc__, __name__, common_flags.__name__)
