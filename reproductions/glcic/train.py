r"""Trains GLCIC (Iizuka, Simo-Serra, Ishikawa; SIGGRAPH 2017).

  python reproductions/glcic/train.py \
      --flagfile=reproductions/glcic/configs/demo.cfg --workdir=runs/glcic_demo

The flag defaults are the paper's settings; configs/ hold the named runs.
The three phases (completion network, discriminators, joint) follow from the
step, so rerunning the same command resumes in the right phase.
"""

from absl import flags

from common import flags as common_flags
from common.errors import UserError
from reproductions.glcic import train_lib

common_flags.define_common_flags()
flags.DEFINE_integer("image_size", 256, "Side of the training crops (the global discriminator's "
                     "input).")
flags.DEFINE_integer("local_size", 128, "Side of the local discriminator's patch.")
flags.DEFINE_integer("hole_min", 96, "Smallest hole side (width and height are drawn "
                     "independently).")
flags.DEFINE_integer("hole_max", 128, "Largest hole side.")
flags.DEFINE_integer("shorter_side_min", 256, "Images are resized so their shorter side is a "
                     "random value in [min, max], then cropped.")
flags.DEFINE_integer("shorter_side_max", 384, "See --shorter_side_min.")
flags.DEFINE_float("alpha", 4e-4, "Weight of the adversarial losses (of both networks).")
flags.DEFINE_integer("completion_steps", 90_000, "T_C: steps training the completion network "
                     "alone with the MSE.")
flags.DEFINE_integer("discriminator_steps", 10_000, "T_D: steps training the discriminators "
                     "alone; joint training follows until --num_steps.")
flags.DEFINE_enum("optimizer", "adadelta", list(train_lib.OPTIMIZERS), "ADADELTA (paper) or "
                  "Adam.")
flags.DEFINE_float("learning_rate", 1.0, "Learning rate (1.0 for ADADELTA as in the paper; "
                   "about 2e-4 for Adam).")
flags.DEFINE_float("rho", 0.95, "ADADELTA decay (Zeiler's 0.95; PyTorch's default is 0.9).")
flags.DEFINE_float("epsilon", 1e-6, "ADADELTA epsilon.")
flags.DEFINE_float("beta1", 0.5, "Adam beta1.")
flags.DEFINE_integer("cn_channels", 64, "Base width of the completion network (64 in the "
                     "paper).")
flags.DEFINE_integer("d_channels", 64, "Base width of the discriminators (64 in the paper).")
flags.DEFINE_enum("conv_padding", "symmetric", ["symmetric", "tf_same"], "symmetric: "
                  "stride-2 convolutions pad as Torch does (the authors' released network); "
                  "tf_same: TensorFlow's 'same', only for runs trained with it.")
flags.DEFINE_enum("d_fc_activation", "none", ["none", "relu", "bn_relu"], "What follows each "
                  "discriminator branch's FC-1024: nothing (the paper's text), ReLU (the "
                  "PyTorch port) or BatchNorm + ReLU (a public reconstruction).")
flags.DEFINE_list("mean_pixel", [], "Training set mean colour R,G,B in [0, 1]; empty: computed "
                  "from --train_data when a run starts, and stored in its checkpoints.")
flags.DEFINE_integer("mean_pixel_images", 1000, "Images used to compute the mean pixel.")

# The paper: batch 96; T_C = 90,000, T_D = 10,000, 500,000 iterations in all.
flags.FLAGS.set_default("batch_size", 96)
flags.FLAGS.set_default("num_steps", 500_000)

FLAGS = flags.FLAGS


def paper_config() -> train_lib.Config:
    try:
        mean_pixel = tuple(float(v) for v in FLAGS.mean_pixel) or None
    except ValueError as error:
        raise UserError(f"--mean_pixel must be three numbers R,G,B, got {FLAGS.mean_pixel}.") \
            from error
    return train_lib.Config(
        image_size=FLAGS.image_size, local_size=FLAGS.local_size, hole_min=FLAGS.hole_min,
        hole_max=FLAGS.hole_max, shorter_side_min=FLAGS.shorter_side_min,
        shorter_side_max=FLAGS.shorter_side_max, alpha=FLAGS.alpha,
        completion_steps=FLAGS.completion_steps, discriminator_steps=FLAGS.discriminator_steps,
        optimizer=FLAGS.optimizer, learning_rate=FLAGS.learning_rate, rho=FLAGS.rho,
        epsilon=FLAGS.epsilon, beta1=FLAGS.beta1, cn_channels=FLAGS.cn_channels,
        d_channels=FLAGS.d_channels, mean_pixel=mean_pixel,
        mean_pixel_images=FLAGS.mean_pixel_images, conv_padding=FLAGS.conv_padding,
        d_fc_activation=FLAGS.d_fc_activation)


def main(argv):
    return common_flags.train_main(argv, paper_config, train_lib)


if __name__ == "__main__":
    common_flags.run_app(main, __doc__, __name__, common_flags.__name__)
