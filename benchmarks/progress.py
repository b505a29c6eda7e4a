r"""How a training run climbs on any masks: each kept checkpoint scored beside classical fills.

  python benchmarks/progress.py --run=dmfn:runs/faces_study/dmfn_irregular_long \
      --images=runs/faces_study/faces_heldout --masks=../shared/data/masks/nvidia_irregular \
      --image_size=128 --limit=100 --output=runs/progress/dmfn_irregular_long

Scores every checkpoint the run keeps (`milestones/`, from --milestone_every, and
`checkpoints/`) with the evaluation protocol (common/evaluation.py: the same images and
seeded masks for every step and method), and the classical fills of --baselines once.
Writes OUTPUT/step_N/ and OUTPUT/BASELINE/ (metrics.json and images; a rerun reuses
those already scored with the same settings), OUTPUT/progress.md (PSNR and hole L1,
overall and by hole-area bin, a row per step and per classical fill) and
OUTPUT/progress.png (PSNR and hole L1 against the step, a dashed line per classical fill).
The periodic evaluation of a run scores it on its own training masks only; this scores
its checkpoints on any masks, after training, without touching the run.
"""

from __future__ import annotations

import os

from absl import app
from absl import flags
from absl import logging

from common import baselines
from common import cli
from common import evaluation
from common import markdown
from common import run_dir
from common.errors import UserError
from reproductions import inpainters
from reproductions import papers

flags.DEFINE_string("run", None, "PAPER:WORKDIR of the training run, e.g. "
                    "dmfn:runs/faces_study/dmfn_irregular_long.")
flags.DEFINE_string("images", None, "Folder of evaluation photos.")
flags.DEFINE_string("masks", "center", "Mask folder (white = hole) or one of "
                    f"{', '.join(evaluation.MASK_SOURCES)}.")
flags.DEFINE_integer("image_size", 256, "Side the images are cropped and resized to.")
flags.DEFINE_integer("limit", None, "Evaluate only the first N images.")
flags.DEFINE_list("baselines", ["biharmonic"], "Classical fills drawn beside the run: "
                  f"some of {', '.join(sorted(baselines.BASELINES))}.")
flags.DEFINE_boolean("postprocess", False, "Score a paper with post-processing (GLCIC's) "
                     "with it; default: the network alone.")
flags.DEFINE_string("output", None, "Folder for the scores, progress.md and progress.png.")
FLAGS = flags.FLAGS


def steps_to_score(workdir: str) -> list[int]:
    """The run's kept steps (checkpoints/ and milestones/), or an error naming --run."""
    steps = run_dir.kept_steps(workdir)
    if not steps:
        raise UserError(f"--run: {workdir} keeps no checkpoint (neither checkpoints/ nor "
                        "milestones/ holds one): give the work directory of a training run.")
    return steps


def score(method: str, name: str, output: str, postprocess: bool = False) -> dict:
    """metrics.json of one method under the flags' images and masks, reused when an
    earlier call scored it with the same settings."""
    options = {"postprocess": postprocess, "limit": FLAGS.limit}
    previous = evaluation.previous_result(output, FLAGS.masks, FLAGS.image_size, options)
    if previous is not None:
        logging.info("%s: reusing %s.", name, os.path.join(output, "metrics.json"))
        return previous
    logging.info("Scoring %s.", name)
    return evaluation.evaluate(inpainters.load(method, postprocess=postprocess), FLAGS.images,
                               FLAGS.masks, FLAGS.image_size, output, limit=FLAGS.limit,
                               method=name, options=options)


def _cells(metrics: dict) -> list[str]:
    """PSNR and hole L1 overall, then PSNR by hole-area bin ("-" for an empty bin)."""
    bins = metrics.get("by_hole_area", {})
    return ([f"{metrics['overall']['psnr']:.2f}", f"{metrics['overall']['l1_hole']:.4f}"]
            + [f"{bins[b]['psnr']:.2f}" if b in bins else "-"
               for b in evaluation.bin_names()[:-1]])


def progress_table(steps: dict[int, dict], fills: dict[str, dict]) -> str:
    """A Markdown table: a row per classical fill, then per step of the run."""
    header = ["method", "PSNR (dB)", "L1 hole"] + [f"PSNR {b}" for b in evaluation.bin_names()[:-1]]
    rows = [[name] + _cells(metrics) for name, metrics in fills.items()]
    rows += [[f"step {step:,}"] + _cells(metrics) for step, metrics in sorted(steps.items())]
    return markdown.table(header, rows)


def progress_figure(run: str, steps: dict[int, dict], fills: dict[str, dict], path: str) -> None:
    """PSNR and hole L1 against the step, each classical fill a dashed line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    x = sorted(steps)
    for axis, key, label in ((axes[0], "psnr", "PSNR (dB), higher is better"),
                             (axes[1], "l1_hole", "L1 in the hole, lower is better")):
        axis.plot(x, [steps[s]["overall"][key] for s in x], "o-", label=run)
        for (name, metrics), colour in zip(fills.items(), ("C1", "C2", "C3", "C4")):
            axis.axhline(metrics["overall"][key], linestyle="--", color=colour, label=name)
        axis.set_xlabel("training step")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    count = next(iter(steps.values()))["count"]
    figure.suptitle(f"{run} on {os.path.basename(FLAGS.masks.rstrip('/'))} masks, "
                    f"{count} images at {FLAGS.image_size} px", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    with cli.user_errors():
        for name in ("run", "images", "output"):
            if not FLAGS[name].value:
                raise UserError(f"--{name} is required.")
        paper, _, workdir = FLAGS.run.partition(":")
        if paper not in papers.PAPERS or not workdir:
            raise UserError(f"--run must be PAPER:WORKDIR with PAPER in {papers.PAPERS}, got "
                            f"{FLAGS.run!r}.")
        unknown = sorted(set(FLAGS.baselines) - set(baselines.BASELINES))
        if unknown:
            raise UserError(f"--baselines: unknown {unknown}; expected some of "
                            f"{sorted(baselines.BASELINES)}.")
        kept = steps_to_score(workdir)  # before any scoring: a wrong --run fails at once
        fills = {name: score(name, name, os.path.join(FLAGS.output, name))
                 for name in FLAGS.baselines}
        steps = {step: score(f"{FLAGS.run}@{step}", f"{paper} step {step}",
                             os.path.join(FLAGS.output, f"step_{step}"), FLAGS.postprocess)
                 for step in kept}
        block = progress_table(steps, fills)
        with open(os.path.join(FLAGS.output, "progress.md"), "w") as f:
            f.write(block + "\n")
        progress_figure(os.path.basename(workdir.rstrip("/")), steps, fills,
                        os.path.join(FLAGS.output, "progress.png"))
        print(block)
        print(f"Wrote {os.path.join(FLAGS.output, 'progress.md')} and progress.png.")
    return 0


if __name__ == "__main__":
    cli.run_app(main, __doc__, __name__)
