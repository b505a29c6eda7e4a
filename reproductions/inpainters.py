"""Every method of the suite behind one interface: `inpainter(image, mask) -> composite`.

`image` is float32 HxWx3 RGB in [0, 1] of any size (hole pixels may hold
anything), `mask` is bool HxW (True = hole); the result is float32 HxWx3 in
[0, 1], equal to `image` at every known pixel. Methods:

  * classical baselines: "telea", "ns", "biharmonic", "mean_fill";
  * a trained reproduction: "PAPER:WORKDIR" (the latest checkpoint of a
    training run, e.g. "glcic:runs/glcic_places"), or "PAPER:WORKDIR@STEP" (the
    checkpoint of that step, from its checkpoints/ or milestones/);
  * an exported SavedModel: "saved_model:PATH" (see reproductions/export.py).

Each paper keeps its own size policy, from its record (reproductions/papers.py):
networks of one input size (the center-region models of Context Encoders and
Structural Inpainting, and the random-region Context Encoders: 128x128) get the
image resized to that size, completed, and the completion resized back into the
hole; fully convolutional ones (GLCIC, DMFN) complete the image at its own size,
reflect-padded to a multiple of 4 (`fit="pad"`), or, as GLCIC's official
inpaint.lua does, resized to the nearest multiple of 4 with the resized mask
thresholded at 0.2 (`fit="resize"`; the completion is resized back). A paper
with post-processing (GLCIC's fast marching, then Poisson blending) applies it
unless told not to; the official inpaint.lua never runs it (it defines
`--nopostproc` but tests `opt.postproc`, which is never set). The center-region
models only ever fill their central hole: masks elsewhere are not what they
were trained for.

Large photos: a fully convolutional network's memory grows with the pixels
it sees (DMFN's paper generator: about 8.5 GB per megapixel, measured on CPU;
a whole 12-megapixel photo is killed by the kernel for want of memory). Above
`max_megapixels` (default 1) only a window is completed: the hole's bounding
box with `context` pixels (default 128) on every side; pixels outside the hole
never change anyway, and farther ones weigh little in a fill. A window itself
above the limit is refused with the numbers and the flag.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from common import baselines
from common import experiment
from common import masks
from common import run_dir
from common import train_loop
from common import vgg
from common.errors import UserError
from reproductions import papers

FITS = ("pad", "resize")
MAX_MEGAPIXELS = 1.0
# Written next to an exported SavedModel: {"paper", "postprocess_outside_graph"}.
EXPORT_INFO = "inpainting.json"
CONTEXT = 128
# The smallest photo side a trained model takes: below it, reflect padding to a
# multiple of 4 and the networks' strided layers have nothing to work on.
MIN_SIDE = 8
Inpainter = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _check(image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(image with its hole blanked, bool mask): checked shapes, and nothing of what
    lay under the hole left for a network to see (common.masks.blank_hole)."""
    image = np.asarray(image, np.float32)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be HxWx3 RGB, got shape {image.shape}.")
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask is {mask.shape[0]}x{mask.shape[1]} but the image is "
                         f"{image.shape[0]}x{image.shape[1]}.")
    if min(image.shape[:2]) < MIN_SIDE:
        raise UserError(f"The photo is {image.shape[1]}x{image.shape[0]} px; a trained model "
                        f"needs at least {MIN_SIDE} px on each side.")
    mask = mask.astype(bool)
    blanked = masks.blank_hole(image[None], mask[None, ..., None].astype(np.float32))
    return blanked.numpy()[0], mask


def restore_for_inference(task: train_loop.Task, workdir: str, step: int | None = None) -> str:
    """Restores the networks (and stored statistics) of the latest checkpoint, or of the
    one of `step`; not optimizers."""
    if step is not None:
        latest = run_dir.checkpoint_at_step(workdir, step)
    else:
        latest = run_dir.newest_readable(run_dir.checkpoint_dir(workdir), repair=False)
    if latest is None:
        raise FileNotFoundError(f"No readable checkpoint in {run_dir.checkpoint_dir(workdir)}: "
                                "train first, or give the work directory of a training run.")
    items = {name: item for name, item in task.checkpoint_items().items()
             if not isinstance(item, keras.optimizers.Optimizer)}
    tf.train.Checkpoint(**items).restore(latest).expect_partial().assert_existing_objects_matched()
    return latest


