r"""Runs the evaluation protocol for every method on one image set and writes a results table.

  python benchmarks/evaluate_all.py --images=/data/eval/kodak24 --masks=center --image_size=128 \
      --workdirs=context_encoder:runs/ce,glcic:runs/glcic,structural_inpainting:runs/si,dmfn:runs/dmfn \
      --output=results/kodak_center

Evaluates the classical baselines and each trained run (by its latest
checkpoint) with the same images and masks, writes OUTPUT/METHOD/metrics.json
and the images, and OUTPUT/results.md: a Markdown table headed by the data,
masks, image size, training steps of each run and the hardware. With
--readme=benchmarks/README.md the table also replaces the part of that file between the
markers `<!-- results:NAME:start -->` and `<!-- results:NAME:end -->`
(NAME = --name).
"""

from __future__ import annotations

import os

from absl import app
from absl import flags

from common import baselines
from common import cli
from common import evaluation
from common import perceptual_metrics
from common import run_dir
from reproductions import inpainters
from reproductions import papers

import results_tables  # benchmarks/results_tables.py, beside this script

flags.DEFINE_string("images", None, "Folder of evaluation photos.")
flags.DEFINE_string("masks", "center", "Mask folder or one of "
                    f"{', '.join(evaluation.MASK_SOURCES)}.")
flags.DEFINE_integer("image_size", 256, "Side the images are cropped and resized to.")
flags.DEFINE_list("workdirs", [], "PAPER:WORKDIR of each trained run to evaluate.")
flags.DEFINE_list("baselines", sorted(baselines.BASELINES), "Classical methods to evaluate.")
flags.DEFINE_string("output", None, "Folder for every method's results and results.md.")
flags.DEFINE_integer("limit", None, "Evaluate only the first N images.")
flags.DEFINE_string("readme", "", "Also write the table into this Markdown file, between "
                    "the results markers.")
perceptual_metrics.define_flags()
flags.DEFINE_string("name", "main", "Name of the results block in --readme.")
FLAGS = flags.FLAGS


def trained_steps(workdir: str) -> int:
    """The step of a run's latest checkpoint."""
    step = run_dir.latest_step(workdir)
    if not step:
        raise FileNotFoundError(f"No checkpoint in {workdir}.")
    return step


def header(images: str, masks: str, image_size: int, count: int,
           steps: dict[str, int]) -> str:
    """The lines above the table that say what was measured."""
    runs = ", ".join(f"{paper} {step:,} steps" for paper, step in steps.items()) or "none"
    return (f"Images: `{images}` ({count} images, centre-cropped and resized to "
            f"{image_size}x{image_size}); masks: `{masks}`; trained runs: {runs}; "
            f"hardware: {papers.device_description()}. Metrics on the composite, images in [0, 1].")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS.images or not FLAGS.output:
        raise app.UsageError("--images and --output are required.")
    with cli.user_errors():
        methods = list(FLAGS.baselines)
        steps = {}
        for entry in FLAGS.workdirs:
            paper, _, workdir = entry.partition(":")
            steps[paper] = trained_steps(workdir)
            methods.append(entry)
        networks = perceptual_metrics.load_networks(perceptual_metrics.config_from_flags())
        results = []
        for method in methods:
            inpainter = inpainters.load(method)
            name = method.split(":")[0]
            results.append(evaluation.evaluate(
                inpainter, FLAGS.images, FLAGS.masks, FLAGS.image_size,
                os.path.join(FLAGS.output, name), limit=FLAGS.limit, method=name,
                options={"postprocess": True}, perceptual=networks))
        block = (header(FLAGS.images, FLAGS.masks, FLAGS.image_size, results[0]["count"], steps)
                 + "\n\n" + evaluation.markdown_table(results))
        with open(os.path.join(FLAGS.output, "results.md"), "w") as f:
            f.write(block + "\n")
        if FLAGS.readme:
            results_tables.write_results_block(FLAGS.readme, FLAGS.name, block)
    print(block)
    return 0


if __name__ == "__main__":
    cli.run_app(main, __doc__, __name__)
