"""Packing an image folder into sharded TFRecord files, and reading them back.

Record format: one `tf.train.Example` per image, with two features:
  * `image/encoded`  (bytes) the image file. JPEG, PNG and BMP files are kept
    byte for byte (no re-compression loss); any other format the checker in
    `common.image_files` accepts (e.g. WEBP) is re-encoded to lossless PNG, so
    that `tf.io.decode_image` (and any other reader) can decode every record.
  * `image/filename` (bytes) the path of the image relative to the input folder,
    with "/" separators, so records can be traced back to their file.

Shards are named `{prefix}-{i:05d}-of-{n:05d}.tfrecord`. Each shard is written
to a temporary file and renamed when complete, so a file under the final name
is always a finished shard; that is what makes re-running resume cleanly.
"""

from __future__ import annotations

import concurrent.futures
import glob
import io
import multiprocessing
import os
import re
import time
from typing import Sequence

from absl import logging
import tensorflow as tf
import tqdm
from PIL import Image

from common import atomic
from common import image_files
from common.errors import UserError

FEATURES = {
    "image/encoded": tf.io.FixedLenFeature([], tf.string),
    "image/filename": tf.io.FixedLenFeature([], tf.string, default_value=""),
}

# Formats whose bytes tf.io.decode_image reads directly. MPO (the multi-picture
# JPEG that cameras write) starts with an ordinary JPEG stream, so it is kept
# too: re-encoding it to PNG would only inflate it.
_KEPT_FORMATS = {"JPEG", "MPO", "PNG", "BMP"}

# PIL modes that PNG can store without conversion.
_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"}

_TMP_SUFFIX = atomic.SUFFIX
_SHARD_PATTERN = re.compile(r"-(\d{5})-of-(\d{5})\.tfrecord$")


def parse_example(serialized: tf.Tensor) -> tf.Tensor:
    """Returns the encoded image (scalar tf.string) of one serialized record.

    Graph-mode safe, for `tf.data.TFRecordDataset(...).map(parse_example)`;
    decode the result with `tf.io.decode_image(..., expand_animations=False)`.
    """
    return tf.io.parse_single_example(serialized, FEATURES)["image/encoded"]


def framing_problem(path: str) -> str | None:
    """Why the TFRecord file `path` is cut short or not a TFRecord file, or None.

    Walks the record headers only (8-byte length, 4-byte CRC, data, 4-byte CRC),
    seeking past the data, so a shard of thousands of images is checked in
    milliseconds. It finds truncated shards (an interrupted copy or download) and
    files of another format; a flipped bit inside a record is only found when
    the record is read.
    """
    size = os.path.getsize(path)
    offset, records = 0, 0
    with open(path, "rb") as f:
        while offset < size:
            header = f.read(12)
            if len(header) < 12:
                return f"cut short at byte {offset} (after {records} whole records)"
            length = int.from_bytes(header[:8], "little")
            end = offset + 12 + length + 4
            if end > size:
                return (f"cut short or not a TFRecord file: record {records} at byte {offset} "
                        f"claims {length} bytes, the file has {size - offset - 16} left")
            f.seek(end)
            offset, records = end, records + 1
    return None


def corrupt_record(path: str) -> str | None:
    """Where reading the TFRecord file `path` fails ("record N: why"), or None.

    Reads every record, checking its CRCs: the slow counterpart of
    `framing_problem`, run only after TensorFlow has reported damaged data.
    """
    index = 0
    try:
        for _ in tf.data.TFRecordDataset(path):
            index += 1
    except tf.errors.DataLossError as error:
        return f"record {index}: {error.message.splitlines()[0]}"
    return None


def check_shards(files: Sequence[str]) -> None:
    """Fails, naming the shard, if any TFRecord file is cut short (see framing_problem)."""
    for path in files:
        problem = framing_problem(path)
        if problem:
            raise UserError(f"TFRecord shard {path} is damaged: {problem}. Rebuild it "
                             "(build_tfrecords.py resumes and rewrites missing shards once the "
                             "damaged one is deleted), or leave it out of the pattern.")


