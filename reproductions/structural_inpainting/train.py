r"""Trains Structural Inpainting (Vo, Duong, Pérez; ACM MM 2018).

  python reproductions/structural_inpainting/train.py \
      --flagfile=reproductions/structural_inpainting/configs/paper.cfg \
      --train_data=tfds:celeb_a --workdir=runs/structural

The flags are the fields of train_lib.Config; their defaults are the public
TensorFlow port's settings; configs/ hold the paper's run and its ablations. The
stage (structural, then joint) follows from the step, so rerunning the same
command resumes correctly.
"""

from common import cli
from reproductions.structural_inpainting.paper import PAPER

cli.define_paper_flags(PAPER.config)


def main(argv):
    return cli.train_main(argv, PAPER)


if __name__ == "__main__":
    cli.run_app(main, __doc__, PAPER.config.__module__, cli.__name__)
