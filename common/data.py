"""Input pipelines: one `--train_data` flag, four kinds of source, one tf.data graph.

A data spec is one of:
  * ``sample``: the colour photos that ship inside scikit-image, cropped at
    random. Built at run time, no download; for demos and tests.
  * a folder of images (searched recursively; jpg, png, bmp, webp). Every file
    is checked once at start; unreadable ones are skipped and named in the log.
  * a TFRecord file pattern, e.g. ``/data/places/train-*.tfrecord``, as written
    by ``data/build_tfrecords.py``.
  * ``tfds:NAME[:SPLIT]``, e.g. ``tfds:places365_small`` or
    ``tfds:celeb_a:validation`` (TensorFlow Datasets; downloads on first use).

Every source is reduced to a stream of *encoded* image bytes, then decoded,
resized, cropped and masked in the graph, so the whole pipeline runs in
parallel C++ and nothing runs in Python per image.

Determinism: all randomness of an example (its crop, flip and mask) is drawn
from stateless ops seeded by ``(seed, index)``, where ``index`` counts examples
from the start of training. Shuffling is seeded too (its order also depends on
TensorFlow's global seed, which ``experiment.run`` sets from ``--seed`` before
building any pipeline). So the same seed gives the
same batches, and a run resumed at step ``s`` rebuilds the stream and skips the
first ``s * batch_size`` examples *before* decoding, which is cheap, instead of
checkpointing the iterator.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import os
from typing import Callable

import numpy as np
import tensorflow as tf
from absl import logging

from common import image_files
from common import tfrecords
from common.errors import UserError

AUTOTUNE = tf.data.AUTOTUNE

# The colour photos bundled with scikit-image (no download needed).
SAMPLE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
                 "immunohistochemistry", "retina")

# An example function turns one preprocessed image in [-1, 1] into the dict a
# paper trains on (at least "image" and "mask"). It receives the example's
# stateless seed (int64 [2]) and its index in the stream (int64 scalar).
ExampleFn = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], dict]


@dataclasses.dataclass(frozen=True)
class CropPolicy:
    """How a decoded photo becomes a square training crop.

    Attributes:
      crop_size: side of the square crop fed to the network.
      shorter_side: (low, high): resize so that the shorter side is a uniform
        random integer in [low, high] (keeping the aspect ratio) before
        cropping; low == high for a fixed size. None keeps the native size,
        except that images smaller than the crop are scaled up to it.
      flip: random horizontal flip in training.
      random_crop: crop at a random position in training (else centrally,
        e.g. for aligned faces).
    """

    crop_size: int
    shorter_side: tuple[int, int] | None = None
    flip: bool = False
    random_crop: bool = True

    def __post_init__(self):
        if self.crop_size < 1:
            raise ValueError(f"crop_size must be positive, got {self.crop_size}.")
        if self.shorter_side is not None:
            low, high = self.shorter_side
            if not self.crop_size <= low <= high:
                raise ValueError(
                    f"shorter_side range {self.shorter_side} must satisfy "
                    f"crop_size ({self.crop_size}) <= low <= high.")


@dataclasses.dataclass(frozen=True)
class Source:
    """A stream of keys and how to turn one key into encoded image bytes.

    Keys are what is cheap to shuffle and skip: file paths, indices into an
    in-memory table, or serialized records.
    """

    keys: tf.data.Dataset
    load: Callable[[tf.Tensor], tf.Tensor]
    description: str
    size: int | None  # number of examples, when known


def parse_data_spec(spec: str) -> tuple[str, str]:
    """Splits a data spec into (kind, value); kind is sample, folder, tfrecord or tfds."""
    if not spec:
        raise UserError("Empty data spec: expected 'sample', a folder, a TFRecord pattern "
                         "or 'tfds:NAME[:SPLIT]'.")
    if spec == "sample":
        return "sample", ""
    if spec.startswith("tfds:"):
        name = spec[len("tfds:"):]
        if not name or name.startswith(":"):
            raise UserError(f"Bad data spec {spec!r}: expected 'tfds:NAME[:SPLIT]'.")
        return "tfds", name
    if os.path.isdir(spec):
        return "folder", spec
    matches = glob.glob(spec)
    if matches and all(m.lower().endswith(image_files.IMAGE_EXTENSIONS) for m in matches):
        raise UserError(f"{spec!r} is an image file, not a data set: give the folder that "
                         "holds the images, or a TFRecord pattern.")
    if matches:
        return "tfrecord", spec
    raise FileNotFoundError(
        f"Data spec {spec!r} is neither 'sample', 'tfds:NAME[:SPLIT]', an existing folder, "
        "nor a file pattern that matches any TFRecord file.")


def check_data_spec(spec: str) -> None:
    """Fails fast, without decoding or downloading anything, if a spec cannot work:
    an empty spec, a missing path, a folder without image files, an unknown
    TensorFlow Datasets name. (Folders are checked file by file later.)"""
    kind, value = parse_data_spec(spec)
    if kind == "folder" and not image_files.has_image_file(value):
        raise UserError(f"the folder {value!r} holds no image file (expected "
                         f"{', '.join(image_files.IMAGE_EXTENSIONS)}).")
    if kind == "tfds":
        import tensorflow_datasets as tfds

        name = value.partition(":")[0].split("/")[0]
        try:
            # A registered dataset, or one prepared in the data folder (TFDS_DATA_DIR)
            # without its code; nothing is downloaded.
            tfds.builder(name)
        except tfds.core.registered.DatasetNotFoundError:
            raise UserError(f"unknown TensorFlow Datasets name {name!r} in {spec!r}; see "
                             "https://www.tensorflow.org/datasets/catalog.") from None


@functools.lru_cache(maxsize=1)
def _encoded_sample_photos() -> tuple[bytes, ...]:
    """JPEG bytes (quality 95) of scikit-image's bundled colour photos; encoded once."""
    import skimage.data

    return tuple(tf.io.encode_jpeg(getattr(skimage.data, name)()[..., :3], quality=95).numpy()
                 for name in SAMPLE_PHOTOS)


