r"""Trains Context Encoders (Pathak et al., CVPR 2016).

  python reproductions/context_encoder/train.py \
      --flagfile=reproductions/context_encoder/configs/demo.cfg --workdir=runs/ce_demo

The flags are the fields of train_lib.Config; their defaults are the official
center-region model (train.lua with the README's settings); configs/ hold the
named variants. Rerun the same command to resume; `--flagfile=WORKDIR/flags.cfg`
relaunches a run exactly.
"""

from common import flags as common_flags
from reproductions.context_encoder.paper import PAPER

common_flags.define_paper_flags(PAPER.config)


def main(argv):
    return common_flags.train_main(argv, PAPER)


if __name__ == "__main__":
    common_flags.run_app(main, __doc__, PAPER.config.__module__, common_flags.__name__)
