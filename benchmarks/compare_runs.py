r"""Runs side by side: held-out metrics at every evaluation step, and the last training losses.

  python benchmarks/compare_runs.py runs/faces_study/dmfn runs/faces_study_bf16/dmfn

Reads each work directory's metrics.jsonl (what train.py logs) and prints two
Markdown tables:
  * the held-out evaluation (--eval_data) at every step any run evaluated:
    one column per run and metric (--metrics);
  * per run: the last step, the mean training speed, and each training loss
    averaged over the last --last logs (single batches are noisy; a mean of a
    few is what two runs can be compared on).
With --figure=PATH it also draws the first of --metrics and a training loss
(--loss, else the first loss every run logs) against steps, one line per run.
Made for runs that differ in one setting (a dtype, XLA, a loss weight) with the
same seed and steps, for example float32 against bfloat16.
"""

from __future__ import annotations

import os
import sys

from absl import flags

from common import cli
from common import markdown
from common import run_dir
from common import visualize

flags.DEFINE_list("metrics", ["psnr", "ssim", "l1_hole"], "Held-out metrics to show.")
flags.DEFINE_integer("last", 6, "Training logs averaged for the loss columns.")
flags.DEFINE_string("figure", "", "Also draw held-out metric and training loss curves to "
                    "this PNG.")
flags.DEFINE_string("loss", "", "Training loss drawn in --figure; default: the first loss "
                    "every run logs.")
FLAGS = flags.FLAGS


def load_run(workdir: str) -> list[dict]:
    """The records of a run's metrics.jsonl; a clear error if there are none."""
    path = os.path.join(workdir, "metrics.jsonl")
    records = run_dir.read_metrics(path)
    if not records:
        raise ValueError(f"{path}: no metrics (is {workdir} a train.py work directory?).")
    return records


def eval_table(runs: dict[str, list[dict]], metrics: list[str]) -> str:
    """Held-out metrics by step: one column per (run, metric); '–' where a run has none."""
    by_run = {name: {r["step"]: r for r in records if r.get("split") == "eval"}
              for name, records in runs.items()}
    steps = sorted(set().union(*(evals.keys() for evals in by_run.values())))
    header = ["step"] + [f"{name} {metric}" for name in runs for metric in metrics]
    rows = []
    for step in steps:
        cells = [f"{step:,}"]
        for name in runs:
            record = by_run[name].get(step, {})
            cells += [f"{record[m]:.4f}" if m in record else "–" for m in metrics]
        rows.append(cells)
    return markdown.table(header, rows) + "\n"


# Keys of a training record that are not losses.
NOT_LOSSES = ("step", "split", "phase", "images_per_second")


def training_summary(records: list[dict], last: int) -> dict[str, float]:
    """Last step, mean images/s over all logs, and each loss's mean over the last `last` logs."""
    train = [r for r in records if r.get("split") == "train"]
    if not train:
        return {}
    tail = train[-last:]
    losses = [k for k in tail[-1] if k not in NOT_LOSSES
              and all(isinstance(r.get(k), (int, float)) for r in tail)]
    summary = {"step": float(train[-1]["step"]),
               "images_per_second": sum(r["images_per_second"] for r in train) / len(train)}
    summary.update({k: sum(r[k] for r in tail) / len(tail) for k in losses})
    return summary


def training_table(runs: dict[str, list[dict]], last: int) -> str:
    """One row per run: last step, mean images/s, the mean of each loss over the last logs."""
    summaries = {name: training_summary(records, last) for name, records in runs.items()}
    losses = []
    for summary in summaries.values():
        losses += [k for k in summary if k not in NOT_LOSSES and k not in losses]
    header = ["run", "last step", "images/s (mean)"] + [f"{k} (last {last})" for k in losses]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, summary in summaries.items():
        if not summary:
            lines.append(f"| {name} | no training logs |" + " |" * (len(header) - 2))
            continue
        cells = [name, f"{int(summary['step']):,}", f"{summary['images_per_second']:.1f}"]
        cells += [f"{summary[k]:.4g}" if k in summary else "–" for k in losses]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def shared_loss(runs: dict[str, list[dict]]) -> str | None:
    """The first training loss (in the first run's order) that every run logs."""
    keys = None
    for records in runs.values():
        losses = [k for k in training_summary(records, last=1) if k not in NOT_LOSSES]
        keys = losses if keys is None else [k for k in keys if k in losses]
    return keys[0] if keys else None


def main(argv):
    workdirs = argv[1:]
    if not workdirs:
        sys.exit("error: name one or more work directories to compare.")
    try:
        runs = {workdir.rstrip("/"): load_run(workdir) for workdir in workdirs}
    except ValueError as error:
        sys.exit(f"error: {error}")
    print("Held-out evaluation:\n")
    print(eval_table(runs, FLAGS.metrics))
    print("Training:\n")
    print(training_table(runs, FLAGS.last))
    if FLAGS.figure:
        loss = FLAGS.loss or shared_loss(runs)
        if loss is None:
            sys.exit("error: --figure: the runs log no training loss in common; name one "
                     "with --loss.")
        metric = FLAGS.metrics[0]
        visualize.save_run_curves(runs, {name: loss for name in runs}, metric, FLAGS.figure,
                                  loss_label=loss, loss_title=f"training {loss}",
                                  metric_label=metric, metric_title=f"held-out {metric}")
        print(f"Wrote {FLAGS.figure}.")
    return 0


if __name__ == "__main__":
    cli.run_app(main, __doc__, __name__)
