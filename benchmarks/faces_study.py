r"""The CPU-scale study: every paper trained on real faces, against the classical methods.

  python benchmarks/faces_study.py --readme=benchmarks/README.md
  python benchmarks/faces_study.py --name=faces_study_irregular --readme=benchmarks/README.md \
      --runs=dmfn_irregular,glcic_irregular,dmfn_irregular_uniform,dmfn_irregular_batchnorm

From the 5,000 aligned faces of ../shared/data/faces it
  1. splits off the held-out faces by a hash of the file name (common/splits.py)
     and links both sides under --root;
  2. trains every run of RUNS, one per `configs/cpu_faces*.cfg` of each
     registered paper (the first line says what it shows; resumable: an
     interrupted run resumes, a finished one is skipped), evaluating on
     held-out faces as it goes;
  3. evaluates the trained runs (GLCIC without and with its post-processing,
     which is itself a Telea fill blended in) and telea / ns / biharmonic with the shared
     protocol (common/evaluation.py) on the held-out faces at 128x128: the
     centre 56x56 hole inside the 64x64 square the centre-region papers
     predict (Context Encoders' and Structural Inpainting's own mask), the
     whole 64x64 square blanked, random boxes of 48-64 px (GLCIC's and DMFN's
     own rectangles), and the NVIDIA irregular masks by hole-area bin (the
     fully convolutional papers only);
  4. writes --root/NAME.md (tables, training times, hardware; NAME is --name),
     figures (--figures): held-out faces with the centre hole (NAME.png), with
     an NVIDIA mask of each hole-area bin (NAME_bins.png), and the training
     curves (NAME_curves.png); and with --readme the same tables into
     README.md between `<!-- results:NAME:... -->`. Another --name keeps a
     study of some runs (the irregular-hole runs) beside the main one.

Progress: each run's own progress lines (step, images/s, ETA), then one line
per evaluation. Times are wall-clock, summed over resumes, and the machine's
load is recorded. --smoke trains the smoke configs on a few images, for tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
from absl import app
from absl import flags
from absl import logging

from common import atomic
from common import cli
from common import evaluation
from common import perceptual_metrics
from common import run_dir
from common import splits
from common import visualize
from common.errors import UserError
from reproductions import inpainters
from reproductions import papers

import results_tables  # benchmarks/results_tables.py, beside this script

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SHARED = os.environ.get("INPAINTING_SHARED_DATA", os.path.join(REPO, "..", "shared", "data"))

# A study run is a config `cpu_faces*.cfg` of a registered paper whose first line
# says what it shows ("ablation: ..." for an ablation, left out of the figures).
STUDY_CONFIG = re.compile(r"cpu_faces(?P<variant>_\w+)?\.cfg")
STUDY_LINE = "# Faces study run (benchmarks/faces_study.py): "


def study_runs() -> tuple[tuple[str, str, str, str], ...]:
    """(run name, paper, config, what it shows) of every study run: each registered
    paper's `cpu_faces.cfg` first, then their variants (`cpu_faces_l2.cfg` is the
    run `context_encoder_l2`), in registry order."""
    own, variants = [], []
    for record in papers.all_papers():
        for config in sorted(os.listdir(record.configs_dir())):
            match = STUDY_CONFIG.fullmatch(config)
            if not match:
                continue
            with open(os.path.join(record.configs_dir(), config)) as f:
                first_line = f.readline().rstrip("\n")
            if not first_line.startswith(STUDY_LINE):
                raise ValueError(f"{record.configs_dir()}/{config}: a study config's first line "
                                 f"is {STUDY_LINE!r} and what the run shows.")
            variant = match["variant"] or ""
            (variants if variant else own).append(
                (record.name + variant, record.name, config, first_line[len(STUDY_LINE):]))
    return tuple(own + variants)


RUNS = study_runs()
FULLY_CONVOLUTIONAL = papers.fully_convolutional_papers()
BASELINES = ("telea", "ns", "biharmonic")
# Each paper's pixel reconstruction term in metrics.jsonl: Context Encoders,
# GLCIC, Structural Inpainting, DMFN.
RECONSTRUCTION_KEYS = ("l2", "mse", "reconstruction", "pixel")
IMAGE_SIZE = 128
# (name, mask source, which runs): the papers' own masks, then harder ones. The
# centre-region papers blank the centre square less a 4 px ring, which they see
# and predict ("center-overlap"); "center_full" blanks the ring too.
MASK_SETS = (
    ("center", "center-overlap", None),
    ("center_full", "center", None),
    ("boxes", "bbox-large", FULLY_CONVOLUTIONAL),
    ("irregular", "nvidia_irregular", FULLY_CONVOLUTIONAL),
)

flags.DEFINE_string("faces", os.path.join(SHARED, "faces"), "Folder of the face photos.")
flags.DEFINE_string("masks", os.path.join(SHARED, "masks", "nvidia_irregular"),
                    "Folder of irregular hole masks (white = hole).")
flags.DEFINE_string("vgg_weights", os.path.join(SHARED, "weights",
                                                "vgg16_imagenet_notop.weights.h5"),
                    "VGG16 notop weights for Structural Inpainting's and DMFN's feature losses.")
flags.DEFINE_string("root", "runs/faces_study", "Folder of the split, the runs and the results.")
flags.DEFINE_integer("held_out_percent", 10, "Share of the faces held out.")
flags.DEFINE_list("runs", [r[0] for r in RUNS], "Runs to train and evaluate.")
flags.DEFINE_integer("eval_limit", None, "Evaluate on the first N held-out faces only.")
flags.DEFINE_string("figures", "benchmarks/figures", "Folder for faces_study.png and "
                    "faces_study_curves.png; empty: none.")
flags.DEFINE_string("readme", "", "Also write the tables into this Markdown file.")
flags.DEFINE_string("name", "faces_study", "Name of the results: --root/NAME.md, the figures "
                    "NAME*.png and the README block <!-- results:NAME:start -->.")
flags.DEFINE_enum("mixed_precision", "none", ["none", "bfloat16"],
                  "Passed to every run's train.py: on a CPU with AMX or AVX-512 BF16, bfloat16 "
                  "trains DMFN and Structural Inpainting in less than half the time and GLCIC "
                  "1.2 times faster (docs/performance.md). Use another --root, so that float32 "
                  "runs are not resumed in bfloat16.")
perceptual_metrics.define_flags()
flags.DEFINE_boolean("smoke", False, "Smoke configs, 2 steps each: a test of the study itself.")
flags.DEFINE_boolean("train", True, "Train (or resume) the runs; --notrain evaluates what is "
                     "there.")
flags.DEFINE_boolean("evaluate", True, "Evaluate and report after training; --noevaluate "
                     "only trains (to train the runs in another order, one call each).")
FLAGS = flags.FLAGS


def config_steps(path: str) -> int:
    """--num_steps of a flagfile, following its --flagfile includes (the last one wins)."""
    steps = [line.split("=", 1)[1] for line in cli.flagfile_lines(path)
             if line.startswith("--num_steps=")]
    if not steps:
        raise ValueError(f"{path} sets no --num_steps.")
    return int(steps[-1])


def variant_flags(config_path: str) -> list[str]:
    """The flags a variant config adds to the config it includes, after those that config
    adds if it is a variant too (none for a config that includes no other): what a smoke
    run of the variant keeps (e.g. --noadversarial; --mask_type and --generator_norm of a
    variant of a variant)."""
    with open(config_path) as f:
        lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    includes = [line.split("=", 1)[1] for line in lines if line.startswith("--flagfile=")]
    if not includes:
        return []
    inherited = [flag for include in includes
                 for flag in variant_flags(cli.find_flagfile(include, REPO))]
    return inherited + [line for line in lines if not line.startswith("--flagfile=")]


def train_command(paper: str, config: str, workdir: str, train_dir: str, held_out_dir: str,
                  smoke: bool, mixed_precision: str = "none") -> list[str]:
    """The train.py command of one run (exactly what README.md shows). The training
    data is --train_data alone: no flag names the evaluation masks (--masks)."""
    folder = os.path.relpath(papers.get(paper).folder(), REPO)
    config_dir = os.path.join(folder, "configs")
    command = [sys.executable, os.path.join(folder, "train.py"),
               f"--flagfile={os.path.join(config_dir, 'smoke.cfg' if smoke else config)}",
               f"--train_data={train_dir}", f"--eval_data={held_out_dir}",
               f"--workdir={workdir}"]
    if smoke:
        command += variant_flags(os.path.join(REPO, config_dir, config))
        command += ["--max_steps=2", "--eval_examples=2", "--batch_size=2"]
    if papers.get(paper).uses_vgg:
        command.append(f"--vgg_weights={FLAGS.vgg_weights if not smoke else 'none'}")
    if mixed_precision != "none":
        command.append(f"--mixed_precision={mixed_precision}")
    return command


def load_timings(root: str) -> dict:
    path = os.path.join(root, "timings.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def save_timings(root: str, timings: dict) -> None:
    atomic.write_json(os.path.join(root, "timings.json"), timings)


def train_run(name: str, paper: str, config: str, root: str, train_dir: str,
              held_out_dir: str, smoke: bool) -> None:
    """Trains (or resumes) one run; skips it when its last checkpoint is at the end."""
    workdir = os.path.join(root, name)
    target = 2 if smoke else config_steps(os.path.join(papers.get(paper).configs_dir(), config))
    if run_dir.latest_step(workdir) >= target:
        logging.info("%s: finished (%d steps), skipped.", name, target)
        return
    command = train_command(paper, config, workdir, train_dir, held_out_dir, smoke,
                            FLAGS.mixed_precision)
    logging.info("%s: training to step %d: %s", name, target, " ".join(command))
    os.makedirs(os.path.join(root, "logs"), exist_ok=True)
    # The entry is rewritten every minute, not only at the end, so that a session killed
    # from outside (a shell closed, a machine stopped) still counts the time it trained.
    timings = load_timings(root)
    if not run_dir.has_checkpoint(workdir) and name in timings:
        # The run starts over (its work directory was removed): so does its time.
        logging.info("%s: no checkpoint, so its earlier time (%.0f min) is dropped.", name,
                     timings[name]["seconds"] / 60)
        del timings[name]
    entry = timings.setdefault(name, {"seconds": 0.0, "sessions": 0, "load_at_start": []})
    entry["sessions"] += 1
    entry["load_at_start"].append(round(os.getloadavg()[0], 2))
    loads = entry.setdefault("load_samples", [])
    seconds_before, start = entry["seconds"], time.time()
    lock = threading.Lock()

    def save_progress() -> None:
        with lock:
            entry["seconds"] = seconds_before + time.time() - start
            entry["steps"] = run_dir.latest_step(workdir)
            loads.append(round(os.getloadavg()[0], 2))
            entry["load_mean"] = round(sum(loads) / len(loads), 2)
            save_timings(root, timings)

    finished = threading.Event()

    def save_every_minute() -> None:
        while not finished.wait(60):
            save_progress()

    save_progress()
    saver = threading.Thread(target=save_every_minute, daemon=True)
    saver.start()
    with open(os.path.join(root, "logs", f"{name}.log"), "a") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True,
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        for line in process.stdout:
            log.write(line)
            log.flush()
            if "step " in line or "error" in line.lower():
                print(f"[{name}] {line.rstrip()}", flush=True)
        code = process.wait()
    finished.set()
    saver.join()
    save_progress()
    if code == 130:
        raise RuntimeError(f"Training {name} was stopped (Ctrl-C or SIGTERM) after saving a "
                           "checkpoint; rerun the study to resume it.")
    if code != 0:
        raise RuntimeError(f"Training {name} failed (exit {code}); see "
                           f"{root}/logs/{name}.log. Rerun the study to resume it.")


def evaluate_method(method: str, name: str, images: str, source: str, output: str,
                    limit: int | None, postprocess: bool = False,
                    networks: perceptual_metrics.PerceptualNetworks | None = None) -> dict:
    """metrics.json of one method on one mask set; reused while the run has not moved
    on and the masks and the perceptual metrics computed are the same."""
    _, _, workdir = method.partition(":")
    computed = sorted(networks.weights) if networks is not None else []  # the metrics loaded
    options = {"postprocess": postprocess, "limit": limit,
               "checkpoint_step": run_dir.latest_step(workdir) if workdir else None}
    if computed:  # (absent otherwise, so results from before these metrics stay valid)
        options["perceptual"] = computed
    previous = evaluation.previous_result(output, source, IMAGE_SIZE, options)
    if previous is not None:
        return previous
    logging.info("Evaluating %s with %s masks.", name, source)
    return evaluation.evaluate(inpainters.load(method, postprocess=postprocess), images, source,
                               IMAGE_SIZE, output, limit=limit, method=name, options=options,
                               perceptual=networks)


def timing_table(root: str, names: list[str]) -> str:
    timings = load_timings(root)
    lines = ["| run | config | steps | training time | sessions | mean load (2 cores) |",
             "|---|---|---|---|---|---|"]
    for name, paper, config, what in RUNS:
        if name not in names or name not in timings:
            continue
        entry = timings[name]
        minutes = entry["seconds"] / 60
        lines.append(f"| {name} ({what}) | `reproductions/{paper}/configs/{config}` | "
                     f"{entry['steps']:,} | {minutes:.0f} min | {entry['sessions']} | "
                     f"{entry.get('load_mean', '?')} |")
    return "\n".join(lines) + "\n"


def _figure_columns(names: list[str]) -> list[str]:
    """The runs a figure shows: every run of `names` but the ablations."""
    return [name for name, _, _, what in RUNS if name in names and not what.startswith("ablation")]


def _image_grid(rows: list[list[str]], titles: list[str], path: str,
                row_labels: list[str] | None = None) -> None:
    """A grid of PNG files, one list of paths a row, titled above the first row."""
    import matplotlib
    from matplotlib.figure import Figure
    from PIL import Image

    matplotlib.use("Agg")
    fig = Figure(figsize=(1.3 * len(titles), 1.4 * len(rows)))
    axes = fig.subplots(len(rows), len(titles), squeeze=False)
    for row, images in enumerate(rows):
        for col, image in enumerate(images):
            axes[row][col].imshow(np.asarray(Image.open(image)))
            axes[row][col].set_xticks([])
            axes[row][col].set_yticks([])
            for spine in axes[row][col].spines.values():
                spine.set_visible(False)
            if row == 0:
                axes[row][col].set_title(titles[col].replace("_", "\n", 1), fontsize=7)
        if row_labels:
            axes[row][0].set_ylabel(row_labels[row], fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    fig.savefig(path, dpi=80)


def figure(root: str, names: list[str], path: str, count: int = 4) -> None:
    """Held-out faces with the centre hole: input | Telea | each run | ground truth."""
    columns = ["telea"] + _figure_columns(names)
    folder = os.path.join(root, "eval", "center")
    faces = sorted(f[:-len("_target.png")] for f in os.listdir(os.path.join(folder, "telea"))
                   if f.endswith("_target.png"))[:count]
    rows = [[os.path.join(folder, "telea", f"{face}_input.png")]
            + [os.path.join(folder, c, f"{face}_composite.png") for c in columns]
            + [os.path.join(folder, "telea", f"{face}_target.png")] for face in faces]
    _image_grid(rows, ["masked input"] + columns + ["ground truth"], path)


def bins_figure(root: str, names: list[str], table: list[dict], path: str) -> None:
    """Held-out faces with the NVIDIA masks, one row per hole-area bin (the bin's first
    face): input | biharmonic | each run (GLCIC also post-processed) | ground truth."""
    runs = _figure_columns(names)
    columns = ["biharmonic"] + [result["method"] for result in table
                                if result["method"].removesuffix("_postprocessed") in runs]
    folder = os.path.join(root, "eval", "irregular")
    biharmonic = next(r for r in table if r["method"] == "biharmonic")
    first_of_bin = {}
    for record in biharmonic["per_image"]:
        first_of_bin.setdefault(record["hole_area_bin"], record["name"])
    bins = [b for b in biharmonic["by_hole_area"] if b in first_of_bin]
    rows = [[os.path.join(folder, "biharmonic", f"{first_of_bin[b]}_input.png")]
            + [os.path.join(folder, c, f"{first_of_bin[b]}_composite.png") for c in columns]
            + [os.path.join(folder, "biharmonic", f"{first_of_bin[b]}_target.png")] for b in bins]
    _image_grid(rows, ["masked input"] + columns + ["ground truth"], path,
                row_labels=[f"hole {b}" for b in bins])


def curves(root: str, names: list[str], path: str) -> None:
    """Each run's reconstruction loss and held-out PSNR against steps."""
    runs, loss_keys = {}, {}
    for name in names:
        metrics = os.path.join(root, name, "metrics.jsonl")
        if not os.path.exists(metrics):
            continue
        runs[name] = run_dir.read_metrics(metrics)
        train = [r for r in runs[name] if r.get("split") == "train"]
        # The pixel reconstruction term, logged in every phase (the total loss
        # of a multi-phase run changes meaning between phases).
        loss_keys[name] = next((k for k in RECONSTRUCTION_KEYS
                                if train and all(k in r for r in train)), None)
    visualize.save_run_curves(runs, loss_keys, "psnr", path, loss_label="training loss",
                              loss_title="reconstruction loss (training)",
                              metric_label="PSNR (dB)", metric_title="held-out faces, PSNR")


