r"""Trains DMFN, Image Fine-grained Inpainting (Hui, Li, Wang, Gao; 2020).

  python reproductions/dmfn/train.py --flagfile=reproductions/dmfn/configs/demo.cfg \
      --workdir=runs/dmfn_demo

The flags are the fields of train_lib.Config; their defaults are the authors'
CelebA-HQ configuration; configs/ hold the named runs. Rerun the same command to
resume.
"""

from common import flags as common_flags
from reproductions.dmfn.paper import PAPER

common_flags.define_paper_flags(PAPER.config)


def main(argv):
    return common_flags.train_main(argv, PAPER)


if __name__ == "__main__":
    common_flags.run_app(main, __doc__, PAPER.config.__module__, common_flags.__name__)
