r"""Trains Structural Inpainting (Vo, Duong, Pérez; ACM MM 2018).

  python reproductions/structural_inpainting/train.py \
      --flagfile=reproductions/structural_inpainting/configs/paper.cfg \
      --train_data=tfds:celeb_a --workdir=runs/structural

The flag defaults are the public TensorFlow port's settings; configs/ hold
the paper's run and its ablations. The stage (structural, then joint)
follows from the step, so rerunning the same command resumes correctly.
"""

from absl import flags

from common import flags as common_flags
from common.errors import UserError
from reproductions.structural_inpainting import model as model_lib
from reproductions.structural_inpainting import train_lib

common_flags.define_common_flags()
flags.DEFINE_enum("architecture", "port", list(model_lib.ARCHITECTURES), "port: the TF port's "
                  "networks (no normalisation, linear output); context_encoder: Pathak et al.'s "
                  "(use --bottleneck=4000 for theirs).")
flags.DEFINE_float("lambda_feat", 1.0, "Weight of the VGG16 feature loss; 0 turns it off.")
flags.DEFINE_list("feature_layers", ["conv1_1", "conv2_1", "conv3_1"], "VGG16 taps.")
flags.DEFINE_list("feature_weights", ["1", "1", "1"], "One weight per tap.")
flags.DEFINE_enum("feature_on", "composite", list(train_lib.FEATURE_INPUTS), "composite: VGG sees "
                  "the prediction pasted into its 128x128 context; patch: the 64x64 patches "
                  "(the port).")
flags.DEFINE_float("lambda_adv", 0.1, "Weight of the adversarial losses; 0: no discriminator.")
flags.DEFINE_integer("overlap", 4, "Width of the visible ring around the 56x56 hole.")
flags.DEFINE_float("overlap_weight", 10.0, "Reconstruction weight on that ring.")
flags.DEFINE_integer("structural_steps", 127_150, "Steps of the first stage (structural loss "
                     "only); joint adversarial training follows until --num_steps.")
flags.DEFINE_float("lr", 2e-4, "Generator Adam rate in the first stage.")
flags.DEFINE_float("lr_joint", 2e-5, "Generator Adam rate in the joint stage (a fresh Adam).")
flags.DEFINE_float("lr_d", 2e-5, "Discriminator Adam rate.")
flags.DEFINE_float("beta1", 0.5, "Adam beta1.")
flags.DEFINE_integer("width", 64, "Channels of the first generator layer (the discriminator "
                     "uses half).")
flags.DEFINE_integer("bottleneck", 2000, "Bottleneck channels.")
flags.DEFINE_string("vgg_weights", "imagenet", "VGG16 weights: 'imagenet' (Keras downloads them), "
                    "a local notop .weights.h5 file, or 'none' (random; tests only).")
flags.DEFINE_integer("shorter_side_min", 128, "Images are resized so their shorter side is a "
                     "random value in [min, max], then cropped to 128.")
flags.DEFINE_integer("shorter_side_max", 200, "See --shorter_side_min.")

# The port: batch 64; 50 epochs of the structural loss, then 10 joint, on
# CelebA's 162,770 training images (2,543 steps an epoch).
flags.FLAGS.set_default("batch_size", 64)
flags.FLAGS.set_default("num_steps", 152_580)

FLAGS = flags.FLAGS


def paper_config() -> train_lib.Config:
    try:
        weights = tuple(float(w) for w in FLAGS.feature_weights)
    except ValueError as error:
        raise UserError(f"--feature_weights must be numbers, got {FLAGS.feature_weights}.") \
            from error
    return train_lib.Config(
        architecture=FLAGS.architecture, lambda_feat=FLAGS.lambda_feat,
        feature_layers=tuple(FLAGS.feature_layers), feature_weights=weights,
        feature_on=FLAGS.feature_on, lambda_adv=FLAGS.lambda_adv, overlap=FLAGS.overlap,
        overlap_weight=FLAGS.overlap_weight, structural_steps=FLAGS.structural_steps,
        lr=FLAGS.lr, lr_joint=FLAGS.lr_joint, lr_d=FLAGS.lr_d, beta1=FLAGS.beta1,
        width=FLAGS.width, bottleneck=FLAGS.bottleneck,
        vgg_weights=None if FLAGS.vgg_weights == "none" else FLAGS.vgg_weights,
        shorter_side_min=FLAGS.shorter_side_min, shorter_side_max=FLAGS.shorter_side_max)


def main(argv):
    return common_flags.train_main(argv, paper_config, train_lib)


if __name__ == "__main__":
    common_flags.run_app(main, __doc__, __name__, common_flags.__name__)