def _sample_source(seed: int, training: bool) -> Source:
    table = tf.constant(list(_encoded_sample_photos()))
    keys = tf.data.Dataset.range(len(SAMPLE_PHOTOS))
    if training:
        keys = keys.shuffle(len(SAMPLE_PHOTOS), seed=seed, reshuffle_each_iteration=True)
    return Source(keys=keys, load=lambda i: tf.gather(table, i),
                  description=f"sample ({len(SAMPLE_PHOTOS)} scikit-image photos)",
                  size=len(SAMPLE_PHOTOS))


def _folder_source(folder: str, seed: int, training: bool) -> Source:
    scanned = image_files.scan_image_folder(folder)
    # As bytes: a file name that is not valid UTF-8 is still a path TensorFlow can read.
    keys = tf.data.Dataset.from_tensor_slices([os.fsencode(p) for p in scanned.files])
    if training:
        keys = keys.shuffle(len(scanned.files), seed=seed, reshuffle_each_iteration=True)
    description = f"folder {folder} ({len(scanned.files)} images"
    description += f", {len(scanned.skipped)} skipped)" if scanned.skipped else ")"
    return Source(keys=keys, load=tf.io.read_file, description=description,
                  size=len(scanned.files))


def _tfrecord_source(pattern: str, seed: int, training: bool,
                     shuffle_buffer: int) -> Source:
    files = sorted(glob.glob(pattern))
    tfrecords.check_shards(files)
    file_ds = tf.data.Dataset.from_tensor_slices(files)
    if training:
        file_ds = file_ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    # Read several shards at once; deterministic interleaving keeps runs repeatable.
    records = file_ds.interleave(
        tf.data.TFRecordDataset, cycle_length=min(len(files), 16),
        num_parallel_calls=AUTOTUNE, deterministic=True)
    if training:
        records = records.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return Source(keys=records, load=tfrecords.parse_example,
                  description=f"TFRecords {pattern} ({len(files)} shards)", size=None)


def _tfds_source(name_and_split: str, seed: int, training: bool,
                 shuffle_buffer: int) -> Source:
    import tensorflow_datasets as tfds

    name, _, split = name_and_split.partition(":")
    split = split or ("train" if training else "validation")
    try:
        examples, info = tfds.load(
            name, split=split, shuffle_files=training, with_info=True,
            read_config=tfds.ReadConfig(shuffle_seed=seed),
            # Keep the JPEG/PNG bytes: decoding happens after skipping and shuffling.
            decoders={"image": tfds.decode.SkipDecoding()})
    except tfds.core.registered.DatasetNotFoundError as error:
        raise UserError(f"Unknown TensorFlow Datasets name {name!r} in 'tfds:{name_and_split}'; "
                         "see https://www.tensorflow.org/datasets/catalog.") from error
    if "image" not in info.features:
        raise UserError(f"tfds:{name} has no 'image' feature; it has {list(info.features)}.")
    keys = examples.map(lambda example: example["image"], num_parallel_calls=AUTOTUNE)
    if training:
        keys = keys.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    size = info.splits[split].num_examples if split in info.splits else None
    return Source(keys=keys, load=lambda encoded: encoded,
                  description=f"tfds:{name}:{split}", size=size)


