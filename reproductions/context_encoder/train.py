r"""Trains Context Encoders (Pathak et al., CVPR 2016).

  python reproductions/context_encoder/train.py \
      --flagfile=reproductions/context_encoder/configs/demo.cfg --workdir=runs/ce_demo

The flag defaults are the official center-region model (train.lua with the
README's settings); configs/ hold the named variants. Rerun the same command
to resume; `--flagfile=WORKDIR/flags.cfg` relaunches a run exactly.
"""

from absl import flags

from common import flags as common_flags
from reproductions.context_encoder import train_lib

common_flags.define_common_flags()
flags.DEFINE_enum("variant", "center", ["center", "random_region"],
                  "center: 64x64 centre hole, predicts the centre patch; random_region: noise "
                  "masks anywhere, predicts the whole image.")
flags.DEFINE_boolean("adversarial", True, "Train with the discriminator (joint L2 + adversarial "
                     "loss); --noadversarial gives the L2-only model.")
flags.DEFINE_float("wtl2", 0.999, "Weight of the L2 loss; the adversarial loss gets 1 - wtl2.")
flags.DEFINE_integer("overlap", 4, "Width in px of the visible ring around the centre hole.")
flags.DEFINE_float("overlap_weight", 10.0, "L2 weight on that ring (1 inside).")
flags.DEFINE_float("lr_g", 2e-3, "Generator Adam learning rate.")
flags.DEFINE_float("lr_d", 2e-4, "Discriminator Adam learning rate.")
flags.DEFINE_float("beta1", 0.5, "Adam beta1 of both optimizers.")
flags.DEFINE_integer("ngf", 64, "Decoder filters of the last layer (x8 at the bottleneck).")
flags.DEFINE_integer("nef", 64, "Encoder filters of the first layer.")
flags.DEFINE_integer("ndf", 64, "Discriminator filters of the first layer.")
flags.DEFINE_integer("bottleneck", 4000, "Channels of the bottleneck.")
flags.DEFINE_integer("load_size", 350, "Images are resized to this shorter side, then cropped "
                     "to 128.")
flags.DEFINE_enum("fill", "mean_pixel", sorted(train_lib.FILLS), "Value of the hole pixels: the "
                  "ImageNet mean pixel (official) or 0 (gray).")
flags.DEFINE_boolean("mask_per_batch", False, "random_region: one mask for the whole batch, as "
                     "the official code does (default: one per image).")

# Official schedule: batch 64; 500 epochs of Paris StreetView (14,900 images,
# 232 batches an epoch) = 116,000 steps.
flags.FLAGS.set_default("batch_size", 64)
flags.FLAGS.set_default("num_steps", 116_000)

FLAGS = flags.FLAGS


def paper_config() -> train_lib.Config:
    return train_lib.Config(
        variant=FLAGS.variant, adversarial=FLAGS.adversarial, wtl2=FLAGS.wtl2,
        overlap=FLAGS.overlap, overlap_weight=FLAGS.overlap_weight, lr_g=FLAGS.lr_g,
        lr_d=FLAGS.lr_d, beta1=FLAGS.beta1, ngf=FLAGS.ngf, nef=FLAGS.nef, ndf=FLAGS.ndf,
        bottleneck=FLAGS.bottleneck, load_size=FLAGS.load_size, fill=FLAGS.fill,
        mask_per_batch=FLAGS.mask_per_batch)


def main(argv):
    return common_flags.train_main(argv, paper_config, train_lib)


if __name__ == "__main__":
    common_flags.run_app(main, __doc__, __name__, common_flags.__name__)
