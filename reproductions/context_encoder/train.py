r"""Trains Context Encoders (Pathak et al., CVPR 2016).

  python reproductions/context_encoder/train.py \
      --flagfile=reproductions/context_encoder/configs/demo.cfg --workdir=runs/ce_demo

The flags are the fields of train_lib.Config; their defaults are the official
center-region model (train.lua with the README's settings); configs/ hold the
named variants. Rerun the same command to resume; `--flagfile=WORKDIR/flags.cfg`
relaunches a run exactly.
"""

from common import cli
from reproductions.context_encoder.paper import PAPER

cli.define_paper_flags(PAPER.config)


def main(argv):
    return cli.train_main(argv, PAPER)


if __name__ == "__main__":
    cli.run_app(main, __doc__, PAPER.config.__module__, cli.__name__)