def make_source(spec: str, *, seed: int, training: bool, shuffle_buffer: int = 2048) -> Source:
    """Opens the data spec as a Source (see the module docstring for the specs)."""
    kind, value = parse_data_spec(spec)
    if kind == "sample":
        return _sample_source(seed, training)
    if kind == "folder":
        return _folder_source(value, seed, training)
    if kind == "tfrecord":
        return _tfrecord_source(value, seed, training, shuffle_buffer)
    return _tfds_source(value, seed, training, shuffle_buffer)


def _is_webp_with_alpha(encoded: tf.Tensor) -> tf.Tensor:
    """Whether `encoded` is a WebP whose header declares alpha (as libwebp reads it).

    Checks the VP8X alpha flag (extended format) or the VP8L alpha_is_used bit
    (simple lossless format); simple lossy (VP8) WebP has no alpha.
    """
    header = tf.cast(tf.io.decode_raw(encoded, tf.uint8, fixed_length=25), tf.int32)

    def has(start, text):
        return tf.reduce_all(header[start:start + len(text)] == list(text.encode("ascii")))

    vp8x_alpha = tf.logical_and(has(12, "VP8X"), tf.bitwise.bitwise_and(header[20], 0x10) != 0)
    vp8l_alpha = tf.logical_and(has(12, "VP8L"), tf.bitwise.bitwise_and(header[24], 0x10) != 0)
    return tf.logical_and(tf.logical_and(has(0, "RIFF"), has(8, "WEBP")),
                          tf.logical_or(vp8x_alpha, vp8l_alpha))


def decode_rgb(encoded: tf.Tensor) -> tf.Tensor:
    """Decodes JPEG/PNG/BMP/WEBP bytes to uint8 RGB; grayscale is replicated, alpha dropped."""
    # TensorFlow's WebP decoder fails unless `channels` is exactly the file's own
    # (4 with alpha, 3 without), so a WebP with alpha is decoded as RGBA first.
    image = tf.cond(
        _is_webp_with_alpha(encoded),
        lambda: tf.io.decode_image(encoded, channels=4, expand_animations=False)[..., :3],
        lambda: tf.io.decode_image(encoded, channels=3, expand_animations=False))
    image.set_shape([None, None, 3])
    return image


def resize_and_crop(image: tf.Tensor, policy: CropPolicy, seed: tf.Tensor,
                    training: bool) -> tf.Tensor:
    """Applies the crop policy to a uint8 HxWx3 image; returns float32 in [-1, 1].

    In training the shorter side, the crop position (unless the policy says
    central) and the flip are random (stateless, from `seed`); in evaluation
    the shorter side is the low end of the range, the crop is central and
    there is no flip.
    """
    size_seed, crop_seed, flip_seed = (tf.random.experimental.stateless_fold_in(seed, k)
                                       for k in range(3))
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    shorter = tf.minimum(height, width)
    if policy.shorter_side is None:
        # Keep the native size, but never smaller than the crop.
        target_shorter = tf.maximum(shorter, policy.crop_size)
    elif training:
        low, high = policy.shorter_side
        target_shorter = tf.random.stateless_uniform(
            [], size_seed, minval=low, maxval=high + 1, dtype=tf.int32)
    else:
        target_shorter = tf.constant(policy.shorter_side[0], tf.int32)

    scale = tf.cast(target_shorter, tf.float32) / tf.cast(shorter, tf.float32)
    new_size = tf.maximum(
        tf.cast(tf.round(tf.cast(tf.stack([height, width]), tf.float32) * scale), tf.int32),
        policy.crop_size)
    image = tf.cast(image, tf.float32)
    image = tf.cond(
        tf.reduce_all(new_size == tf.stack([height, width])),
        lambda: image,
        lambda: tf.image.resize(image, new_size, method="bilinear", antialias=True))

    crop = policy.crop_size
    if training and policy.random_crop:
        image = tf.image.stateless_random_crop(image, [crop, crop, 3], crop_seed)
    else:
        top = (tf.shape(image)[0] - crop) // 2
        left = (tf.shape(image)[1] - crop) // 2
        image = image[top:top + crop, left:left + crop]
    if training and policy.flip:
        image = tf.image.stateless_random_flip_left_right(image, flip_seed)
    image = tf.clip_by_value(image, 0.0, 255.0) / 127.5 - 1.0
    image.set_shape([crop, crop, 3])
    return image


def element_seed(seed: int, index: tf.Tensor) -> tf.Tensor:
    """The stateless seed of the example at `index` of a stream seeded by `seed`."""
    return tf.stack([tf.constant(seed, tf.int64), tf.cast(index, tf.int64)])