def study_report(root: str, names: list[str], tables: dict[str, list[dict]],
                 held_out: int, train: int) -> str:
    """The Markdown block: split, tables per mask set, training times."""
    lines = [f"Held-out faces: {held_out} of {train + held_out} (SHA-256 of the file name, "
             f"{FLAGS.held_out_percent} %), {tables['center'][0]['count']} evaluated, at "
             f"{IMAGE_SIZE}x{IMAGE_SIZE}; hardware: {papers.device_description()}. Metrics on the "
             "composite, images in [0, 1]; L1 and L2 in the hole.", ""]
    for mask_name, source, _ in MASK_SETS:
        if mask_name not in tables:
            continue
        lines += [f"**{mask_name}** masks (`{os.path.basename(source)}`):", "",
                  evaluation.markdown_table(tables[mask_name])]
        if mask_name == "irregular":
            lines += ["PSNR (dB) by hole area:", "", evaluation.markdown_bins_table(tables[mask_name]),
                      "L1 in the hole by hole area:", "",
                      evaluation.markdown_bins_table(tables[mask_name], "l1_hole", "{:.4f}")]
            for key in ("lpips_alex", "lpips_vgg"):
                if all(key in r["overall"] for r in tables[mask_name]):
                    lines += [f"LPIPS ({key[6:]}) by hole area:", "",
                              evaluation.markdown_bins_table(tables[mask_name], key, "{:.4f}")]
    lines += ["Training (wall clock, summed over resumes):", "", timing_table(root, names)]
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    unknown = sorted(set(FLAGS.runs) - {r[0] for r in RUNS})
    if unknown:
        raise app.UsageError(f"--runs: unknown {unknown}; expected some of "
                             f"{[r[0] for r in RUNS]}.")
    with cli.user_errors():
        if not 0 < FLAGS.held_out_percent < 100:
            raise UserError(f"--held_out_percent must be between 0 and 100 (exclusive), got "
                            f"{FLAGS.held_out_percent}.")
        if not re.fullmatch(r"[\w-]+", FLAGS.name):
            raise UserError(f"--name must be letters, digits, _ or - (it names files and a "
                            f"README block), got {FLAGS.name!r}.")
        if FLAGS.readme:  # before hours of training, not after
            results_tables.check_results_block(FLAGS.readme, FLAGS.name)
        if not os.path.isdir(FLAGS.faces):
            raise UserError(f"--faces {FLAGS.faces!r} is not a folder: give the folder of face "
                            "photos (../shared/data/faces).")
        return study(FLAGS.root)


