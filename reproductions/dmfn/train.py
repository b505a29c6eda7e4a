r"""Trains DMFN, Image Fine-grained Inpainting (Hui, Li, Wang, Gao; 2020).

  python reproductions/dmfn/train.py --flagfile=reproductions/dmfn/configs/demo.cfg \
      --workdir=runs/dmfn_demo

The flags are the fields of train_lib.Config; their defaults are the authors'
CelebA-HQ configuration; configs/ hold the named runs. Rerun the same command to
resume.
"""

from common import cli
from reproductions.dmfn.paper import PAPER

cli.define_paper_flags(PAPER.config)


def main(argv):
    return cli.train_main(argv, PAPER)


if __name__ == "__main__":
    cli.run_app(main, __doc__, PAPER.config.__module__, cli.__name__)
