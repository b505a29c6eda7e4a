"""LPIPS, FID and KID in an evaluation: their flags, their networks, and one pass over the images.

Every command that evaluates (`inpaint-eval`, `benchmarks/evaluate_all.py`,
`benchmarks/faces_study.py`) defines the same flags with `define_flags` and
loads the networks once with `load_networks`. A network whose weight file is
missing (and cannot be downloaded) is left out with one log line naming the
file and its flag; the other metrics run as before.

The metrics are computed on the 8-bit images the evaluation writes
(NAME_composite.png against NAME_target.png), so running the reference
packages on those files gives the same numbers.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import tensorflow as tf
from absl import flags
from absl import logging

from common import fid as fid_lib
from common import lpips as lpips_lib
from common import metric_weights
from common import torch_files

BATCH_SIZE = 16


@dataclasses.dataclass(frozen=True)
class PerceptualConfig:
    """Which perceptual metrics to compute, and where their weights are.

    Attributes:
      enabled: False skips LPIPS, FID and KID altogether.
      fid: False skips FID and KID only (the periodic evaluation in training,
        whose few images would make them meaningless).
      lpips_net: "alex" (the reference's default) or "vgg".
      lpips_backbone_weights: torchvision's state dict of that backbone, or None.
      lpips_linear_weights: the lpips release's v0.1/<net>.pth, or None.
      fid_weights: pytorch-fid's pt_inception-2015-12-05-6726825d.pth, or None.
      weights_cache: folder searched, and downloaded into; None for the default.
      download: fetch a missing file from its canonical address.
    """

    enabled: bool = True
    fid: bool = True
    lpips_net: str = "alex"
    lpips_backbone_weights: str | None = None
    lpips_linear_weights: str | None = None
    fid_weights: str | None = None
    weights_cache: str | None = None
    download: bool = True


def define_lpips_flags(values: flags.FlagValues = flags.FLAGS) -> None:
    """The LPIPS flags (also read by training's periodic evaluation); defined once."""
    if "lpips_net" in values:
        return
    flags.DEFINE_enum("lpips_net", "alex", list(metric_weights.LPIPS_NETS),
                      "LPIPS backbone: alex (the reference's default) or vgg; the metric is "
                      "recorded as lpips_<net>.", flag_values=values)
    flags.DEFINE_string("lpips_backbone_weights", None, "torchvision's ImageNet state dict of the "
                        "LPIPS backbone (alexnet-owt-7be5be79.pth or vgg16-397923af.pth).",
                        flag_values=values)
    flags.DEFINE_string("lpips_linear_weights", None, "The lpips release's linear layers, "
                        "weights/v0.1/<net>.pth.", flag_values=values)
    flags.DEFINE_string("weights_cache", None, "Folder where the metric weights are looked for "
                        "and downloaded to (default $INPAINTING_WEIGHTS_CACHE or "
                        "~/.cache/inpainting-reproductions/weights).", flag_values=values)
    flags.DEFINE_boolean("download_weights", True, "Download a metric's missing weight file "
                         "from its canonical address (hash-checked).", flag_values=values)


def define_flags(values: flags.FlagValues = flags.FLAGS) -> None:
    """The perceptual-metric flags of every evaluating command; defined once."""
    define_lpips_flags(values)
    if "perceptual_metrics" in values:
        return
    flags.DEFINE_boolean("perceptual_metrics", True, "Also compute LPIPS, FID and KID (each "
                         "needs its weight files; a missing one is skipped and said so).",
                         flag_values=values)
    flags.DEFINE_string("fid_weights", None, "pytorch-fid's Inception, "
                        "pt_inception-2015-12-05-6726825d.pth (FID and KID).", flag_values=values)


def config_from_flags(values: flags.FlagValues = flags.FLAGS,
                      lpips_only: bool = False) -> PerceptualConfig:
    """The flags as a PerceptualConfig; `lpips_only` for a command with the LPIPS flags
    only (training: enabled by its --eval_lpips)."""
    return PerceptualConfig(
        enabled=values.eval_lpips if lpips_only else values.perceptual_metrics,
        fid=not lpips_only, lpips_net=values.lpips_net,
        lpips_backbone_weights=values.lpips_backbone_weights or None,
        lpips_linear_weights=values.lpips_linear_weights or None,
        fid_weights=None if lpips_only else (values.fid_weights or None),
        weights_cache=values.weights_cache or None, download=values.download_weights)


@dataclasses.dataclass
class PerceptualNetworks:
    """The loaded networks (None where skipped), where their weights came from, and why
    any metric was skipped ({metric: reason})."""

    lpips: lpips_lib.LPIPS | None = None
    inception: fid_lib.FIDInception | None = None
    weights: dict = dataclasses.field(default_factory=dict)
    skipped: dict = dataclasses.field(default_factory=dict)

    @property
    def lpips_key(self) -> str | None:
        return f"lpips_{self.lpips.net}" if self.lpips is not None else None


def _locate(weight_file, path, config):
    return metric_weights.locate(weight_file, path, config.weights_cache,
                                 allow_download=config.download)


@functools.lru_cache(maxsize=4)
def load_networks(config: PerceptualConfig) -> PerceptualNetworks:
    """The networks `config` asks for, each loaded once per process.

    Raises:
      UserError: a path given by a flag does not exist, or holds another
        network's weights.
    """
    networks = PerceptualNetworks()
    if not config.enabled:
        return networks
    net = config.lpips_net
    key = f"lpips_{net}"
    backbone, why = _locate(metric_weights.LPIPS_BACKBONES[net], config.lpips_backbone_weights,
                            config)
    linear, why_linear = _locate(metric_weights.LPIPS_LINEAR[net], config.lpips_linear_weights,
                                 config)
    if backbone and linear:
        networks.lpips = lpips_lib.LPIPS(
            net, torch_files.read_pth_state_dict(backbone, "--lpips_backbone_weights"),
            torch_files.read_pth_state_dict(linear, "--lpips_linear_weights"),
            backbone_source=f"--lpips_backbone_weights {backbone!r}",
            linear_source=f"--lpips_linear_weights {linear!r}")
        networks.weights[key] = {"backbone": backbone, "linear": linear}
    else:
        networks.skipped[key] = why or why_linear
    if config.fid:
        _load_inception(config, networks)
    for metric, reason in networks.skipped.items():
        if metric != "kid":  # one line for FID and KID, which share their file
            _log_skipped(metric, reason)
    return networks


def _log_skipped(metric: str, reason: str) -> None:
    """The one log line of a skipped metric ("LPIPS ALEX skipped: ...")."""
    label = "FID and KID" if metric == "fid" else metric.upper().replace("_", " ")
    logging.warning("%s skipped: %s.", label, reason)


def _load_inception(config: PerceptualConfig, networks: PerceptualNetworks) -> None:
    inception, why = _locate(metric_weights.FID_INCEPTION, config.fid_weights, config)
    if inception:
        networks.inception = fid_lib.FIDInception(
            torch_files.read_pth_state_dict(inception, "--fid_weights"),
            source=f"--fid_weights {inception!r}")
        networks.weights["fid"] = networks.weights["kid"] = inception
    else:
        networks.skipped["fid"] = networks.skipped["kid"] = why


class SetScorer:
    """LPIPS per image and Inception features of one evaluation, batch by batch.

    `add` each (composite, target) pair, float [H, W, 3] in [0, 1]; `finish`
    returns the per-image LPIPS in the order added, FID and KID.
    """

    def __init__(self, networks: PerceptualNetworks, batch_size: int = BATCH_SIZE,
                 image_size: int | None = None):
        too_small = (networks.lpips is not None and image_size is not None
                     and image_size < lpips_lib.MIN_SIDE[networks.lpips.net])
        if too_small:
            net = networks.lpips.net
            reason = (f"{image_size} px images are below the {lpips_lib.MIN_SIDE[net]} px "
                      f"that LPIPS's {net} backbone needs")
            _log_skipped(networks.lpips_key, reason)
            weights = {k: v for k, v in networks.weights.items() if k != networks.lpips_key}
            networks = dataclasses.replace(networks, lpips=None, weights=weights,
                                           skipped={**networks.skipped,
                                                    networks.lpips_key: reason})
        self.networks, self.batch_size = networks, batch_size
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._lpips: list[float] = []
        self._features: dict[str, list[np.ndarray]] = {"composites": [], "targets": []}

    @property
    def active(self) -> bool:
        return self.networks.lpips is not None or self.networks.inception is not None

    def add(self, composite: np.ndarray, target: np.ndarray) -> None:
        if not self.active:
            return
        self._pending.append((np.asarray(composite, np.float32), np.asarray(target, np.float32)))
        if len(self._pending) >= self.batch_size:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        composites = tf.constant(np.stack([c for c, _ in self._pending]))
        targets = tf.constant(np.stack([t for _, t in self._pending]))
        self._pending = []
        if self.networks.lpips is not None:
            distances = self.networks.lpips(composites * 2.0 - 1.0, targets * 2.0 - 1.0)
            self._lpips.extend(float(v) for v in distances.numpy())
        if self.networks.inception is not None:
            self._features["composites"].append(self.networks.inception(composites).numpy())
            self._features["targets"].append(self.networks.inception(targets).numpy())

    def finish(self) -> dict:
        """{"lpips": [per image] or None, "fid": float or None, "kid": {"mean", "std",
        "subsets", "subset_size"} or None, "skipped": {metric: reason}}."""
        self._flush()
        result = {"lpips": self._lpips if self.networks.lpips is not None else None,
                  "fid": None, "kid": None, "skipped": dict(self.networks.skipped)}
        if self.networks.inception is not None:
            composites = np.concatenate(self._features["composites"])
            targets = np.concatenate(self._features["targets"])
            if len(targets) < 2:
                reason = f"FID and KID need at least 2 images, the evaluation has {len(targets)}"
                _log_skipped("fid", reason)
                result["skipped"].update(fid=reason, kid=reason)
            else:
                result["fid"] = fid_lib.fid_from_features(composites, targets)
                result["kid"] = fid_lib.kernel_inception_distance(composites, targets)
        return result