def locate_data_loss(specs: dict[str, str]) -> UserError | None:
    """After TensorFlow reported damaged data, the error that names the TFRecord shard
    and record at fault, from `specs` ({flag: data spec}); None when none is found."""
    for flag, spec in specs.items():
        if not spec:
            continue
        kind, pattern = parse_data_spec(spec)
        if kind != "tfrecord":
            continue
        for path in sorted(glob.glob(pattern)):
            problem = tfrecords.corrupt_record(path)
            if problem:
                return UserError(
                    f"{flag}: TFRecord shard {path} is damaged at {problem}. Rebuild it "
                    "(delete it, then rerun build_tfrecords.py) or leave it out of the "
                    "pattern; the run resumes from its last checkpoint.")
    return None


def make_dataset(spec: str, *, batch_size: int, policy: CropPolicy, example_fn: ExampleFn,
                 seed: int, training: bool = True, start_index: int = 0,
                 num_examples: int | None = None, shuffle_buffer: int = 2048,
                 purpose: str = "") -> tf.data.Dataset:
    """Builds the batched pipeline for a data spec.

    Args:
      spec: data spec (see module docstring).
      batch_size: examples per batch; the last partial batch is dropped.
      policy: the paper's resize and crop policy.
      example_fn: the paper's masking step, (image, seed, index) -> dict.
      seed: seeds shuffling and every per-example random choice.
      training: training streams are shuffled, repeated forever and randomly
        cropped; evaluation streams are in file order, finite, centre-cropped,
        and their masks depend only on (seed, index), so they are the same at
        every evaluation.
      start_index: examples to skip (resuming at step s: s * batch_size).
      num_examples: evaluation only: use the first N examples.
      shuffle_buffer: record-level shuffle buffer for TFRecord and tfds sources.
      purpose: names the stream in the log ("training", "evaluation", ...).

    Returns:
      A dataset of dicts of batched tensors, as produced by `example_fn`.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}.")
    source = make_source(spec, seed=seed, training=training, shuffle_buffer=shuffle_buffer)
    purpose = purpose or ("training" if training else "evaluation")
    logging.info("%s data: %s", purpose, source.description)
    usable = source.size if num_examples is None or source.size is None else min(
        source.size, num_examples)
    if not training and usable is not None and usable < batch_size:
        # Found now, before training starts, rather than at the first evaluation.
        raise UserError(f"The {purpose} data, {source.description}, gives {usable} image(s), "
                        f"fewer than one batch of {batch_size}: it uses whole batches (lower "
                        "--batch_size, or give more images).")
    keys = source.keys
    if training:
        keys = keys.repeat()
    elif num_examples is not None:
        keys = keys.take(num_examples)
    # Skip keys, not decoded images: resuming costs no decoding.
    keys = keys.skip(start_index).enumerate(start=start_index)

    def load_example(index, key):
        seed_of_example = element_seed(seed, index)
        image = decode_rgb(source.load(key))
        image = resize_and_crop(image, policy, tf.random.experimental.stateless_fold_in(
            seed_of_example, 0), training)
        return example_fn(image, tf.random.experimental.stateless_fold_in(seed_of_example, 1),
                          index)

    dataset = keys.map(load_example, num_parallel_calls=AUTOTUNE, deterministic=True)
    dataset = dataset.batch(batch_size, drop_remainder=True, num_parallel_calls=AUTOTUNE,
                            deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options).prefetch(AUTOTUNE)


def mean_pixel(spec: str, policy: CropPolicy, num_examples: int, seed: int = 0) -> np.ndarray:
    """The mean RGB colour, in [0, 1], of the first `num_examples` evaluation crops of a source.

    Evaluation crops (central, no flip) keep the estimate deterministic; papers
    that fill holes with the training set's mean pixel store it with their
    checkpoints, so it is computed once per run.
    """
    if num_examples < 1:
        raise ValueError(f"num_examples must be positive, got {num_examples}.")
    dataset = make_dataset(spec, batch_size=1, policy=policy, seed=seed, training=False,
                           num_examples=num_examples, purpose="mean pixel",
                           example_fn=lambda image, example_seed, index: {"image": image})
    total, count = np.zeros(3, np.float64), 0
    for batch in dataset:
        total += ((batch["image"].numpy()[0] + 1.0) / 2.0).reshape(-1, 3).mean(axis=0)
        count += 1
    if count == 0:
        raise UserError(f"No image could be read from {spec!r} to compute the mean pixel.")
    return (total / count).astype(np.float32)


def first_batch(dataset: tf.data.Dataset) -> dict[str, np.ndarray]:
    """The first batch of a dataset as numpy arrays (for fixed sample grids)."""
    for batch in dataset.take(1):
        return {k: v.numpy() for k, v in batch.items()}
    raise UserError("The dataset is empty: fewer examples than one batch.")