def split_step(path: str) -> tuple[str, int | None]:
    """("WORKDIR", STEP) of "WORKDIR@STEP"; (path, None) without a step."""
    workdir, at, step = path.rpartition("@")
    if not at:
        return path, None
    if not step.isdigit():
        raise UserError(f"--method: {path!r} ends in @{step}; expected WORKDIR@STEP with STEP a "
                        "checkpoint's step, e.g. runs/dmfn@1500.")
    return workdir, int(step)


def load_task(workdir: str) -> tuple[str, train_loop.Task]:
    """(paper, task with the trained weights) of a training run's work directory;
    "WORKDIR@STEP" restores the checkpoint of that step."""
    workdir, step = split_step(workdir)
    paper, fields = experiment.read_paper_config(workdir)
    if paper not in papers.PAPERS:
        raise UserError(f"{workdir}/config.json names an unknown paper {paper!r}.")
    record = papers.get(paper)
    config = record.config(**experiment.with_legacy_fields(record.config, fields))
    task = record.build_task(vgg.without_weights(config))
    restore_for_inference(task, workdir, step)
    return paper, task


@dataclasses.dataclass
class PaperInpainter:
    """A trained reproduction as an inpainter (see the module docstring for sizes)."""

    paper: str
    task: train_loop.Task
    postprocess: bool = True  # the paper's post-processing, if it has one (GLCIC)
    fit: str = "pad"  # fully convolutional models: "pad" or "resize" to a multiple of 4

    max_megapixels: float = MAX_MEGAPIXELS  # fully convolutional models: larger -> a window
    context: int = CONTEXT  # pixels kept around the hole's bounding box in a window

    def __post_init__(self):
        self.record = papers.get(self.paper)
        if self.fit not in FITS:
            raise UserError(f"--fit must be one of {FITS}, got {self.fit!r}.")
        if not self.max_megapixels > 0:
            raise UserError(f"--max_megapixels must be positive, got {self.max_megapixels}.")

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        image, mask = _check(image, mask)
        policy, _ = self.record.size_policy
        limit = self.max_megapixels * 1e6
        if policy == "resize" or mask.size <= limit:
            return self._inpaint(image, mask)
        top, bottom, left, right = hole_window(mask, self.context)
        window = (bottom - top) * (right - left)
        if window > limit:
            raise UserError(
                f"The hole with {self.context} px of context spans {right - left}x"
                f"{bottom - top} px ({window / 1e6:.1f} MP), above --max_megapixels="
                f"{self.max_megapixels:g} (DMFN's paper generator needs about 8.5 GB per "
                "megapixel): raise --max_megapixels if the memory is there, or resize the "
                "photo.")
        completed = image.copy()
        completed[top:bottom, left:right] = self._inpaint(image[top:bottom, left:right],
                                                          mask[top:bottom, left:right])
        return completed

    @property
    def center_only(self) -> bool:
        """Whether this model fills only the central square of its input (Context
        Encoders' center variant, Structural Inpainting)."""
        return (getattr(self.task, "center_box", None) is not None
                and getattr(self.task.config, "variant", "center") == "center")

    def unfilled_hole(self, mask: np.ndarray) -> np.ndarray:
        """The hole pixels of `mask` (bool HxW) this model leaves as they are.

        A centre-region model (Context Encoders' center variant, Structural
        Inpainting) fills only the central square of its 128x128 input, that
        is the middle half of the photo each way; the rest of a hole keeps the
        input's fill. No pixel for every other model.
        """
        mask = np.asarray(mask, bool)
        if not self.center_only:
            return np.zeros_like(mask)
        _, size = self.record.size_policy
        top, left, side = self.task.center_box
        region = np.zeros((1, size, size, 1), np.float32)
        region[:, top:top + side, left:left + side] = 1.0
        region = tf.image.resize(region, mask.shape, method="nearest").numpy()[0, ..., 0] > 0.5
        return mask & ~region

    def _inpaint(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The paper's size policy and post-processing on the whole of `image`."""
        policy, size = self.record.size_policy
        if policy == "resize":
            height, width = mask.shape
            small = tf.image.resize(image[None], [size, size], antialias=True).numpy()
            small_mask = tf.image.resize(mask[None, ..., None].astype(np.float32), [size, size],
                                         method="nearest").numpy()
            completed = self._complete(small, small_mask)
            completed = tf.image.resize(completed[None], [height, width]).numpy()[0]
        elif self.fit == "resize":
            completed = self._complete_resized(image, mask)
        else:
            completed = self._complete_padded(image, mask)
        composite = np.where(mask[..., None], np.clip(completed, 0.0, 1.0), image)
        if self.postprocess and self.record.postprocess is not None:
            composite = self.record.postprocess(image[None], composite[None], mask[None])[0]
        return composite.astype(np.float32)

    def _complete(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The task's composite of a batch of one, back in [0, 1]."""
        outputs = self.task.predict({"image": image * 2.0 - 1.0, "mask": mask})
        return (outputs["composite"].numpy()[0] + 1.0) / 2.0

    def _complete_padded(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        height, width = mask.shape
        _, multiple = self.record.size_policy
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        padded = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
        # The mask is reflected with the image: a reflected hole pixel is unknown too.
        padded_mask = np.pad(mask, ((0, pad_h), (0, pad_w)), mode="reflect").astype(np.float32)
        return self._complete(padded[None], padded_mask[None, ..., None])[:height, :width]


    def _complete_resized(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """inpaint.lua's way: bilinear resize to the nearest multiple of 4 (mask >= 0.2)."""
        height, width = mask.shape
        _, multiple = self.record.size_policy
        size = [max(multiple, int(np.floor(s / multiple + 0.5)) * multiple)
                for s in (height, width)]
        small = tf.image.resize(image[None], size).numpy()
        small_mask = (tf.image.resize(mask[None, ..., None].astype(np.float32), size).numpy()
                      >= 0.2).astype(np.float32)
        completed = self._complete(small, small_mask)
        return tf.image.resize(completed[None], [height, width]).numpy()[0]


def unfilled_warning(method: str, inpainter: Inpainter, mask: np.ndarray) -> str:
    """A one-line warning when `inpainter` leaves part of the hole of `mask` unfilled
    (see `PaperInpainter.unfilled_hole`); "" when it fills all of it."""
    unfilled_hole = getattr(inpainter, "unfilled_hole", None)
    if unfilled_hole is None:
        return ""
    outside, hole = int(np.count_nonzero(unfilled_hole(mask))), int(np.count_nonzero(mask))
    if not outside:
        return ""
    anywhere = ", ".join(papers.fully_convolutional_papers())
    return (f"{outside:,} of the {hole:,} hole pixels lie outside the central region "
            f"{method} fills (the middle half of the image each way) and keep the grey fill; "
            f"{anywhere} or a classical method fill holes anywhere.")


def hole_window(mask: np.ndarray, context: int) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the hole's bounding box grown by `context` px on
    each side, clipped to the image; end indices are exclusive."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    height, width = mask.shape
    return (max(0, rows[0] - context), min(height, rows[-1] + 1 + context),
            max(0, cols[0] - context), min(width, cols[-1] + 1 + context))


class SavedModelInpainter:
    """An exported model (reproductions/export.py), loaded without the suite's code.

    A paper's post-processing (GLCIC's) is not in the graph: it is applied
    here, as for "PAPER:WORKDIR", when the export's EXPORT_INFO says so and
    `postprocess`.
    """

    def __init__(self, path: str, postprocess: bool = True):
        if not os.path.isdir(path):
            raise FileNotFoundError(f"No exported model at {path!r}.")
        self.model = tf.saved_model.load(path)
        info_path = os.path.join(path, EXPORT_INFO)
        info = {}
        if os.path.exists(info_path):
            with open(info_path) as f:
                info = json.load(f)
        self.blend = None
        if postprocess and info.get("postprocess_outside_graph"):
            self.blend = papers.get(info["paper"], f"{info_path}: paper").postprocess

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        image, mask = _check(image, mask)
        composite = self.model.serve(tf.constant(image[None]),
                                     tf.constant(mask[None, ..., None].astype(np.float32)))
        composite = np.where(mask[..., None], composite.numpy()[0], image)
        if self.blend is not None:
            composite = self.blend(image[None], composite[None], mask[None])[0]
        return composite.astype(np.float32)


def load(method: str, postprocess: bool = True, fit: str = "pad",
         max_megapixels: float = MAX_MEGAPIXELS) -> Inpainter:
    """The inpainter named by `method` (see the module docstring)."""
    if method in baselines.BASELINES:
        return baselines.BASELINES[method]
    kind, _, path = method.partition(":")
    if kind == "saved_model" and path:
        return SavedModelInpainter(path, postprocess=postprocess)
    if kind in papers.PAPERS and path:
        paper, task = load_task(path)
        if paper != kind:
            raise UserError(f"--method says {kind} but {path} holds a {paper} run.")
        return PaperInpainter(paper, task, postprocess=postprocess, fit=fit,
                              max_megapixels=max_megapixels)
    raise UserError(f"Unknown method {method!r}: expected one of {sorted(baselines.BASELINES)}, "
                     f"PAPER:WORKDIR[@STEP] with PAPER in {papers.PAPERS}, or saved_model:PATH.")