def study(root: str) -> int:
    """Splits, trains, evaluates and reports (see the module docstring)."""
    train_dir, held_out_dir = os.path.join(root, "faces_train"), os.path.join(root, "faces_heldout")
    train_count, held_out_count = splits.link_split(FLAGS.faces, train_dir, held_out_dir,
                                                    FLAGS.held_out_percent)
    logging.info("Split: %d training, %d held-out faces.", train_count, held_out_count)
    runs = [r for r in RUNS if r[0] in FLAGS.runs]
    started = time.time()
    if FLAGS.train:
        for name, paper, config, _ in runs:
            try:
                train_run(name, paper, config, root, train_dir, held_out_dir, FLAGS.smoke)
            except RuntimeError as error:
                sys.exit(f"error: {error}")
    trained = time.time()
    if not FLAGS.evaluate:
        print(f"Training took {(trained - started) / 60:.1f} min in this call.")
        return 0
    networks = perceptual_metrics.load_networks(perceptual_metrics.config_from_flags())
    tables = {}
    for mask_name, source, scored_papers in MASK_SETS:
        mask_source = FLAGS.masks if source == "nvidia_irregular" else source
        methods = [(b, b, False) for b in BASELINES]
        for name, paper, _, _ in runs:
            if scored_papers is None or paper in scored_papers:
                methods.append((f"{paper}:{os.path.join(root, name)}", name, False))
                if papers.get(paper).postprocess is not None:
                    # The network alone, then with the paper's post-processing (GLCIC's).
                    methods.append((methods[-1][0], f"{name}_postprocessed", True))
        tables[mask_name] = [
            evaluate_method(method, name, held_out_dir, mask_source,
                            os.path.join(root, "eval", mask_name, name), FLAGS.eval_limit,
                            postprocess, networks)
            for method, name, postprocess in methods]
    names = [r[0] for r in runs]
    block = study_report(root, names, tables, held_out_count, train_count)
    with open(os.path.join(root, f"{FLAGS.name}.md"), "w") as f:
        f.write(block + "\n")
    if FLAGS.figures:
        figures = os.path.join(FLAGS.figures, FLAGS.name)
        figure(root, names, f"{figures}.png")
        bins_figure(root, names, tables["irregular"], f"{figures}_bins.png")
        curves(root, names, f"{figures}_curves.png")
    if FLAGS.readme:
        results_tables.write_results_block(FLAGS.readme, FLAGS.name, block)
    print(block)
    print(f"Training took {(trained - started) / 60:.1f} min in this call, evaluation "
          f"{(time.time() - trained) / 60:.1f} min.")
    return 0


if __name__ == "__main__":
    cli.run_app(main, __doc__, __name__)
