"""Packs a folder of images into sharded TFRecord files for training.

Every readable image under --input_dir (searched recursively) becomes one
record; unreadable files are skipped and listed in the summary. Re-running the
same command resumes: shards that are already complete are kept.

Example:
  python data/build_tfrecords.py --input_dir=/path/to/photos \
      --output=/path/to/out/train --num_shards=64

writes /path/to/out/train-00000-of-00064.tfrecord ... train-00063-of-00064.tfrecord
and prints a one-line JSON summary. Read them back with
`common.tfrecords.parse_example`.
"""

from __future__ import annotations

import json
import os

from absl import app
from absl import flags

from common import cli
from common import tfrecords

_INPUT_DIR = flags.DEFINE_string("input_dir", None, "Folder of images, searched recursively.")
_OUTPUT = flags.DEFINE_string(
    "output", None, "Shard path prefix, e.g. /path/to/out/train; the folder is created if missing.")
_NUM_SHARDS = flags.DEFINE_integer("num_shards", 16, "Number of shard files.", lower_bound=1)
_NUM_WORKERS = flags.DEFINE_integer(
    "num_workers", os.cpu_count() or 1, "Worker processes writing shards in parallel.",
    lower_bound=1)

flags.mark_flags_as_required(["input_dir", "output"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected positional arguments: {' '.join(argv[1:])}")
    with cli.user_errors():
        summary = tfrecords.build_tfrecords(
            input_dir=_INPUT_DIR.value,
            output_prefix=_OUTPUT.value,
            num_shards=_NUM_SHARDS.value,
            num_workers=_NUM_WORKERS.value,
        )
    print(json.dumps(summary, sort_keys=True), flush=True)


if __name__ == "__main__":
    cli.run_app(main, __doc__, __name__)