def shard_paths(output_prefix: str, num_shards: int) -> list[str]:
    """Returns the paths of the `num_shards` shards of `output_prefix`, in order."""
    return [f"{output_prefix}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]


def assign_shards(files: Sequence[str], num_shards: int) -> list[list[str]]:
    """Splits the sorted `files` round-robin (file i goes to shard i % num_shards).

    Round-robin rather than contiguous blocks keeps shards balanced to within
    one image, and spreads each sub-folder over all shards, so reading a few
    shards already sees a mix of the data. Sorting makes it deterministic,
    whatever order the files were listed in.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}.")
    ordered = sorted(files)
    return [ordered[i::num_shards] for i in range(num_shards)]


def encode_image_file(path: str) -> bytes:
    """Returns the bytes to store for `path`: the file itself, or a PNG re-encoding."""
    with Image.open(path) as image:
        if image.format in _KEPT_FORMATS:
            with open(path, "rb") as f:
                return f.read()
        image.load()
        if image.mode not in _PNG_MODES:
            has_alpha = "A" in image.getbands() or "transparency" in image.info
            image = image.convert("RGBA" if has_alpha else "RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def make_example(path: str, root: str) -> bytes:
    """Returns the serialized tf.train.Example of the image at `path` under `root`."""
    relative = os.path.relpath(path, root).replace(os.sep, "/")
    example = tf.train.Example(features=tf.train.Features(feature={
        "image/encoded": _bytes_feature(encode_image_file(path)),
        "image/filename": _bytes_feature(os.fsencode(relative)),
    }))
    # Sorted map keys: the same images give byte-identical shards in any process.
    return example.SerializeToString(deterministic=True)


def write_shard(files: Sequence[str], root: str, path: str) -> int:
    """Writes the images `files` (under folder `root`) as one shard at `path`.

    Writes to `path + ".tmp"`, syncs it to disk, then renames it: the rename is
    atomic, so a crash (or power loss) never leaves a partial shard under the
    final name, where a re-run would take it for finished.

    Returns:
      The number of records written.
    """
    with atomic.replacing(path) as tmp_path, tf.io.TFRecordWriter(tmp_path) as writer:
        for file in files:
            try:
                record = make_example(file, root)
            except Exception as error:
                raise OSError(f"Cannot pack image {file!r} into {path!r}: {error}") from error
            writer.write(record)
    return len(files)


def _write_shard_task(task: tuple[list[str], str, str]) -> int:
    """Top-level (hence picklable) entry point for worker processes."""
    return write_shard(*task)


def _check_existing_shards(output_prefix: str, num_shards: int) -> None:
    """Raises if shards of `output_prefix` with another shard count already exist.

    Mixing them would silently duplicate or drop images, since the same image
    lands in different shards for different counts.
    """
    candidates = glob.glob(glob.escape(output_prefix) + "-?????-of-?????.tfrecord")
    others = sorted(p for p in candidates
                    if (m := _SHARD_PATTERN.search(p)) and int(m.group(2)) != num_shards)
    if others:
        shown = "\n  ".join(others[:5]) + ("\n  ..." if len(others) > 5 else "")
        raise UserError(
            f"--output {output_prefix!r} already holds shards of a different shard count than"
            f" --num_shards={num_shards}:\n  {shown}\n"
            "Delete them, use another --output prefix, or pass the same --num_shards as before.")


def _check_output_prefix(output_prefix: str) -> None:
    """Raises if `output_prefix` names a folder instead of a file prefix."""
    if not output_prefix or output_prefix.endswith(("/", os.sep)) or os.path.isdir(output_prefix):
        raise UserError(
            f"--output must be a file prefix such as /path/to/out/train (shards become"
            f" train-00000-of-00016.tfrecord, ...), got the folder {output_prefix!r}.")


def build_tfrecords(input_dir: str, output_prefix: str, num_shards: int,
                    num_workers: int) -> dict:
    """Packs the images of `input_dir` into `num_shards` TFRecord shards at `output_prefix`.

    Unreadable files are skipped (and listed in the summary). Shards that
    already exist under their final name are kept, so an interrupted run
    resumes where it stopped. This assumes the folder has not changed since:
    to rebuild after changing it, delete the old shards first.

    Args:
      input_dir: folder of images, searched recursively.
      output_prefix: shard path prefix, e.g. /data/tfrecords/train.
      num_shards: number of shard files, >= 1.
      num_workers: number of worker processes writing shards, >= 1.

    Returns:
      A summary dict: `shards_written`, `shards_skipped` (already finished),
      `images` (usable images in the dataset), `images_written` (this run),
      `files_skipped` (number of unreadable files) and `unreadable_files`
      (relative path -> reason), plus `num_shards` and `output_prefix`.

    Raises:
      ValueError: on bad arguments, a folder without usable images, or
        existing shards of a different shard count.
      FileNotFoundError: if `input_dir` does not exist.
    """
    if not isinstance(num_shards, int) or num_shards < 1:
        raise UserError(f"--num_shards must be an integer >= 1, got {num_shards!r}.")
    if not isinstance(num_workers, int) or num_workers < 1:
        raise UserError(f"--num_workers must be an integer >= 1, got {num_workers!r}.")
    _check_output_prefix(output_prefix)
    # Fail on a shard-count mismatch before the (possibly long) folder scan.
    _check_existing_shards(output_prefix, num_shards)

    folder = image_files.scan_image_folder(input_dir)
    if num_shards > len(folder.files):
        logging.warning("--num_shards=%d exceeds the %d usable images; some shards will be empty.",
                        num_shards, len(folder.files))
    output_dir = os.path.dirname(os.path.abspath(output_prefix))
    os.makedirs(output_dir, exist_ok=True)
    if not os.access(output_dir, os.W_OK):
        raise UserError(f"--output {output_prefix!r}: the folder {output_dir!r} is not writable.")

    paths = shard_paths(output_prefix, num_shards)
    groups = assign_shards(folder.files, num_shards)
    todo = [(group, input_dir, path) for group, path in zip(groups, paths)
            if not os.path.exists(path)]
    images_written = _write_shards(todo, num_workers)

    return {
        "output_prefix": output_prefix,
        "num_shards": num_shards,
        "shards_written": len(todo),
        "shards_skipped": num_shards - len(todo),
        "images": len(folder.files),
        "images_written": images_written,
        "files_skipped": len(folder.skipped),
        "unreadable_files": {
            os.path.relpath(p, input_dir).replace(os.sep, "/"): reason
            for p, reason in folder.skipped},
    }


def _write_shards(tasks: list[tuple[list[str], str, str]], num_workers: int) -> int:
    """Writes the shards of `tasks` with a progress bar; returns the images written."""
    if not tasks:
        return 0
    workers = min(num_workers, len(tasks))
    total_images = sum(len(files) for files, _, _ in tasks)
    written = 0
    start = time.monotonic()
    with tqdm.tqdm(total=len(tasks), unit="shard", desc="Writing shards") as progress:

        def advance(count: int) -> None:
            nonlocal written
            written += count
            rate = written / max(time.monotonic() - start, 1e-9)
            progress.set_postfix(images=f"{written}/{total_images}", images_per_s=f"{rate:.0f}")
            progress.update(1)

        if workers == 1:
            # One worker gains nothing from a process: write here, and skip the
            # start-up cost of a fresh interpreter importing TensorFlow.
            for task in tasks:
                advance(_write_shard_task(task))
            return written

        # "spawn" because forking a process that has initialised TensorFlow's
        # thread pools can deadlock the child.
        context = multiprocessing.get_context("spawn")
        pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context)
        try:
            futures = [pool.submit(_write_shard_task, task) for task in tasks]
            for future in concurrent.futures.as_completed(futures):
                advance(future.result())
        finally:
            # On error, drop the shards not started yet; finished ones are kept
            # and a re-run resumes from them.
            pool.shutdown(wait=True, cancel_futures=True)
    return written
