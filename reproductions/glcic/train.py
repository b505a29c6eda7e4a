r"""Trains GLCIC (Iizuka, Simo-Serra, Ishikawa; SIGGRAPH 2017).

  python reproductions/glcic/train.py \
      --flagfile=reproductions/glcic/configs/demo.cfg --workdir=runs/glcic_demo

The flags are the fields of train_lib.Config; their defaults are the paper's
settings; configs/ hold the named runs. The three phases (completion network,
discriminators, joint) follow from the step, so rerunning the same command
resumes in the right phase.
"""

from common import cli
from reproductions.glcic.paper import PAPER

cli.define_paper_flags(PAPER.config)


def main(argv):
    return cli.train_main(argv, PAPER)


if __name__ == "__main__":
    cli.run_app(main, __doc__, PAPER.config.__module__, cli.__name__)
