r"""The evaluation's speed with and without LPIPS, FID and KID.

  python benchmarks/evaluation_speed.py --images=../shared/data/faces --limit=64 \
      --image_size=256

Runs `inpaint-eval`'s protocol (common.evaluation.evaluate) with the mean-fill
baseline, whose own cost is negligible, three times on the same images:
without perceptual metrics, with LPIPS (--lpips_net) only, and with LPIPS, FID
and KID; and reports images per second for each. The networks get the given
weight files (the --lpips_* and --fid_weights flags, or the cache), or, when
a file is missing, weights drawn at random at the real networks' shapes: the
speed of a network does not depend on its weights, so this measures what the
real files would cost. FID's time includes its one square root of a
2048x2048 matrix, the same whatever the number of images: its share falls
as --limit grows. The last line printed is one JSON object.
"""

import json
import os
import tempfile
import time

import numpy as np
from absl import app
from absl import flags

from common import cli
from common import evaluation
from common import fid
from common import lpips
from common import perceptual_metrics
from common.errors import UserError
from reproductions import inpainters

flags.DEFINE_string("images", None, "Folder of photos.")
flags.DEFINE_integer("limit", 64, "Images evaluated in each setting.", lower_bound=2)
flags.DEFINE_integer("image_size", 256, "Side the images are cropped and resized to.",
                     lower_bound=32)
flags.DEFINE_string("masks", "bbox", "Mask folder or one of "
                    f"{', '.join(evaluation.MASK_SOURCES)}.")
perceptual_metrics.define_flags()
FLAGS = flags.FLAGS


def _random_state(shapes: dict, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {key: (rng.standard_normal(shape) * 0.05).astype(np.float32)
            for key, shape in shapes.items()}


def random_lpips(net: str) -> lpips.LPIPS:
    """LPIPS with random weights at the real shapes."""
    shapes = {f"features.{i}.{kind}": (shape if kind == "weight" else shape[:1])
              for i, shape in lpips.KERNEL_SHAPES[net].items() for kind in ("weight", "bias")}
    shapes.update({f"lin{k}.model.1.weight": (1, c, 1, 1)
                   for k, c in enumerate(lpips.tap_channels(net))})
    state = _random_state(shapes, 0)
    return lpips.LPIPS(net, state, state)


def random_inception() -> fid.FIDInception:
    """pytorch-fid's Inception with random weights at the real shapes."""
    shapes = {}
    for prefix, c_out, c_in, (kh, kw), _, _ in fid.conv_specs():
        shapes[f"{prefix}.conv.weight"] = (c_out, c_in, kh, kw)
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.bn.{name}"] = (c_out,)
    state = _random_state(shapes, 1)
    for key in state:
        if key.endswith("running_var"):
            state[key] = np.abs(state[key]) + 1.0
    return fid.FIDInception(state)


def images_per_second(networks, output: str, limit: int) -> float:
    start = time.perf_counter()
    result = evaluation.evaluate(inpainters.load("mean_fill"), FLAGS.images, FLAGS.masks,
                                 FLAGS.image_size, output, limit=limit, progress=False,
                                 perceptual=networks)
    return result["count"] / (time.perf_counter() - start)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not FLAGS.images:
        raise app.UsageError("--images is required.")
    with cli.user_errors():
        if not os.path.isdir(FLAGS.images):
            raise UserError(f"--images {FLAGS.images!r} is not a folder.")
        config = perceptual_metrics.config_from_flags()
        # The weight files where found (a missing one is logged), else random weights.
        found = perceptual_metrics.load_networks(config)
        lpips_model = found.lpips if found.lpips is not None else random_lpips(config.lpips_net)
        inception = found.inception if found.inception is not None else random_inception()
        lpips_weights = "files" if found.lpips is not None else "random"
        inception_weights = "files" if found.inception is not None else "random"
        settings = {
            "none": perceptual_metrics.PerceptualNetworks(),
            f"lpips_{config.lpips_net}": perceptual_metrics.PerceptualNetworks(lpips=lpips_model),
            f"lpips_{config.lpips_net}+fid+kid": perceptual_metrics.PerceptualNetworks(
                lpips=lpips_model, inception=inception)}
        report = {"images": FLAGS.limit, "image_size": FLAGS.image_size,
                  "weights": {"lpips": lpips_weights, "inception": inception_weights},
                  "cpu_count": os.cpu_count(), "images_per_second": {}}
        with tempfile.TemporaryDirectory() as scratch:
            # Untimed first: tracing the networks' tf.functions at the batch shape.
            batch = np.zeros((perceptual_metrics.BATCH_SIZE, FLAGS.image_size,
                              FLAGS.image_size, 3), np.float32)
            lpips_model(batch, batch)
            inception(batch)
            images_per_second(settings["none"], os.path.join(scratch, "warm-up"), 2)
            for name, networks in settings.items():
                speed = images_per_second(networks, os.path.join(scratch, name), FLAGS.limit)
                report["images_per_second"][name] = round(speed, 2)
                print(f"{name:>24}: {speed:6.2f} images/s")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    cli.run_app(main, __doc__, __name__)
