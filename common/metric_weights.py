"""The weight files of the field's perceptual metrics: where each comes from and where it is found.

LPIPS and FID are only comparable with published numbers when computed with
the networks and weights of their reference implementations, so the suite
reads those very files (PyTorch checkpoints, read without PyTorch by
`common.torch_files`):

  * LPIPS's backbones: torchvision's ImageNet AlexNet and VGG16 state dicts
    (not the Caffe VGG16 the feature losses use: the LPIPS linear layers were
    fitted on torchvision's);
  * LPIPS's linear layers: the `lpips` release's `weights/v0.1/<net>.pth`;
  * FID and KID's Inception: pytorch-fid's port of the 2015 TensorFlow graph.

A file is found, in this order, at the path its flag gives, in the cache
folder (`--weights_cache`, default `$INPAINTING_WEIGHTS_CACHE` or
~/.cache/inpainting-reproductions/weights), or is downloaded on first use from
its canonical address into that cache (unless --nodownload_weights or
$INPAINTING_OFFLINE=1) and checked against its published SHA-256 (the full digest, or the prefix that torchvision and pytorch-fid
put in their file names, as `torch.hub` checks it).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import urllib.request

from absl import logging

from common import torch_files
from common.errors import UserError

CACHE_ENVIRONMENT_VARIABLE = "INPAINTING_WEIGHTS_CACHE"
# Set to 1, nothing is downloaded (tests; machines without internet access).
OFFLINE_ENVIRONMENT_VARIABLE = "INPAINTING_OFFLINE"
DOWNLOAD_TIMEOUT_SECONDS = 60


@dataclasses.dataclass(frozen=True)
class WeightFile:
    """One released weight file.

    Attributes:
      what: what it holds, for messages.
      file_name: its name in the cache (the release's own name).
      url: its canonical download address.
      sha256: its published SHA-256 in hex, whole or a prefix.
      flag: the command-line flag that gives its path.
    """

    what: str
    file_name: str
    url: str
    sha256: str
    flag: str


LPIPS_NETS = ("alex", "vgg")

LPIPS_BACKBONES = {
    "alex": WeightFile("torchvision's ImageNet AlexNet", "alexnet-owt-7be5be79.pth",
                       "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                       "7be5be79", "--lpips_backbone_weights"),
    "vgg": WeightFile("torchvision's ImageNet VGG16", "vgg16-397923af.pth",
                      "https://download.pytorch.org/models/vgg16-397923af.pth",
                      "397923af", "--lpips_backbone_weights"),
}

# The lpips release (v0.1.4) ships these in its package; its repository is the
# canonical address. Digests of the released files.
_LPIPS_RELEASE = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1"
LPIPS_LINEAR = {
    "alex": WeightFile("the LPIPS v0.1 linear layers for AlexNet", "lpips-v0.1-alex.pth",
                       f"{_LPIPS_RELEASE}/alex.pth",
                       "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
                       "--lpips_linear_weights"),
    "vgg": WeightFile("the LPIPS v0.1 linear layers for VGG16", "lpips-v0.1-vgg.pth",
                      f"{_LPIPS_RELEASE}/vgg.pth",
                      "a78928a0af1e5f0fcb1f3b9e8f8c3a2a5a3de244d830ad5c1feddc79b8432868",
                      "--lpips_linear_weights"),
}

FID_INCEPTION = WeightFile(
    "pytorch-fid's Inception (the 2015 TensorFlow FID graph)",
    "pt_inception-2015-12-05-6726825d.pth",
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
    "pt_inception-2015-12-05-6726825d.pth",
    "6726825d", "--fid_weights")


def default_cache_dir() -> str:
    """$INPAINTING_WEIGHTS_CACHE, else ~/.cache/inpainting-reproductions/weights."""
    return os.environ.get(CACHE_ENVIRONMENT_VARIABLE) or os.path.join(
        os.path.expanduser("~"), ".cache", "inpainting-reproductions", "weights")


def download(weight_file: WeightFile, target: str) -> None:
    """Downloads `weight_file` to `target`, atomically, after checking its hash.

    Raises:
      OSError: the download failed (no network, HTTP error), or the file's
        hash is not the published one (then nothing is written).
    """
    folder = os.path.dirname(target) or "."
    os.makedirs(folder, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=weight_file.file_name + ".", suffix=".part",
                                       dir=folder)
    try:
        with os.fdopen(handle, "wb") as out, \
                urllib.request.urlopen(weight_file.url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
        digest = torch_files.sha256(partial)  # read once: the files are hundreds of MB
        if not digest.startswith(weight_file.sha256.lower()):
            raise OSError(f"{weight_file.url} has SHA-256 {digest[:16]}..., "
                          f"not the published {weight_file.sha256}")
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def locate(weight_file: WeightFile, path: str | None = None, cache_dir: str | None = None,
           allow_download: bool = True) -> tuple[str | None, str]:
    """Finds a weight file: at `path`, in the cache, or by downloading it.

    Args:
      weight_file: the file sought.
      path: the value of its flag, or None. A path given must exist: a typo
        is an error, not a skipped metric.
      cache_dir: the cache folder; None for `default_cache_dir()`.
      allow_download: try the canonical address when the file is not cached.

    Returns:
      (path, "") when found, else (None, why), `why` naming the file, its flag
      and what was tried, for the one log line of a skipped metric.

    Raises:
      UserError: `path` is given and is not a file.
    """
    if path:
        if not os.path.isfile(path):
            raise UserError(f"{weight_file.flag} {path!r} does not exist (expected "
                            f"{weight_file.what}, {weight_file.file_name}).")
        return path, ""
    cache_dir = cache_dir or default_cache_dir()
    cached = os.path.join(cache_dir, weight_file.file_name)
    if os.path.isfile(cached):
        return cached, ""
    if not allow_download or os.environ.get(OFFLINE_ENVIRONMENT_VARIABLE) == "1":
        return None, (f"{weight_file.file_name} ({weight_file.what}) is not in {cache_dir}; "
                      f"give it with {weight_file.flag}=PATH")
    try:
        logging.info("Downloading %s from %s to %s.", weight_file.what, weight_file.url, cached)
        download(weight_file, cached)
    except OSError as error:
        return None, (f"{weight_file.file_name} ({weight_file.what}) is not in {cache_dir} and "
                      f"could not be downloaded ({error}); give it with {weight_file.flag}=PATH")
    return cached, ""
